"""Notifications end to end: outbox → deliver jobs → the log and signed webhooks, retries with
backoff, incidents and their retry, and the webhook/incident admin API.

The receiver is a real HTTP server on 127.0.0.1; the scheduler is driven pass by pass with the
frozen clock moved past each backoff, so nothing sleeps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from engine.catalog.config import DEFAULT_STANDARD_DIR
from engine.clock import FrozenClock
from engine.config import Settings
from engine.container import CreditFlow
from engine.jobs.housekeeping import HOUSEKEEPING, ensure_scheduled, next_run
from engine.jobs.queue import BACKOFF, RETRIES, Lane, enqueue
from engine.jobs.scheduler import OWN_LANE, PassResult, run_pass
from engine.masking import mask_number
from engine.notify import delivery
from engine.notify.delivery import TIMEOUT_SECONDS
from engine.notify.destinations import DEFAULT_NETWORKS, DestinationPolicy
from engine.notify.outbox import publish
from engine.services.auth import load_principal
from engine.services.principal import Principal
from engine.store.models import (
    AuditEvent,
    Delivery,
    Escalation,
    IdempotencyKey,
    Incident,
    Job,
    Notification,
    OutboxMessage,
    RevokedToken,
    Tenant,
    User,
    Webhook,
)
from tests.conftest import ApiClient, bank_card, deploy, login, resident_id

LY = "bank-lingyuan"
ID_NUMBER = resident_id()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receiver listens on loopback, which webhooks may reach only where the operator allows it."""
    return replace(settings, webhook_networks=(*DEFAULT_NETWORKS, "127.0.0.0/8"))


@dataclass(frozen=True)
class Received:
    path: str
    headers: Message
    body: bytes
    at: datetime  # by the receiver's clock


class Receiver:
    """A webhook endpoint that records every request and answers ``status`` (a 5xx says why)."""

    def __init__(self, clock: FrozenClock) -> None:
        self.requests: list[Received] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(Received(self.path, self.headers, body, clock.now()))  # before answering
                answer = b"receiver down" if receiver.status >= 500 else b""
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver(clock: FrozenClock) -> Iterator[Receiver]:
    endpoint = Receiver(clock)
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()
    thread.join()


class Lines(logging.Handler):
    """On the notifications logger itself, so it sees records before any root filter masks them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def notification_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    caplog.set_level(logging.INFO, logger="creditflow.notifications")
    handler = Lines()
    logger = logging.getLogger("creditflow.notifications")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def tenant_id(platform: CreditFlow, code: str) -> int:
    with platform.db.transaction() as session:
        return _tenant_id(session, code)


def _tenant_id(session: Session, code: str) -> int:
    return session.scalars(select(Tenant.id).where(Tenant.code == code)).one()


def user_id(platform: CreditFlow, username: str) -> int:
    with platform.db.transaction() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def send(platform: CreditFlow, topic: str, tenant: str = LY, payload: dict[str, Any] | None = None) -> int:
    """Publish a message the way a service does: inside its own write transaction."""
    with platform.db.transaction(write=True) as session:
        return publish(
            session,
            platform.clock.now(),
            tenant_id=_tenant_id(session, tenant),
            topic=topic,
            recipients=[3, 1, 3],
            payload=payload or {"business_key": "APP-1"},
        )


def deliveries(platform: CreditFlow, message_id: int) -> dict[int | None, Delivery]:
    """The message's deliveries by webhook id (None: the log)."""
    with platform.db.transaction() as session:
        return {d.webhook_id: d for d in session.scalars(select(Delivery).where(Delivery.message_id == message_id))}


def tick(platform: CreditFlow, delta: timedelta = timedelta(0)) -> PassResult:
    platform.clock.advance(delta)
    return run_pass(platform, platform.clock.now())


def backoff(attempt: int) -> timedelta:
    """How long the queue waits before ``attempt`` (2, 3, …) after the one before failed."""
    return BACKOFF[min(attempt - 1, len(BACKOFF)) - 1]


def fail_every_retry(platform: CreditFlow) -> None:
    """Run the passes of every retry after a first failed attempt, each when it falls due."""
    for attempt in range(2, RETRIES + 1):
        tick(platform, backoff(attempt))


def create_webhook(client: ApiClient, url: str, topics: list[str], **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/admin/webhooks", json={"url": url, "topics": topics, **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def verified(secret: str, request: Received) -> dict[str, Any]:
    """What a receiver does: check the signature over the raw body and the timestamp's age, then parse."""
    timestamp = request.headers["X-CreditFlow-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-CreditFlow-Signature"], f"sha256={expected}")
    assert abs(int(timestamp) - request.at.timestamp()) <= 300
    assert request.headers["Content-Type"] == "application/json"
    return json.loads(request.body)


def test_a_message_reaches_the_log_and_each_webhook_that_wants_its_topic(
    seeded: CreditFlow, app: Any, api: ApiClient, receiver: Receiver, notification_log: list[str]
) -> None:
    bank = login(app, "ly_admin")
    own = create_webhook(bank, f"{receiver.url}/ly", ["escalation."])
    create_webhook(bank, f"{receiver.url}/ly-loans", ["loan."])  # another topic
    province = create_webhook(api, f"{receiver.url}/province", ["escalation.task"])  # oversees every bank
    create_webhook(login(app, "qh_admin"), f"{receiver.url}/qh", [])  # another bank: everything of its own

    message_id = send(
        seeded,
        "escalation.task.orange",
        payload={"business_key": "APP-1", "applicant_name": "王小二", "id_number": ID_NUMBER},
    )
    assert set(deliveries(seeded, message_id)) == {None, own["id"], province["id"]}
    assert tick(seeded).done == 3

    assert sorted(r.path for r in receiver.requests) == ["/ly", "/province"]
    for request, hook in zip(sorted(receiver.requests, key=lambda r: r.path), (own, province), strict=True):
        body = verified(hook["secret"], request)
        assert body == {
            "id": message_id,
            "topic": "escalation.task.orange",
            "tenant": LY,
            "created_at": seeded.clock.now().isoformat(),
            "recipients": [1, 3],
            "payload": {"business_key": "APP-1", "applicant_name": "王小二", "id_number": mask_number(ID_NUMBER)},
        }
        assert request.headers["X-CreditFlow-Event"] == "escalation.task.orange"
        assert request.headers["X-CreditFlow-Delivery"] == str(deliveries(seeded, message_id)[hook["id"]].id)

    [line] = notification_log
    assert "escalation.task.orange" in line and "[1, 3]" in line and "王小二" in line
    assert mask_number(ID_NUMBER) in line and ID_NUMBER not in line

    done = deliveries(seeded, message_id).values()
    assert {(d.status, d.attempts, d.last_error) for d in done} == {("delivered", 1, None)}
    listed = bank.get(f"/api/v1/admin/webhooks/{own['id']}/deliveries").get_json()["items"]
    assert [(d["message_id"], d["topic"], d["status"], d["attempts"]) for d in listed] == [
        (message_id, "escalation.task.orange", "delivered", 1)
    ]
    assert tick(seeded, timedelta(hours=1)).acquired == 0  # delivered once, nothing left


def test_a_failing_webhook_is_retried_with_backoff_and_never_blocks_other_jobs(
    seeded: CreditFlow, app: Any, api: ApiClient, receiver: Receiver
) -> None:
    bank = login(app, "ly_admin")
    hook = create_webhook(bank, f"{receiver.url}/ly", ["escalation."])
    receiver.status = 500
    retried, resolved = send(seeded, "escalation.process.red"), send(seeded, "escalation.task.red")
    first = tick(seeded)
    assert (first.acquired, first.done) == (4, 2)  # both logs delivered, both webhook posts failed
    failing = deliveries(seeded, retried)[hook["id"]]
    assert (failing.status, failing.attempts) == ("pending", 1)
    assert failing.last_error == "HTTP 500 Internal Server Error: receiver down"

    for attempt in range(2, RETRIES + 1):
        send(seeded, "loan.approved")  # another message, for the log only
        early = tick(seeded, backoff(attempt) - timedelta(seconds=1))
        assert (early.acquired, early.done) == (1, 1)  # its log delivery went through; the webhook waits
        assert len(receiver.requests) == 2 * (attempt - 1)
        send(seeded, "loan.approved")
        due = tick(seeded, timedelta(seconds=1))
        assert (due.acquired, due.done) == (3, 1)  # in the same pass as the two failing posts
        assert len(receiver.requests) == 2 * attempt

    failing = deliveries(seeded, retried)[hook["id"]]
    assert (failing.status, failing.attempts) == ("failed", RETRIES)
    assert tick(seeded, timedelta(hours=2)).acquired == 0  # out of retries: nothing runs it again

    incidents = bank.get("/api/v1/incidents?open=true").get_json()["items"]
    assert len(incidents) == 2 and {i["kind"] for i in incidents} == {"deliver"}
    assert {i["tenant_id"] for i in incidents} == {tenant_id(seeded, LY)}
    assert all("HTTP 500" in i["message"] for i in incidents)
    assert [i["id"] for i in api.get("/api/v1/incidents?open=true").get_json()["items"]] == [
        i["id"] for i in incidents
    ]  # the province oversees its banks
    by_job = {i["job_id"]: i["id"] for i in incidents}
    with seeded.db.transaction() as session:
        jobs = {j.payload["delivery_id"]: j.id for j in session.scalars(select(Job).where(Job.kind == "deliver"))}
    retry_id = by_job[jobs[failing.id]]
    resolve_id = by_job[jobs[deliveries(seeded, resolved)[hook["id"]].id]]

    receiver.status = 200
    retry = bank.post(f"/api/v1/incidents/{retry_id}/retry")
    assert retry.status_code == 200
    assert retry.get_json()["resolved_by_id"] == user_id(seeded, "ly_admin") and retry.get_json()["resolved_at"]
    assert bank.post(f"/api/v1/incidents/{resolve_id}/resolve").status_code == 200
    assert bank.post(f"/api/v1/incidents/{retry_id}/retry").status_code == 409
    assert bank.post(f"/api/v1/incidents/{resolve_id}/retry").status_code == 409

    assert tick(seeded).done == 1  # only the retried one runs again
    request = receiver.requests[-1]
    assert verified(hook["secret"], request)["topic"] == "escalation.process.red"
    assert len(receiver.requests) == 2 * RETRIES + 1
    delivered = deliveries(seeded, retried)[hook["id"]]
    assert (delivered.status, delivered.attempts) == ("delivered", RETRIES + 1)
    assert deliveries(seeded, resolved)[hook["id"]].status == "failed"
    assert bank.get("/api/v1/incidents?open=true").get_json()["items"] == []
    closed = bank.get("/api/v1/incidents?open=false").get_json()["items"]
    assert sorted(i["id"] for i in closed) == sorted([retry_id, resolve_id])


def test_incidents_are_scoped_to_the_tenant_and_need_the_permission(
    seeded: CreditFlow, app: Any, api: ApiClient, receiver: Receiver
) -> None:
    bank = login(app, "ly_admin")
    hook = create_webhook(bank, f"{receiver.url}/ly", [])
    receiver.status = 503
    send(seeded, "escalation.task.yellow")
    with seeded.db.transaction(write=True) as session:  # a job of no bank, which no handler takes
        enqueue(session, "no_such_kind", seeded.clock.now(), seeded.clock.now())
    tick(seeded)
    fail_every_retry(seeded)
    tenantless, incident = api.get("/api/v1/incidents").get_json()["items"]  # the province sees both
    assert (tenantless["kind"], tenantless["tenant_id"]) == ("no_such_kind", None)
    assert incident["kind"] == "deliver" and "HTTP 503" in incident["message"]
    assert [i["id"] for i in bank.get("/api/v1/incidents").get_json()["items"]] == [incident["id"]]
    assert bank.post(f"/api/v1/incidents/{tenantless['id']}/resolve").status_code == 404

    other_bank = login(app, "qh_admin")
    assert other_bank.get("/api/v1/incidents").get_json()["items"] == []
    assert other_bank.post(f"/api/v1/incidents/{incident['id']}/retry").status_code == 404
    assert other_bank.post(f"/api/v1/incidents/{incident['id']}/resolve").status_code == 404
    assert other_bank.get(f"/api/v1/admin/webhooks/{hook['id']}/deliveries").status_code == 404
    officer = login(app, "ly_officer")
    assert officer.get("/api/v1/incidents").status_code == 403
    assert officer.post(f"/api/v1/incidents/{incident['id']}/retry").status_code == 403
    assert api.post("/api/v1/incidents/999999/retry").status_code == 404
    assert bank.post(f"/api/v1/incidents/{incident['id']}/resolve").status_code == 200
    assert api.post(f"/api/v1/incidents/{tenantless['id']}/resolve").status_code == 200


def test_the_secret_is_shown_once_and_webhooks_are_managed_within_the_tenant(
    seeded: CreditFlow, app: Any, api: ApiClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bank = login(app, "ly_admin")
    generated = create_webhook(bank, f"{receiver.url}/generated", ["escalation."])
    assert len(generated["secret"]) >= 32
    chosen_secret = "a-receiver-chosen-secret-of-40-characters"
    chosen = create_webhook(bank, f"{receiver.url}/chosen", [], secret=chosen_secret)
    assert chosen["secret"] == chosen_secret and chosen["tenant_id"] == tenant_id(seeded, LY)

    listing = bank.get("/api/v1/admin/webhooks")
    assert [h["id"] for h in listing.get_json()["items"]] == [generated["id"], chosen["id"]]
    assert all("secret" not in h for h in listing.get_json()["items"])
    for secret in (generated["secret"], chosen_secret):
        assert secret not in listing.get_data(as_text=True)
        assert not any(secret in record.getMessage() for record in caplog.records)
    assert api.get("/api/v1/admin/webhooks").get_json()["items"] == []  # the province's are its own

    refused = {
        "ftp": {"url": "ftp://example.org/hook", "topics": []},
        "no host": {"url": "https:///hook", "topics": []},
        "credentials": {"url": "https://user:pw@example.org/hook", "topics": []},
        "not a URL": {"url": "javascript:alert(1)", "topics": []},
        "short secret": {"url": "https://example.org/hook", "topics": [], "secret": "too-short"},
        "no topics": {"url": "https://example.org/hook"},
    }
    for case, body in refused.items():
        assert bank.post("/api/v1/admin/webhooks", json=body).status_code == 422, case
    assert bank.patch(f"/api/v1/admin/webhooks/{chosen['id']}", json={"url": "file:///etc/passwd"}).status_code == 422

    other_bank, officer = login(app, "qh_admin"), login(app, "ly_officer")
    for client, status in ((other_bank, 404), (api, 404), (officer, 403)):
        assert client.patch(f"/api/v1/admin/webhooks/{chosen['id']}", json={"active": False}).status_code == status
        assert client.delete(f"/api/v1/admin/webhooks/{chosen['id']}").status_code == status
        assert client.get(f"/api/v1/admin/webhooks/{chosen['id']}/deliveries").status_code == status
    assert officer.get("/api/v1/admin/webhooks").status_code == 403
    assert officer.post("/api/v1/admin/webhooks", json={"url": receiver.url, "topics": []}).status_code == 403

    changed = bank.patch(f"/api/v1/admin/webhooks/{generated['id']}", json={"topics": ["loan."]})
    assert changed.status_code == 200 and changed.get_json()["topics"] == ["loan."]
    assert "secret" not in changed.get_json()

    message_id = send(seeded, "escalation.task.yellow")  # now only for the webhook that takes everything
    assert set(deliveries(seeded, message_id)) == {None, chosen["id"]}
    assert bank.delete(f"/api/v1/admin/webhooks/{chosen['id']}").status_code == 204  # before it is sent
    assert [h["active"] for h in bank.get("/api/v1/admin/webhooks").get_json()["items"]] == [True, False]
    assert tick(seeded).done == 2  # the log delivery, and the dropped one's job finished
    assert receiver.requests == []
    dropped = deliveries(seeded, message_id)[chosen["id"]]
    assert (dropped.attempts, dropped.status) == (0, "dropped")  # said, not left pending for ever
    assert dropped.last_error == "the webhook was deactivated before this delivery"
    assert set(deliveries(seeded, send(seeded, "escalation.task.red"))) == {None}


@pytest.fixture
def escalating(seeded: CreditFlow, tmp_path: Path) -> CreditFlow:
    """The archetypes deployed and 陵源's variant of FND-DAINONG with a 4-hour limit on investigation."""
    system = Principal.system()
    standard = tmp_path / "standard"
    standard.mkdir()
    shutil.copy(DEFAULT_STANDARD_DIR / "FND-DAINONG.json", standard)
    files = sorted(seeded.settings.bpmn_dir.glob("*.bpmn"))
    seeded.definitions.deploy(system, [(f.name, f.read_bytes()) for f in files])
    seeded.products.load_standard(system, standard)
    with seeded.db.transaction() as session:
        officer = load_principal(session, session.scalars(select(User).where(User.username == "ly_officer")).one())
    limits = {"time_limits": {"steps": {"main_investigation": "PT4H"}}}
    seeded.products.clone(officer, "FND-DAINONG", code="LY-DAINONG", name=None, overrides=limits)
    seeded.products.publish(officer, "LY-DAINONG")
    applicant = {"name": "王小二", "id_number": ID_NUMBER, "mobile": "13800138000"}
    data = {"amount": "800000.00", "term_months": 12, "account": bank_card(), "purpose": "购买生产资料"}
    seeded.products.apply(officer, "LY-DAINONG", applicant=applicant, data=data)
    return seeded


def test_escalations_go_on_while_their_webhook_fails(
    escalating: CreditFlow, app: Any, api: ApiClient, receiver: Receiver
) -> None:
    hook = create_webhook(api, f"{receiver.url}/province", ["escalation."])
    receiver.status = 500
    # the clock: 09:00 in Beijing; yellow at 13:42, orange at 14:30 (4 working hours, lunch excluded)
    opened = escalating.clock.now()
    yellow = tick(escalating, timedelta(hours=4, minutes=42))
    assert (yellow.acquired, yellow.done) == (3, 2)  # the escalation and its log delivery; the post failed
    fail_every_retry(escalating)  # the yellow webhook delivery uses up its retries before 14:30
    orange = tick(escalating, opened + timedelta(hours=5, minutes=30) - escalating.clock.now())
    assert (orange.acquired, orange.done) == (3, 2)
    with escalating.db.transaction() as session:
        levels = list(session.scalars(select(Escalation.level).order_by(Escalation.id)))
        posts = session.scalars(select(Delivery).where(Delivery.webhook_id == hook["id"]).order_by(Delivery.id))
        statuses = [(d.status, d.attempts) for d in posts]
    assert levels == ["yellow", "orange"]
    assert statuses == [("failed", RETRIES), ("pending", 1)]
    assert [verified(hook["secret"], r)["topic"] for r in receiver.requests] == [
        *["escalation.task.yellow"] * RETRIES,
        "escalation.task.orange",
    ]


def test_webhooks_never_reach_the_platforms_own_host_or_metadata_addresses(
    seeded: CreditFlow, app: Any, receiver: Receiver
) -> None:
    """Saved URLs that name such an address are refused; a name that resolves to one is refused when the
    delivery connects, so the receiver on loopback never hears of the message."""
    seeded.webhook_destinations = DestinationPolicy.of(DEFAULT_NETWORKS)  # what production runs with
    bank = login(app, "ly_admin")
    port = receiver.server.server_address[1]
    for url in (
        f"http://127.0.0.1:{port}/x",
        "http://localhost:5432/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:5000/",
        # what the C resolver reads as loopback or "this host", however the address is spelled
        f"http://127.1:{port}/x",
        f"http://2130706433:{port}/x",
        f"http://0x7f000001:{port}/x",
        f"http://0x7f.1:{port}/x",
        f"http://017700000001:{port}/x",
        f"http://0:{port}/x",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://[::ffff:7f00:1]/",
        "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud's metadata, inside 100.64.0.0/10
    ):
        refused = bank.post("/api/v1/admin/webhooks", json={"url": url, "topics": []})
        assert refused.status_code == 422, url
        assert refused.get_json()["errors"][0]["field"] == "url" and "may not reach" in refused.get_data(as_text=True)
    for url in ("http://[127.0.0.1]/", "http://[::1/", "http://example.cn:99999/", "http://example.cn:x/"):
        malformed = bank.post("/api/v1/admin/webhooks", json={"url": url, "topics": []})
        assert malformed.status_code == 422 and "not a valid URL" in malformed.get_json()["errors"][0]["message"], url
    split = bank.post("/api/v1/admin/webhooks", json={"url": "http://example.cn/a\r\nX-Injected: 1", "topics": []})
    assert split.status_code == 422 and "control characters" in split.get_json()["errors"][0]["message"]
    intranet = create_webhook(bank, "http://10.20.30.40:8080/hook", ["escalation."])  # a bank's own system
    assert bank.patch(f"/api/v1/admin/webhooks/{intranet['id']}", json={"url": "http://localhost/"}).status_code == 422
    patched = bank.patch(f"/api/v1/admin/webhooks/{intranet['id']}", json={"url": f"http://0x7f.1:{port}/"})
    assert patched.status_code == 422 and patched.get_json()["errors"] == [
        {"field": "url", "message": "0x7f.1 is 127.0.0.1, a loopback address, which webhooks may not reach"}
    ]
    assert create_webhook(bank, "http://10.1:8080/hook", [])["url"] == "http://10.1:8080/hook"  # 10.0.0.1: allowed
    with seeded.db.transaction() as session:
        assert sorted(h.url for h in session.scalars(select(Webhook))) == [
            "http://10.1:8080/hook",
            "http://10.20.30.40:8080/hook",
        ]

    # a name the admin could point at loopback after saving: refused as the delivery connects
    hook = create_webhook(bank, f"http://creditflow-test.invalid:{port}/hook", ["loan."])
    with seeded.db.transaction(write=True) as session:
        session.get(Webhook, hook["id"]).url = f"http://localhost:{port}/hook"  # as if its DNS had changed
    message_id = send(seeded, "loan.approved")
    tick(seeded)
    failed = deliveries(seeded, message_id)[hook["id"]]
    assert failed.status == "pending" and "loopback address, which webhooks may not reach" in failed.last_error
    assert receiver.requests == []


def test_a_receiver_that_never_finishes_its_answer_is_cut_off_and_holds_up_no_other_job(
    seeded: CreditFlow, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each byte within the read timeout kept a trickling receiver's request going for minutes, and the
    one scheduler loop (timers, escalations, archiving, every bank's notifications) waited behind it."""
    monkeypatch.setattr(delivery, "DEADLINE_SECONDS", 0.3)
    silent = socket.create_server(("127.0.0.1", 0))  # takes the request, never answers it
    hook = create_webhook(login(app, "ly_admin"), f"http://127.0.0.1:{silent.getsockname()[1]}/", [])
    message = send(seeded, "escalation.task.red")
    with seeded.db.transaction(write=True) as session:  # and a BPMN timer falls due as well
        enqueue(session, "timer", seeded.clock.now(), seeded.clock.now(), instance_id=None)
    work = run_pass(seeded, seeded.clock.now(), lane=Lane(OWN_LANE, skip=True))
    assert work.acquired == 1  # the timer's loop does not take the deliveries
    notifications = run_pass(seeded, seeded.clock.now(), lane=Lane(OWN_LANE))
    assert notifications.acquired == 2 and notifications.seconds < TIMEOUT_SECONDS  # the log's, the webhook's
    failed = deliveries(seeded, message)[hook["id"]]
    assert failed.status == "pending" and failed.last_error.startswith("no complete answer within 0.3 s")
    silent.close()


def test_a_users_notification_centre_lists_what_they_were_told_and_marks_it_read(
    escalating: CreditFlow, app: Any
) -> None:
    officer, colleague = login(app, "ly_officer"), login(app, "ly_officer2")
    tick(escalating, timedelta(hours=4, minutes=42))  # the investigation turns yellow: its officer is told
    page = get_notifications(officer, unread="true")
    assert page["unread"] == 1
    (warned,) = page["items"]
    assert (warned["topic"], warned["summary"], warned["read_at"]) == (
        "escalation.task.yellow",
        "「主调查」提醒：王小二",
        None,
    )
    assert ID_NUMBER not in json.dumps(page)
    assert get_notifications(colleague)["items"] == []  # nobody reads another's

    # a task handed on is announced to whoever now has it
    (task,) = [
        t for t in officer.get("/api/v1/tasks?view=mine").get_json()["items"] if t["bpmn_id"] == "main_investigation"
    ]
    delegated = officer.post(
        f"/api/v1/tasks/{task['id']}/delegate", json={"user_id": user_id(escalating, "ly_officer2")}
    )
    assert delegated.status_code == 200, delegated.get_json()
    (handed,) = get_notifications(colleague)["items"]
    assert (handed["topic"], handed["summary"]) == ("task.delegated", "「主调查」委托您办理：王小二")
    assert get_notifications(colleague, topic="escalation")["items"] == []
    (co,) = [
        t
        for t in login(app, "ly_branch_head").get("/api/v1/tasks?view=team").get_json()["items"]
        if t["bpmn_id"] == "co_investigation"
    ]
    assigned = login(app, "ly_branch_head").post(
        f"/api/v1/tasks/{co['id']}/assign", json={"user_id": user_id(escalating, "ly_officer2")}
    )
    assert assigned.status_code == 200, assigned.get_json()
    newest = get_notifications(colleague)["items"][0]
    assert (newest["topic"], newest["summary"]) == ("task.assigned", "「协办调查」已分派给您：王小二")

    assert colleague.post(f"/api/v1/notifications/{warned['id']}/read").status_code == 404  # the officer's
    assert officer.post(f"/api/v1/notifications/{warned['id']}/read").status_code == 204
    read = get_notifications(officer)
    assert read["unread"] == 0 and read["items"][0]["read_at"] == escalating.clock.now().isoformat()
    assert get_notifications(officer, unread="true")["items"] == []
    assert colleague.post("/api/v1/notifications/read").get_json() == {"marked": 2}
    assert get_notifications(colleague)["unread"] == 0
    for query, field in (("limit=0", "limit"), ("unread=maybe", "unread"), ("cursor=x", "cursor"), ("to=me", "to")):
        refused = officer.get(f"/api/v1/notifications?{query}")
        assert refused.status_code == 422 and refused.content_type == "application/problem+json", query
        assert [e["field"] for e in refused.get_json()["errors"]] == [field], query
    assert app.test_client().get("/api/v1/notifications").status_code == 401


def get_notifications(client: ApiClient, **query: str) -> dict[str, Any]:
    response = client.get("/api/v1/notifications", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_nightly_housekeeping_deletes_what_has_served_its_purpose_and_keeps_the_rest(
    seeded: CreditFlow, app: Any
) -> None:
    deploy(seeded, "inbox.bpmn")
    ensure_scheduled(seeded)
    ensure_scheduled(seeded)  # the scheduler starting again: still one job
    t0 = seeded.clock.now()  # 09:00 in Beijing
    assert housekeeping_jobs(seeded) == [datetime(2026, 12, 1, 18, 30, tzinfo=UTC)]  # 02:30 the next night
    with seeded.db.transaction(write=True) as session:  # two nodes that started at the same moment
        enqueue(session, HOUSEKEEPING, next_run(t0), t0)
    officer = login(app, "ly_officer")
    started = officer.post(
        "/api/v1/process-instances", json={"definition_key": "inbox_flow"}, headers={"Idempotency-Key": "k-1"}
    )
    assert started.status_code == 201, started.get_json()
    assert login(app, "ly_officer").post("/api/v1/auth/logout").status_code == 204
    message_id = send(seeded, "escalation.task.red")  # to users 1 and 3
    tick(seeded)  # logged
    seeded.notifications.mark_read(principal(seeded, 1), notification_of(seeded, 1, message_id))

    tick(seeded, timedelta(days=100))  # the night's jobs have long been due
    assert rows(seeded) == {
        "idempotency_key": 0,  # 30 days
        "revoked_token": 0,  # the token expired long ago
        "notification": 2,  # 180 days, read or not
        "outbox_message": 1,
        "delivery": 1,  # logged 100 days ago
    }
    assert housekeeping_jobs(seeded) == [next_run(seeded.clock.now())]  # tomorrow night's, once
    assert seeded.clock.now() < next_run(seeded.clock.now()) <= seeded.clock.now() + timedelta(days=1)
    recent = login(app, "ly_officer").post(  # the morning's token has expired too
        "/api/v1/process-instances", json={"definition_key": "inbox_flow"}, headers={"Idempotency-Key": "k-2"}
    )
    assert recent.status_code == 201
    tick(seeded, timedelta(days=1))  # the next night keeps what is recent
    assert rows(seeded)["idempotency_key"] == 1

    tick(seeded, timedelta(days=80))
    assert rows(seeded) == {
        "idempotency_key": 0,
        "revoked_token": 0,
        "notification": 0,  # 181 days old: user 3 never read theirs
        "outbox_message": 0,  # in nobody's list, delivered everywhere: gone
        "delivery": 0,
    }
    with seeded.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) > 0  # the audit trails stay
    assert t0 + timedelta(days=181) == seeded.clock.now()


def test_a_night_whose_sweep_keeps_failing_is_an_incident_and_the_nights_after_run_all_the_same(
    seeded: CreditFlow,
) -> None:
    ensure_scheduled(seeded)
    (first_night,) = housekeeping_jobs(seeded)
    with seeded.db.transaction(write=True) as session:  # what a botched manual change leaves behind
        session.execute(text("ALTER TABLE revoked_token RENAME TO revoked_token_away"))
    try:
        tick(seeded, first_night - seeded.clock.now())
        fail_every_retry(seeded)
        with seeded.db.transaction() as session:
            (incident,) = session.scalars(select(Incident))
        assert incident.kind == HOUSEKEEPING and "revoked_token" in incident.message
        ensure_scheduled(seeded)  # a node starting meanwhile: the next night is queued already
        assert waiting_housekeeping(seeded) == [next_run(first_night)]
    finally:
        with seeded.db.transaction(write=True) as session:
            session.execute(text("ALTER TABLE revoked_token_away RENAME TO revoked_token"))
    with seeded.db.transaction(write=True) as session:  # a sign-out whose token has expired since
        session.add(RevokedToken(jti="signed-out", user_id=1, expires_at=first_night))
    assert tick(seeded, next_run(first_night) - seeded.clock.now()).done == 1
    assert rows(seeded)["revoked_token"] == 0  # the second night swept
    assert waiting_housekeeping(seeded) == [next_run(next_run(first_night))]
    with seeded.db.transaction() as session:  # the failed night waits for someone to retry or resolve it
        assert session.scalar(select(Job.retries_left).where(Job.id == incident.job_id)) == 0


def waiting_housekeeping(platform: CreditFlow) -> list[datetime]:
    with platform.db.transaction() as session:
        waiting = select(Job.due_at).where(Job.kind == HOUSEKEEPING, Job.retries_left > 0)
        return list(session.scalars(waiting))


def housekeeping_jobs(platform: CreditFlow) -> list[datetime]:
    with platform.db.transaction() as session:
        return list(session.scalars(select(Job.due_at).where(Job.kind == HOUSEKEEPING)))


def rows(platform: CreditFlow) -> dict[str, int]:
    tables = (IdempotencyKey, RevokedToken, Notification, OutboxMessage, Delivery)
    with platform.db.transaction() as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0 for t in tables}


def principal(platform: CreditFlow, user: int) -> Principal:
    with platform.db.transaction() as session:
        return load_principal(session, session.get(User, user))


def notification_of(platform: CreditFlow, user: int, message_id: int) -> int:
    with platform.db.transaction() as session:
        query = select(Notification.id).where(Notification.user_id == user, Notification.message_id == message_id)
        return session.scalars(query).one()
