"""The script sandbox: ordinary credit rules work; escapes, runaway loops and huge allocations are refused.

Each case runs against the environment directly and, where it matters, through SpiffWorkflow (a script
task and an exclusive gateway), the way every BPMN expression runs in production.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from threading import Barrier
from typing import Any
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine.runtime import sandbox
from engine.runtime.sandbox import (
    RestrictedEnvironment,
    SandboxError,
    SandboxViolation,
    ScriptLimits,
    ScriptResourceError,
    ScriptTimeout,
    check_source,
)

SCRIPT_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs"
                  targetNamespace="http://creditflow.test">
  <bpmn:process id="scripted" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="compute"/>
    <bpmn:scriptTask id="compute" name="Compute">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{body}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="compute" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""

GATEWAY_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs"
                  targetNamespace="http://creditflow.test">
  <bpmn:process id="routed" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="route"/>
    <bpmn:exclusiveGateway id="route" default="f3">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:sequenceFlow id="f2" sourceRef="route" targetRef="approved">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">
        {condition}
      </bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="route" targetRef="referred"/>
    <bpmn:endEvent id="approved"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="referred"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>"""

# Long enough that only the time limit can stop a loop in the time-limit tests.
TIME_ONLY = ScriptLimits(max_seconds=0.2, max_iterations=10**12)


def run_workflow(
    template: str, process_id: str, data: dict[str, Any], env: RestrictedEnvironment, **fields: str
) -> BpmnWorkflow:
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(template.format(**{k: escape(v) for k, v in fields.items()}).encode())
    workflow = BpmnWorkflow(parser.get_spec(process_id), script_engine=PythonScriptEngine(environment=env))
    workflow.get_next_task(state=TaskState.READY).data.update(data)
    workflow.do_engine_steps()
    return workflow


def execute(script: str, env: RestrictedEnvironment | None = None, **data: Any) -> dict[str, Any]:
    (env or RestrictedEnvironment()).execute(script, data)
    return data


@pytest.fixture
def env() -> RestrictedEnvironment:
    return RestrictedEnvironment()


# -- ordinary use --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("amount / 1000", {"amount": 5}, 0.005),
        ("amount * 2 + fee - 3", {"amount": 5, "fee": 1}, 8),
        ("amount * 0.05 + 1", {"amount": 200}, 11.0),
        ("(amount // 3, amount % 3, -amount ** 2, 2 ** 10, 1 << 4)", {"amount": 10}, (3, 1, -100, 1024, 16)),
        ("1 < amount <= 10 and amount != 7", {"amount": 5}, True),
        ("data['x']['y']", {"data": {"x": {"y": 42}}}, 42),
        ("{'a': [amount, amount + 1], 'b': (amount,)}", {"amount": 1}, {"a": [1, 2], "b": (1,)}),
        ("[x * 2 for x in items if x > 1]", {"items": [1, 2, 3]}, [4, 6]),
        ("{k: v * 10 for k, v in pairs.items()}", {"pairs": {"a": 1, "b": 2}}, {"a": 10, "b": 20}),
        ("{x % 2 for x in items}", {"items": [1, 2, 3]}, {0, 1}),
        ("sum(x for x in items)", {"items": [1, 2, 3]}, 6),
        ("Decimal('1.5') * 2", {}, Decimal("3.0")),
        ("'%s-%d' % ('a', 3)", {}, "a-3"),
        ("'%(n)05.1f' % {'n': 2.25}", {}, "002.2"),
        ("name.strip().upper()", {"name": "  ana "}, "ANA"),
        ("f'{name}: {amount:,.2f} {name!r:>6}'", {"name": "ana", "amount": 1234.5}, "ana: 1,234.50  'ana'"),
        (
            "(min(items), max(items), sum(items), len(items), round(3.14159, 2), abs(-2))",
            {"items": [3, 1]},
            (1, 3, 4, 2, 3.14, 2),
        ),
        ("'high' if score > 700 else 'low'", {"score": 710}, "high"),
        ("', '.join(sorted(names))", {"names": ["b", "a"]}, "a, b"),
        ("'a-b'.replace('-', '+') + 'x' * 3 + 'y'.ljust(3, '.')", {}, "a+bxxxy.."),
        ("int('42') + int(Decimal('3.7')) + round(Decimal('2.5'))", {}, 47),
        (
            "isinstance(amount, int) and isinstance(amount, (int, float)) and not isinstance(1.5, int)",
            {"amount": 3},
            True,
        ),
        ("math.floor(2.7) + math.sqrt(16)", {}, 6.0),
        ("list(range(3)) + [pow(2, 10)]", {}, [0, 1, 2, 1024]),
        ("getattr(name, 'upper')() + getattr(name, 'missing', '!')", {"name": "a"}, "A!"),
        ("(lambda x: x + 1)(amount)", {"amount": 1}, 2),
        ("dict(zip(keys, map(str, filter(None, values))))", {"keys": ["a"], "values": [0, 5]}, {"a": "5"}),
        ("\n      amount > 1\n    ", {"amount": 2}, True),  # whitespace that BPMN XML leaves around
    ],
)
def test_ordinary_expressions_evaluate_as_in_python(
    env: RestrictedEnvironment, expression: str, data: dict[str, Any], expected: Any
) -> None:
    result = env.evaluate(expression, data)
    assert result == expected
    assert type(result) is type(expected)


def test_ordinary_scripts_run_and_leave_only_data_behind(env: RestrictedEnvironment) -> None:
    script = """
score = amount / 1000
applicant['age'] = 30
def bonus(x):
    return x * 2
double = lambda x: x * 2
total = 0
for i, item in enumerate(items):
    total += bonus(item)
n = 0
while n < 3:
    n += 1
names = ['a']
names += ['b']
names.extend(['c'])
q, r = divmod(7, 2)
if total > 10:
    band = 'high'
else:
    band = 'low'
label = f"{band}-{double(n)}"
print('debug', total)
"""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # print() must not raise RestrictedPython's SyntaxWarning
        data = execute(script, env, amount=5000, applicant={"name": "ana"}, items=[1, 2, 3])
    assert data["score"] == 5.0
    assert data["applicant"] == {"name": "ana", "age": 30}
    assert (data["total"], data["n"], data["q"], data["r"]) == (12, 3, 3, 1)
    assert data["names"] == ["a", "b", "c"]
    assert (data["band"], data["label"]) == ("high", "high-6")
    # TaskDataEnvironment strips functions and the sandbox's machinery from the task data.
    leftovers = {"bonus", "double", "__builtins__", "_tick_", "_print"} & set(data)
    assert not leftovers


def test_list_augmented_assignment_keeps_in_place_semantics(env: RestrictedEnvironment) -> None:
    data = execute("alias = names\nnames += ['b']\nnames *= 2", env, names=["a"])
    assert data["alias"] is data["names"]
    assert data["names"] == ["a", "b", "a", "b"]


def test_extra_globals_are_callable_and_protected_from_overwrite() -> None:
    env = RestrictedEnvironment({"fee_for": lambda amount: amount * Decimal("0.01")})
    assert env.evaluate("fee_for(amount)", {"amount": 5000}) == Decimal("50.00")
    with pytest.raises(ValueError, match="fee_for"):
        env.execute("x = 1", {"fee_for": 3})


# -- refused code --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "source", "message"),
    [
        ("eval", "__import__('os')", '"__import__" is an invalid variable name'),
        ("exec", "import os", "import statements are not allowed"),
        ("exec", "from os import path", "import statements are not allowed"),
        ("eval", "open('/etc/hostname')", "name 'open' is not allowed"),
        ("eval", "().__class__.__base__.__subclasses__()", '"__class__" is an invalid attribute name'),
        ("eval", "getattr(x, '__class__')", "attribute '__class__' is not allowed"),
        ("eval", "getattr(x, 'gi_frame')", "attribute 'gi_frame' is not allowed"),
        ("eval", "'{0.__class__}'.format(x)", "str.format() is not allowed"),
        ("eval", "str.format_map('{x}', {})", "str.format_map() is not allowed"),
        ("eval", "eval('1')", "Eval calls are not allowed"),
        ("eval", "type(x)", "name 'type' is not allowed"),
        ("eval", "vars()", "name 'vars' is not allowed"),
        ("eval", "globals()", "name 'globals' is not allowed"),
        ("exec", "class A:\n    pass", "class definitions are not allowed"),
        ("eval", "sum([[0]] * 3, [])", "sum() of sequences is not allowed"),
        ("eval", "pow(2, 10, 7)", "pow() with a modulus is not allowed"),
        ("eval", "amount >", "SyntaxError"),
    ],
)
def test_refused_code_raises_sandbox_violation(
    env: RestrictedEnvironment, mode: str, source: str, message: str
) -> None:
    run = env.evaluate if mode == "eval" else env.execute
    with pytest.raises(SandboxViolation) as caught:
        run(source, {"x": 1})
    assert message in str(caught.value)


def test_exceptions_that_escape_the_worker_are_not_available(env: RestrictedEnvironment) -> None:
    for name in ("SystemExit", "KeyboardInterrupt", "BaseException"):
        with pytest.raises(NameError, match=name):
            env.execute(f"raise {name}()", {})


def test_check_source_reports_refusals_without_running_anything() -> None:
    assert check_source("while True:\n    pass", "exec") is None
    assert check_source("amount > 1", "eval") is None
    reason = check_source("x = ().__class__", "exec")
    assert reason is not None
    assert "__class__" in reason
    for deep in ("x = 1" + " +1" * 20_000, "x = " + "not " * 5_000 + "1", "x = " + "-" * 100_000 + "1"):
        assert "nested too deeply" in (check_source(deep, "exec") or "")  # was a RecursionError: a 500 at deploy


# -- time and iteration limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "source"),
    [
        ("exec", "while True:\n    pass"),
        ("exec", "for i in range(10**6):\n    while True:\n        continue"),
        ("exec", "def f(n):\n    return 1 if n == 0 else f(n - 1) + f(n - 1)\nf(64)"),
        ("eval", "(lambda f: f(f, 64))(lambda f, n: 1 if n == 0 else f(f, n - 1) + f(f, n - 1))"),
        ("eval", "sum(1 for i in range(10**6) for j in range(10**6))"),
    ],
)
def test_runaway_code_is_stopped_by_the_time_limit(mode: str, source: str) -> None:
    env = RestrictedEnvironment(limits=TIME_ONLY)
    run = env.evaluate if mode == "eval" else env.execute
    started = time.monotonic()
    with pytest.raises(ScriptTimeout, match=r"script exceeded its time limit of 0\.2 s"):
        run(source, {})
    assert 0.2 <= time.monotonic() - started < 2.0


def test_iteration_budget_counts_every_loop_pass() -> None:
    env = RestrictedEnvironment(limits=ScriptLimits(max_iterations=1000))
    assert env.evaluate("sum(1 for i in range(1000))", {}) == 1000
    with pytest.raises(ScriptTimeout, match="limit of 1000 loop iterations"):
        env.evaluate("sum(1 for i in range(1001))", {})
    with pytest.raises(ScriptTimeout, match="limit of 1000 loop iterations"):
        env.execute("n = 0\nfor i in range(40):\n    for j in range(40):\n        n += 1", {})


def test_each_call_gets_a_fresh_budget() -> None:
    env = RestrictedEnvironment(limits=ScriptLimits(max_seconds=0.2, max_iterations=1000))
    with pytest.raises(ScriptTimeout):
        env.execute("while True:\n    pass", {})
    for _ in range(3):
        assert env.evaluate("sum(1 for i in range(900))", {}) == 900


def test_concurrent_calls_do_not_share_a_budget() -> None:
    """Two threads each use 60% of the iteration budget at the same time: a shared counter fails."""
    env = RestrictedEnvironment(limits=ScriptLimits(max_seconds=30, max_iterations=500_000))
    barrier = Barrier(2)

    def work(_: int) -> int:
        barrier.wait()
        return env.evaluate("sum(1 for i in range(300000))", {})

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(work, range(2))) == [300_000, 300_000]


# -- allocation limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "source", "message"),
    [
        ("eval", "'x' * 10**10", "result of * would have 10000000000 items (limit 1000000)"),
        ("eval", "10**10 * 'x'", "result of * would have 10000000000 items (limit 1000000)"),
        ("eval", "[0] * 10**10", "result of * would have 10000000000 items (limit 1000000)"),
        ("eval", "b'x' * 10**10", "result of * would have 10000000000 items"),
        ("eval", "10 ** 10 ** 10", "result of ** would have at least 10000000000 bits (limit 100000)"),
        ("eval", "7 ** 100000", "result of ** would have at least 280735 bits"),
        ("eval", "pow(10, 10**6)", "result of ** would have at least"),
        ("eval", "1 << 10**6", "result of << would have at least 1000001 bits"),
        ("eval", "'x'.ljust(10**10)", "result of ljust() would have 10000000000 items"),
        ("eval", "'x'.center(10**10)", "result of center() would have 10000000000 items"),
        ("eval", "str.zfill('1', 10**10)", "result of zfill() would have 10000000000 items"),
        ("eval", "('\\t' * 1000).expandtabs(10**4)", "result of expandtabs() would have"),
        (
            "eval",
            "'a'.translate({97: 'b' * 10**6}) + ('a' * 2).translate({97: 'b' * 10**6})",
            "result of translate() would have 2000000 items",
        ),
        ("eval", "'-'.join([big] * 1000)", "result of join() would have 2000999 items"),
        ("eval", "range(10**9)", "result of range() would have 1000000000 items"),
        ("exec", "for i in range(10**9):\n    pass", "result of range() would have 1000000000 items"),
        ("eval", "'%*d' % (10**9, 1)", "'*' width or precision is not allowed"),
        ("eval", "'%.2000000f' % 1.0", "%-format width 2000000 exceeds the limit of 1000000"),
        ("eval", "'%d' % Decimal('1e999999')", "has too many digits to convert"),
        ("eval", "f'{1:>10000000000}'", "format width 10000000000 exceeds the limit of 1000000"),
        ("eval", "f'{1:>{10**10}}'", "format width 10000000000 exceeds the limit"),
        ("eval", "int(Decimal('1e999999'))", "Decimal 1E+999999 has too many digits to convert"),
        ("eval", "round(Decimal('1e999999'))", "has too many digits to convert"),
        ("eval", "math.floor(Decimal('1e999999'))", "has too many digits to convert"),
        ("eval", "Decimal('1e999999').as_integer_ratio()", "has too many digits to convert"),
        ("exec", "x = 'ab'\nwhile True:\n    x = x + x", "result of + would have"),
        ("exec", "x = 'ab'\nwhile True:\n    x += x", "result of + would have"),
        ("exec", "x = [0]\nwhile True:\n    x.extend(x)", "result of extend() would have"),
        ("exec", "x = [0]\nwhile True:\n    x += x", "result of extend() would have"),
        ("exec", "x = [0]\nwhile True:\n    x *= 2", "result of *= would have"),
        ("exec", "x = 3\nwhile True:\n    x = x * x", "result of * would have at least"),
        ("exec", "x = 3\nwhile True:\n    x **= 2", "result of ** would have at least"),
        ("exec", "while True:\n    print('x' * 1000)\nresult = printed", "print() output exceeds the limit"),
    ],
)
def test_oversized_results_are_refused_before_they_are_built(
    env: RestrictedEnvironment, mode: str, source: str, message: str
) -> None:
    run = env.evaluate if mode == "eval" else env.execute
    with pytest.raises(ScriptResourceError) as caught:
        run(source, {"big": "x" * 2000})
    assert message in str(caught.value)


def test_replace_is_allowed_up_to_the_limit_and_refused_beyond(env: RestrictedEnvironment) -> None:
    data = execute("x = 'a' * 1000\ny = x.replace('a', x)", env)
    assert len(data["y"]) == 1_000_000
    with pytest.raises(ScriptResourceError, match=r"result of replace\(\) would have 1000000000 items"):
        execute("x = 'a' * 1000\ny = x.replace('a', x)\nz = y.replace('a', x)", env)


def test_exhausted_stack_and_memory_become_resource_errors(env: RestrictedEnvironment) -> None:
    with pytest.raises(ScriptResourceError, match="recursion too deep") as caught:
        env.execute("def f(n):\n    return f(n + 1)\nf(0)", {})
    assert isinstance(caught.value.__cause__, RecursionError)
    with pytest.raises(ScriptResourceError, match="ran out of memory") as caught:
        env.execute("raise MemoryError()", {})
    assert isinstance(caught.value.__cause__, MemoryError)


# -- compiled-code cache -------------------------------------------------------------------------------


def test_compiled_code_is_cached_per_mode_and_source(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[tuple[str, str]] = []
    real_compile = sandbox.compile_restricted

    def counting_compile(source: str, filename: str, mode: str, **kwargs: Any) -> Any:
        compiled.append((mode, source))
        return real_compile(source, filename, mode, **kwargs)

    monkeypatch.setattr(sandbox, "compile_restricted", counting_compile)
    env = RestrictedEnvironment()
    assert env.evaluate("amount / 1000", {"amount": 5}) == 0.005
    assert env.evaluate("amount / 1000", {"amount": 7}) == 0.007
    assert compiled == [("eval", "amount / 1000")]
    info = env.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 1)
    assert info.maxsize == RestrictedEnvironment.CACHE_SIZE

    env.execute("amount / 1000", {"amount": 5})
    assert compiled == [("eval", "amount / 1000"), ("exec", "amount / 1000")]


# -- through SpiffWorkflow -----------------------------------------------------------------------------


def test_script_task_runs_in_the_sandbox() -> None:
    workflow = run_workflow(
        SCRIPT_BPMN,
        "scripted",
        {"amount": 5000, "applicant": {}},
        RestrictedEnvironment(),
        body="score = amount / 1000\napplicant['age'] = 30\nrate = Decimal('1.5') * 2",
    )
    assert workflow.completed
    assert workflow.data["score"] == 5.0
    assert workflow.data["applicant"] == {"age": 30}
    assert workflow.data["rate"] == Decimal("3.0")


@pytest.mark.parametrize(
    ("body", "expected", "message"),
    [
        ("x = __import__('os')", SandboxViolation, "__import__"),
        ("x = open('/etc/hostname').read()", SandboxViolation, "name 'open' is not allowed"),
        ("x = ().__class__.__base__.__subclasses__()", SandboxViolation, "__class__"),
        ("x = 1\nwhile True:\n    pass", ScriptTimeout, "time limit of 0.2 s"),
        ("x = 1\ny = 'x' * 10**10", ScriptResourceError, "10000000000 items"),
    ],
)
def test_script_task_errors_surface_through_the_workflow_exception(
    body: str, expected: type[SandboxError], message: str
) -> None:
    with pytest.raises(WorkflowTaskException) as caught:
        run_workflow(SCRIPT_BPMN, "scripted", {}, RestrictedEnvironment(limits=TIME_ONLY), body=body)
    error = caught.value
    assert isinstance(error.__context__, expected)
    assert error.error_type == expected.__name__
    assert message in str(error.__context__)
    assert message in str(error)


@pytest.mark.parametrize(("amount", "route"), [(6000, "approved"), (100, "referred")])
def test_gateway_conditions_are_evaluated_in_the_sandbox(amount: int, route: str) -> None:
    workflow = run_workflow(
        GATEWAY_BPMN, "routed", {"amount": amount}, RestrictedEnvironment(), condition="amount / 1000 > 5"
    )
    assert workflow.completed
    reached = {task.task_spec.bpmn_id for task in workflow.get_tasks(state=TaskState.COMPLETED)}
    assert route in reached
    assert ({"approved", "referred"} - {route}).isdisjoint(reached)


def test_refused_gateway_condition_surfaces_the_violation() -> None:
    with pytest.raises(WorkflowTaskException) as caught:
        run_workflow(
            GATEWAY_BPMN,
            "routed",
            {"amount": 1},
            RestrictedEnvironment(),
            condition="getattr(amount, '__class__') is not None",
        )
    error = caught.value
    assert isinstance(error.__context__, SandboxViolation)
    assert error.error_type == "SandboxViolation"
    assert "attribute '__class__' is not allowed" in str(error.__context__)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ScriptLimits(max_seconds=0)
