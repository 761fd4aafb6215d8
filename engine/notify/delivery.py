"""Delivering outbox messages: the ``deliver`` job, one per delivery (the log, or one webhook).

The HTTP request is made outside any database transaction (a slow receiver must not hold locks):
the delivery is read in one short transaction, posted, and its result recorded in another — with
the job's completion fence on success. A failure raises, so the job queue retries it with backoff
and raises an incident after the last retry; the delivery is marked ``failed`` on that last one.
Delivery is at least once: a receiver deduplicates by ``X-CreditFlow-Delivery``.

A webhook request, and how a receiver verifies it::

    POST <webhook url>
    Content-Type: application/json
    X-CreditFlow-Event: escalation.task.orange
    X-CreditFlow-Delivery: 42              (the delivery id: the same on every retry)
    X-CreditFlow-Timestamp: 1764550800     (Unix seconds when this attempt was signed)
    X-CreditFlow-Signature: sha256=<hex>

    {"id": <message id>, "topic": …, "tenant": <tenant code>, "created_at": <ISO 8601, UTC>,
     "recipients": [<user ids>], "payload": {…}}

``<hex>`` is HMAC-SHA256, keyed with the webhook's secret, of the timestamp header, a dot and the
raw body bytes exactly as received: ``hmac(secret, f"{timestamp}.".encode() + body)``. Compare it
with a constant-time comparison before parsing the JSON, and refuse timestamps more than a few
minutes from your own clock, so a captured request cannot be replayed later.

Only a 2xx answer counts as delivered. Redirects are not followed (a 3xx is a failure), so a
receiver cannot send the signed payload on to another host, and every connection goes only where
``engine.notify.destinations`` allows. ID and card numbers in the payload are
masked in the log and in webhook bodies alike: both leave the database.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from engine.jobs.queue import AcquiredJob
from engine.masking import mask_sensitive, mask_text
from engine.notify.destinations import DestinationPolicy
from engine.store.models import Delivery, OutboxMessage, Tenant, Webhook

if TYPE_CHECKING:
    from engine.container import CreditFlow

notifications = logging.getLogger("creditflow.notifications")

TIMEOUT_SECONDS = 5.0  # to connect, and between two reads
DEADLINE_SECONDS = 15.0  # for the whole request, however the receiver paces its answer
_ERROR_BODY_BYTES = 200  # of a refusing receiver's answer, kept in ``last_error``


class DeliveryFailed(Exception):
    """The receiver did not take the message; the job queue retries it with backoff."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the signed body goes to the configured URL or nowhere."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class _GuardedConnections:
    """An HTTP(S) handler whose connections go only where the destination policy allows."""

    policy: DestinationPolicy

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        def guarded(host: str, **options: Any) -> Any:
            connection = http_class(host, **options)
            # what http.client calls to open the socket
            connection._create_connection = functools.partial(_with_deadline, self.policy.connect)
            return connection

        return super().do_open(guarded, req, **kwargs)  # type: ignore[misc]


_deadline = threading.local()  # the cut-off of the request this thread is making


def _with_deadline(connect: Any, address: Any, *args: Any) -> socket.socket:
    """A socket shut DEADLINE_SECONDS after it opened. The read timeout restarts with every byte, so
    a receiver trickling its answer would otherwise hold the delivery loop as long as it liked."""
    sock = connect(address, *args)
    timer = threading.Timer(DEADLINE_SECONDS, _cut, args=(sock,))
    timer.daemon = True
    timer.start()
    _deadline.timer = timer
    return sock


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: the request ended in time
        sock.shutdown(socket.SHUT_RDWR)


class _GuardedHTTP(_GuardedConnections, urllib.request.HTTPHandler):
    pass


class _GuardedHTTPS(_GuardedConnections, urllib.request.HTTPSHandler):
    pass


@functools.cache
def _opener(policy: DestinationPolicy) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_GuardedHTTP(), _GuardedHTTPS()]
    for handler in handlers:
        handler.policy = policy
    return urllib.request.build_opener(_NoRedirects, *handlers)


@dataclass(frozen=True)
class _Hook:
    url: str
    secret: str


@dataclass(frozen=True)
class _Target:
    """What one attempt needs, read before the HTTP request so no transaction spans it."""

    delivery_id: int
    message: dict[str, Any]  # the message as its receivers see it
    hook: _Hook | None  # None: the log channel


def deliver(platform: CreditFlow, job: AcquiredJob, _now: datetime) -> None:
    """The ``deliver`` job handler.

    Timestamps come from the clock, not the pass's ``now``: a pass working through a backlog may
    have started minutes before this attempt, and receivers check the signature's timestamp.
    """
    with platform.db.transaction(write=True) as session:
        target = _pending(session, job.payload["delivery_id"])
        if target is None or target.hook is None:  # nothing (left) to send, or the log: one transaction
            platform.jobs.finish(session, job)
            if target is not None:
                _record(session, target.delivery_id, status="delivered", delivered_at=platform.clock.now())
                message = target.message
                notifications.info(
                    "notification %s (%s) to %s: %s",
                    message["topic"],
                    message["tenant"],
                    message["recipients"],
                    json.dumps(message["payload"], ensure_ascii=False, sort_keys=True),
                )
            return
    # a webhook: the request is made outside any transaction, its result recorded in another
    _post(platform, job, target.delivery_id, target.message, target.hook)
    with platform.db.transaction(write=True) as session:
        platform.jobs.finish(session, job)
        _record(session, target.delivery_id, status="delivered", delivered_at=platform.clock.now())


_d, _m, _t, _w = Delivery.__table__.c, OutboxMessage.__table__.c, Tenant.__table__.c, Webhook.__table__.c
_PENDING = (
    select(
        _d.id,
        _d.status,
        _d.channel,
        _m.id.label("message_id"),
        _m.topic,
        _m.created_at,
        _m.recipients,
        _m.payload,
        _t.code,
        _w.url,
        _w.secret,
        _w.active,
    )
    .select_from(
        Delivery.__table__.join(OutboxMessage.__table__, _m.id == _d.message_id)
        .outerjoin(Tenant.__table__, _t.id == _m.tenant_id)
        .outerjoin(Webhook.__table__, _w.id == _d.webhook_id)
    )
    .where(_d.id == bindparam("delivery_id"))
)
_RECORD = update(Delivery.__table__).where(_d.id == bindparam("delivery_id")).values(attempts=_d.attempts + 1)


def _pending(session: Session, delivery_id: int) -> _Target | None:
    """The attempt to make, or None when there is nothing (left) to send."""
    row = session.execute(_PENDING, {"delivery_id": delivery_id}).first()
    if row is None or row.status == "delivered":
        return None
    if row.channel == "webhook" and not row.active:  # deactivated, or deleted (outer join: None)
        dropped = {"status": "dropped", "last_error": "the webhook was deactivated before this delivery"}
        session.execute(update(Delivery).where(Delivery.id == row.id).values(**dropped))  # said, not silent
        return None
    return _Target(
        row.id,
        {
            "id": row.message_id,
            "topic": row.topic,
            "tenant": row.code,
            "created_at": row.created_at.isoformat(),
            "recipients": list(row.recipients or []),
            "payload": mask_sensitive(row.payload or {}),
        },
        _Hook(row.url, row.secret) if row.channel == "webhook" else None,
    )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CreditFlow-Signature`` value for a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _post(platform: CreditFlow, job: AcquiredJob, delivery_id: int, message: dict[str, Any], hook: _Hook) -> None:
    """POST the signed message; on any failure record it on the delivery, then raise for a retry."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(platform.clock.now().timestamp())
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked (http/https) when the URL is saved
        hook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "CreditFlow-Webhook/1",
            "X-CreditFlow-Event": message["topic"],
            "X-CreditFlow-Delivery": str(delivery_id),
            "X-CreditFlow-Timestamp": str(timestamp),
            "X-CreditFlow-Signature": sign(hook.secret, timestamp, body),
        },
    )
    started = time.monotonic()
    try:
        with _opener(platform.webhook_destinations).open(request, timeout=TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as exc:  # any answer but 2xx, a redirect included
        answer = _answer(exc)
        error = f"HTTP {exc.code} {exc.reason}" + (f": {answer}" if answer else "")
    except urllib.error.URLError as exc:  # a refused destination too (DestinationRefused)
        error = f"unreachable: {exc.reason}"
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, garbled answers
        error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - started >= DEADLINE_SECONDS:
            error = f"no complete answer within {DEADLINE_SECONDS:g} s ({error})"
    finally:
        timer = getattr(_deadline, "timer", None)
        if timer is not None:
            timer.cancel()
            _deadline.timer = None
    error = mask_text(error)
    last = job.retries_left <= 1  # the queue raises an incident when this attempt fails
    with platform.db.transaction(write=True) as session:
        _record(session, delivery_id, status="failed" if last else "pending", last_error=error)
    raise DeliveryFailed(f"webhook delivery {delivery_id}: {error}")


def _answer(refusal: urllib.error.HTTPError) -> str:
    """The start of a refusing receiver's body ("invalid signature"), for ``last_error``."""
    try:
        return refusal.read(_ERROR_BODY_BYTES).decode(errors="replace").strip()
    except (OSError, http.client.HTTPException):
        return ""


def _record(session: Session, delivery_id: int, **values: Any) -> None:
    """One attempt more, with its outcome."""
    session.execute(_RECORD, {"delivery_id": delivery_id, **values})  # the other columns SET from the values
