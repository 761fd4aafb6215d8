"""Every BPMN expression runs in the sandbox: refused at deploy when visible, stopped at run time."""

from __future__ import annotations

from xml.sax.saxutils import escape

import pytest

from engine.container import CreditFlow
from engine.errors import InvalidModel
from engine.services.principal import Principal

SYSTEM = Principal.system()


def script_model(process_id: str, script: str, condition: str = "True", parameter: str = "id_number") -> bytes:
    """start → script → exclusive gateway (condition / default) → service task → end."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d_{process_id}"
    targetNamespace="http://creditflow.example/bpmn">
  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="work" name="计算">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="gw" default="f4"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f4</bpmn:outgoing></bpmn:exclusiveGateway>
    <bpmn:serviceTask id="bureau" name="征信查询">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="credit_bureau/score" resultVariable="bureau_result">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="id_number" type="str" value="{escape(parameter, {'"': "&quot;"})}"/>
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="gw"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="bureau">
      <bpmn:conditionExpression>{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="end"/>
    <bpmn:sequenceFlow id="f5" sourceRef="bureau" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>""".encode()


def deploy_model(platform: CreditFlow, process_id: str, **parts: str) -> None:
    platform.definitions.deploy(SYSTEM, [(f"{process_id}.bpmn", script_model(process_id, **parts))])


def test_a_normal_model_runs(platform: CreditFlow) -> None:
    deploy_model(platform, "ok", script="score = amount / 1000", condition="score > 10", parameter="id_number")
    view = platform.instances.start(SYSTEM, "ok", data={"amount": 50000, "id_number": "A-1"})
    assert view.instance.status == "completed"
    assert view.instance.data["bureau_result"]["score"] == 720


@pytest.mark.parametrize(
    "parts",
    [
        {"script": "x = __import__('os').getpid()"},
        {"script": "x = open('/etc/hostname').read()"},
        {"script": "x = ().__class__.__base__.__subclasses__()"},
        {"script": "x = 1", "condition": "__import__('os') is not None"},
        {"script": "x = 1", "parameter": "open('/etc/passwd').read()"},
        {"script": "x = 1", "condition": "amount.__class__"},
    ],
)
def test_escapes_visible_in_the_model_are_refused_at_deploy(platform: CreditFlow, parts: dict[str, str]) -> None:
    with pytest.raises(InvalidModel) as caught:
        deploy_model(platform, "evil", **{"script": "x = 1", **parts})
    assert caught.value.problems
    assert platform.definitions.list(SYSTEM)[1] == 0


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("while True:\n    pass", "ScriptTimeout"),
        ("x = 'x' * (10 ** 10)", "limit"),
        ("x = [0] * big", "limit"),
        ("f = getattr\nx = f(amount, '__class__')", "not allowed"),
    ],
)
def test_runaway_or_escaping_scripts_fail_the_step_with_a_clear_error(
    platform: CreditFlow, script: str, words: str
) -> None:
    deploy_model(platform, "runaway", script=script)
    view = platform.instances.start(SYSTEM, "runaway", data={"amount": 1, "big": 10**12})
    assert view.instance.status == "error"
    assert view.instance.error["bpmn_id"] == "work"
    text = " ".join(str(v) for v in view.instance.error.values())
    assert words in text, view.instance.error
    # the worker is fine: the next instance runs normally
    deploy_model(platform, "after", script="y = 2", condition="False")
    assert platform.instances.start(SYSTEM, "after", data={}).instance.status == "completed"


def test_decimal_money_survives_save_and_load_and_unstorable_data_is_a_clear_4xx(platform: CreditFlow) -> None:
    from decimal import Decimal

    from engine.container import CreditFlow as Platform
    from engine.errors import ScriptError
    from tests.conftest import deploy

    deploy(platform, "script_error.bpmn")  # compute → review (a wait, so the state is stored and reloaded)
    view = platform.instances.start(SYSTEM, "script_error", data={"amount": Decimal("100.10"), "divisor": 2})
    assert view.instance.data["ratio"] == "50.05"  # Decimal / int stays Decimal, shown as text
    fresh = Platform(platform.settings, clock=platform.clock, connectors=platform.connectors)  # no cached workflow
    task = fresh.tasks.get(SYSTEM, view.tasks[0].id)
    assert task.data["ratio"] == "50.05"
    done = fresh.tasks.complete(SYSTEM, task.task.id, {"recommendation": "reject", "comment": "金额不符"})
    assert done.instance.status == "completed"
    fresh.close()

    deploy_model(platform, "unstorable", script="x = range(3)")
    with pytest.raises(ScriptError, match="cannot be stored"):
        platform.instances.start(SYSTEM, "unstorable", data={})
    assert platform.instances.list(SYSTEM, definition_key="unstorable")[1] == 0
