"""A server killed with SIGKILL loses nothing it acknowledged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.container import CreditFlow
from engine.services.principal import Principal
from tests.conftest import PASSWORD, deploy


@contextmanager
def server(settings: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "CREDITFLOW_SECRET_KEY": settings.secret_key,
        "CREDITFLOW_DATA_DIR": str(settings.data_dir),
        "CREDITFLOW_PDF_WORKERS": "0",  # this model signs no contract: no LibreOffice to start per server
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--threads", "2"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the socket accepts connections
        assert "listening on" in line, line
        yield proc, line.split("listening on ")[1].split("/api/docs")[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_sigkill_after_an_acknowledged_completion_loses_nothing(seeded: CreditFlow) -> None:
    deploy(seeded, "linear.bpmn")
    with server(seeded.settings) as (proc, base):
        officer, reviewer, approver = (
            call(base, "POST", "/api/v1/auth/token", {"username": name, "password": PASSWORD})[1]["access_token"]
            for name in ("ly_officer", "ly_reviewer", "ly_approver")
        )
        status, started = call(
            base, "POST", "/api/v1/process-instances", {"definition_key": "linear", "data": {"amount": 20000}}, officer
        )
        assert status == 201
        review = started["tasks"][0]["id"]
        status, after_review = call(
            base,
            "POST",
            f"/api/v1/tasks/{review}/complete",
            {"data": {"recommendation": "approve", "comment": "同意", "suggested_amount": "20000.00"}},
            reviewer,
        )
        assert status == 200  # acknowledged ...
        proc.kill()  # ... then SIGKILL, no shutdown of any kind
        proc.wait(timeout=30)

    with server(seeded.settings) as (_proc, base):
        status, instance = call(base, "GET", f"/api/v1/process-instances/{started['id']}", token=approver)
        assert status == 200
        assert instance["version"] == after_review["version"]
        assert [t["bpmn_id"] for t in instance["tasks"]] == ["approve"]
        status, done = call(
            base,
            "POST",
            f"/api/v1/tasks/{instance['tasks'][0]['id']}/complete",
            {"data": {"decision": "approve", "approved_amount": "20000.00", "approved_rate_bp": 35}},
            approver,
        )
        assert status == 200 and done["status"] == "completed"
    assert seeded.instances.verify_audit(Principal.system(), started["id"]).ok
