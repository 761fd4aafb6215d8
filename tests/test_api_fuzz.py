"""Every operation the OpenAPI document lists, sent what a careless or hostile client sends.

The cases come from the document itself, so an endpoint added later is covered without touching
this file: odd path ids, query values of the wrong type, bodies that are not JSON (or Python's
NaN and infinities), nested thousands deep, not an object, empty, with each field of the wrong type
or null, and with every field at once (long text, then text no database stores). The bodies go to
real resources (a published product, a running application and its open task) so they reach the
services' own checks, not only the 404. Whatever the endpoint makes of them, the answer is a
success or a 4xx as ``application/problem+json``, never a 500.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.catalog.config import DEFAULT_STANDARD_DIR
from engine.container import CreditFlow
from engine.services.principal import Principal
from tests.conftest import ApiClient, login

PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")
DEEP = "[" * 3000  # nested past any recursion limit
# query values of every kind; the last is a cursor-looking text that decodes to DEEP
QUERY_VALUES = ("abc", "-1", "1" + "0" * 30, "2026-13-45", "x" * 3000, base64.urlsafe_b64encode(DEEP.encode()).decode())
ODD_IDS = ("0", "-1", "9" * 30, "x", "é", "a" * 300, "1 OR 1=1", "%00")
WRONG = {
    "string": [12345, ["list"], {"an": "object"}],
    "integer": ["abc", 1.5, 10**30, True],
    "number": ["abc", {"an": "object"}],
    "boolean": ["yes", 3],
    "array": ["text", {"an": "object"}, [None, 7]],
    "object": ["text", [1, 2], 7],
}
# values of the right type that no endpoint should choke on either: storable text that reaches the
# services, then text no database stores (a NUL, a lone surrogate)
ODD = {
    "string": ["‮" + "长" * 5000, "a\x00b", "\ud800"],
    "integer": [-(2**63)],
    "number": [1e308],
    "boolean": [False],
    "array": [[]],
    "object": [{}],
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        *_, name = schema["$ref"].split("/")
        schema = spec["components"]["schemas"][name]
    return schema


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "object" if "properties" in schema else "string")
    return kind[0] if isinstance(kind, list) else kind


def _bodies(spec: dict[str, Any], schema: dict[str, Any]) -> Iterator[Any]:
    schema = _resolve(spec, schema)
    yield ["a"]
    yield {}
    properties = {name: _resolve(spec, sub) for name, sub in schema.get("properties", {}).items()}
    for name, sub in properties.items():
        for value in WRONG.get(_type(sub), []):
            yield {name: value}
        yield {name: None}
    for variant in range(3):
        yield {name: _pick(ODD.get(_type(sub), ["x"]), variant) for name, sub in properties.items()}
    yield {"surprise": 1}


def _pick(values: list[Any], variant: int) -> Any:
    return values[min(variant, len(values) - 1)]


def _cases(spec: dict[str, Any], real: dict[str, str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    operations = [(t, m, o) for t, ops in spec["paths"].items() for m, o in ops.items() if m in METHODS]
    # what ends the application or removes a resource goes last, so the rest reaches live resources
    operations.sort(key=lambda item: item[1] == "delete" or item[0].endswith(("/cancel", "/deactivate")))
    for template, method, operation in operations:
        for odd in ODD_IDS:
            url = re.sub(r"\{[^}]+\}", odd.replace("%", "%25").replace(" ", "%20"), template)
            yield method, url, {}
        url = re.sub(r"\{([^}]+)\}", lambda m: real.get(m.group(1), "1"), template)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                for value in QUERY_VALUES:
                    yield method, url, {"query_string": {parameter["name"]: value}}
        content = (operation.get("requestBody") or {}).get("content", {})
        if "application/json" in content:
            yield method, url, {"data": "{not json", "content_type": "application/json"}
            yield method, url, {"data": "", "content_type": "application/json"}
            yield method, url, {"data": DEEP, "content_type": "application/json"}
            yield method, url, {"data": '{"a": NaN, "b": -1e999}', "content_type": "application/json"}
            for body in _bodies(spec, content["application/json"]["schema"]):
                # stdlib JSON with \\u escapes: the test client's own encoder cannot send a lone surrogate
                yield method, url, {"data": json.dumps(body), "content_type": "application/json"}
        if "multipart/form-data" in content:
            yield method, url, {"data": {}, "content_type": "multipart/form-data"}
            yield method, url, {"data": "--nope", "content_type": "multipart/form-data; boundary=x"}


def _world(app: Any, platform: CreditFlow, tmp_path: Path) -> dict[str, str]:
    """A published product, a running application with an open task, and their ids by path name."""
    system = Principal.system()
    files = sorted(platform.settings.bpmn_dir.glob("*.bpmn"))
    deployed = platform.definitions.deploy(system, [(f.name, f.read_bytes()) for f in files])
    standard = tmp_path / "standard"
    standard.mkdir()
    shutil.copy(DEFAULT_STANDARD_DIR / "XEKD-XIN.json", standard)
    platform.products.load_standard(system, standard, progress=lambda _m: None)
    officer = login(app, "ly_officer")
    started = officer.post("/api/v1/process-instances", json={"definition_key": "demo_loan", "data": {}})
    assert started.status_code == 201, started.get_json()
    instance = started.get_json()
    users = login(app).get("/api/v1/admin/users", query_string={"tenant": "bank-lingyuan"}).get_json()
    return {
        "code": "XEKD-XIN",
        "definition_id": str(deployed.definitions[0].id),
        "instance_id": instance["id"],
        "task_id": instance["tasks"][0]["id"],
        "user_id": str(next(u["id"] for u in users["items"] if u["username"] == "ly_village")),
        "year": "2026",
        "day": "2026-10-01",
    }


@pytest.mark.parametrize("who", ["admin", "ly_admin", "ly_officer"])
def test_no_request_a_client_can_send_gives_a_500(app: Any, seeded: CreditFlow, tmp_path: Path, who: str) -> None:
    real = _world(app, seeded, tmp_path)
    api: ApiClient = login(app, who)
    spec = app.test_client().get("/api/openapi.json").get_json()
    failures = []
    sent = 0
    for method, url, kwargs in _cases(spec, real):
        response = getattr(api, method)(url, **kwargs)
        if response.status_code == 401:  # the case logged us out (logout, revoke-sessions): again, signed in
            api = login(app, who)
            response = getattr(api, method)(url, **kwargs)
        sent += 1
        if response.status_code >= 500 or (response.status_code >= 400 and response.mimetype != PROBLEM):
            failures.append((method.upper(), url[:80], str(kwargs)[:120], response.status_code, response.mimetype))
    assert sent > 1000
    assert failures == [], "\n".join(map(str, failures))
