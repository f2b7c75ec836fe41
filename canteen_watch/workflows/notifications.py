"""Dual push of new, overdue and escalated cases through a transactional outbox.

Each case event is written to ``notification_outbox`` in the same transaction as the change that
caused it, one row per matching endpoint: the site's manager endpoints and the regulator
endpoints of its district (or the whole city). :func:`deliver_due` (scheduled by the lead) sends
due rows and records the outcome:

* **webhook**: HTTP POST of the JSON body with headers ``Idempotency-Key``,
  ``X-CanteenWatch-Event``, ``X-CanteenWatch-Timestamp`` and ``X-CanteenWatch-Signature:
  sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>." + body`` under the endpoint's secret
  (:func:`verify_signature` is the receiver's side). Any 2xx is success.
* **mqtt**: MQTT 5 publish (QoS 1 by default) of the same body to the endpoint's topic, with the
  same values as user properties.

Delivery is at least once: a failed attempt is retried with exponential backoff
(``backoff_base_seconds * 2**(attempt-1)``, capped at ``backoff_max_seconds``) until
``max_attempts``, then the row is marked ``dead`` (kept, and :func:`requeue_dead` puts it back).
Rows are claimed with a lease before sending, so two workers do not send the same row at once and
a crashed worker's rows become due again. Receivers de-duplicate with the idempotency key.
Nothing in a body is personal data: ids, labels, times and states only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, Scope, ScopeLevel, User, authorize, refresh_actor
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.events import EventSink
from canteen_watch.workflows.errors import InputError, NotFoundError
from canteen_watch.workflows.models import ROW_LOCK, EndpointRow, OutboxRow, ViolationRow
from canteen_watch.workflows.tiers import NotificationSettings, WorkflowSettings
from canteen_watch.workflows.validation import clean_text

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CanteenWatch-Signature"
TIMESTAMP_HEADER = "X-CanteenWatch-Timestamp"
EVENT_HEADER = "X-CanteenWatch-Event"
DELIVERY_HEADER = "X-CanteenWatch-Delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "canteen-watch-notifier/1"

EVENT_NEW = "violation.new"
EVENT_OVERDUE = "violation.overdue"
EVENT_ESCALATED = "violation.escalated"
EVENTS = (EVENT_NEW, EVENT_OVERDUE, EVENT_ESCALATED)

AUDIENCES = ("manager", "regulator")
CHANNELS = ("webhook", "mqtt")

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


# ------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Endpoint:
    """A notification endpoint (the secret is shown only when the endpoint is created).

    Attributes:
        id: Endpoint id.
        name: Label for people (e.g. ``Central district food-safety office``).
        audience: ``manager`` or ``regulator``.
        scope: Part of the jurisdiction tree it receives cases for.
        channel: ``webhook`` or ``mqtt``.
        target: URL or MQTT topic.
        active: Inactive endpoints get no new notifications.
        secret: HMAC secret; only set in the value returned by :func:`add_endpoint`.
    """

    id: int
    name: str
    audience: str
    scope: Scope
    channel: str
    target: str
    active: bool
    secret: str | None = None


@dataclass(frozen=True)
class OutboxItem:
    """A notification in the outbox."""

    id: int
    idempotency_key: str
    endpoint_id: int
    violation_id: int | None
    event: str
    audience: str
    channel: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None


@dataclass
class DeliveryReport:
    """What one run of :func:`deliver_due` did."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    errors: dict[int, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- signatures


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + HMAC-SHA256(secret, ``timestamp.`` + body)."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, header: str, *, now: datetime | None = None, tolerance_seconds: int | None = 300) -> bool:
    """Receiver side: True when ``header`` signs ``body`` and the timestamp is recent enough.

    Args:
        secret: The endpoint's secret.
        timestamp: ``X-CanteenWatch-Timestamp`` (Unix seconds).
        body: The raw request body.
        header: ``X-CanteenWatch-Signature``.
        now: Clock for the freshness check.
        tolerance_seconds: Largest accepted age; None skips the check (retries carry a fresh
            timestamp, so a receiver may keep it short).
    """
    if not hmac.compare_digest(sign(secret, timestamp, body), header or ""):
        return False
    if tolerance_seconds is None:
        return True
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = int(as_utc(now or utcnow()).timestamp())
    return abs(current - sent) <= tolerance_seconds


# ------------------------------------------------------------------------------------- endpoints


def _check_target(channel: str, target: object) -> str:
    text = clean_text(target, "target", max_length=500)
    assert text is not None
    if channel == "webhook":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError("must be an http:// or https:// URL with a host", field="target")
        if parts.username or parts.password:
            raise InputError("must not carry a user name or password; the signature authenticates requests", field="target")
    else:
        if any(ch in text for ch in "+#") or text.startswith("$") or " " in text:
            raise InputError("MQTT topic must not contain wildcards (+, #), spaces or start with $", field="target")
    return text


def _to_endpoint(row: EndpointRow, *, with_secret: bool = False) -> Endpoint:
    return Endpoint(
        id=row.id,
        name=row.name,
        audience=row.audience,
        scope=Scope(ScopeLevel(row.scope_level), row.scope_ref),
        channel=row.channel,
        target=row.target,
        active=row.active,
        secret=row.secret if with_secret else None,
    )


def add_endpoint(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    *,
    name: str,
    audience: str,
    scope: Scope | str,
    channel: str,
    target: str,
    secret: str | None = None,
    now: datetime | None = None,
) -> Endpoint:
    """Register where a manager or regulator receives notifications (admin only).

    Args:
        sessions: Session factory.
        sink: Ledger sink (``endpoint.changed``; the secret is never ledgered).
        actor: An admin.
        name: Label for people.
        audience: ``manager`` (a site's own staff) or ``regulator`` (the district or city office).
        scope: ``site:<id>``, ``district:<name>`` or ``city``.
        channel: ``webhook`` or ``mqtt``.
        target: ``https://…`` URL, or MQTT topic.
        secret: HMAC secret; a random one is made when omitted.
        now: Clock.

    Returns:
        The endpoint, with its secret (shown this once).
    """
    now = as_utc(now or utcnow())
    label = clean_text(name, "name", max_length=100)
    if audience not in AUDIENCES:
        raise InputError(f"must be one of {', '.join(AUDIENCES)}", field="audience")
    if channel not in CHANNELS:
        raise InputError(f"must be one of {', '.join(CHANNELS)}", field="channel")
    parsed_scope = scope if isinstance(scope, Scope) else Scope.parse(scope)
    checked_target = _check_target(channel, target)
    if secret is not None and (not isinstance(secret, str) or not 16 <= len(secret) <= 128 or not secret.isprintable()):
        raise InputError("must be 16 to 128 printable characters", field="secret")
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.ENDPOINT_MANAGE)
        row = EndpointRow(
            name=label,
            audience=audience,
            scope_level=parsed_scope.level.value,
            scope_ref=parsed_scope.ref,
            channel=channel,
            target=checked_target,
            secret=secret or secrets.token_urlsafe(32),
            active=True,
            created_at=now,
        )
        session.add(row)
        session.flush()
        sink.append(
            session,
            actor=acting.tag,
            action="endpoint.changed",
            subject=f"endpoint:{row.id}",
            payload={"change": "created", "audience": audience, "scope": str(parsed_scope), "channel": channel},
        )
        return _to_endpoint(row, with_secret=True)


def set_endpoint_active(sessions: sessionmaker[Session], sink: EventSink, actor: User, endpoint_id: int, active: bool) -> Endpoint:
    """Switch an endpoint off (no new notifications; queued ones are still delivered) or on."""
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.ENDPOINT_MANAGE)
        row = session.get(EndpointRow, endpoint_id, with_for_update=ROW_LOCK)
        if row is None:
            raise NotFoundError(f"no notification endpoint {endpoint_id}")
        if row.active != active:
            row.active = active
            sink.append(session, actor=acting.tag, action="endpoint.changed", subject=f"endpoint:{row.id}", payload={"change": "enabled" if active else "disabled"})
        return _to_endpoint(row)


def list_endpoints(sessions: sessionmaker[Session], actor: User) -> list[Endpoint]:
    """Every endpoint, without secrets (admin only)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.ENDPOINT_MANAGE)
        return [_to_endpoint(row) for row in session.scalars(select(EndpointRow).order_by(EndpointRow.id)).all()]


# ------------------------------------------------------------------------------------- enqueue


def _covering_endpoints(session: Session, site_id: str, district: str) -> list[EndpointRow]:
    covers = or_(
        EndpointRow.scope_level == ScopeLevel.CITY.value,
        and_(EndpointRow.scope_level == ScopeLevel.DISTRICT.value, EndpointRow.scope_ref == district),
        and_(EndpointRow.scope_level == ScopeLevel.SITE.value, EndpointRow.scope_ref == site_id),
    )
    return list(session.scalars(select(EndpointRow).where(EndpointRow.active.is_(True), covers).order_by(EndpointRow.id)).all())


def violation_summary(row: ViolationRow, district: str) -> dict[str, Any]:
    """The case as it appears in a notification body (no personal data)."""
    return {
        "id": row.id,
        "site_id": row.site_id,
        "district": district,
        "camera_id": row.camera_id,
        "label": row.label,
        "tier": row.tier,
        "state": row.state,
        "first_seen_at": as_utc(row.first_seen_at).isoformat(),
        "last_seen_at": as_utc(row.last_seen_at).isoformat(),
        "due_at": as_utc(row.due_at).isoformat(),
        "escalation": ("none", "yellow", "red")[min(row.escalation_level, 2)],
        "detection_count": row.detection_count,
        "rectification_round": row.rectification_round,
    }


def enqueue_violation_event(session: Session, row: ViolationRow, district: str, event: str, now: datetime, *, occurrence: str) -> int:
    """Queue ``event`` about a case for every endpoint that covers its site, in the caller's transaction.

    Args:
        session: The transaction that makes the change.
        row: The case (flushed, so it has an id).
        district: The case's district.
        event: One of :data:`EVENTS`.
        now: Clock; the rows are due at once.
        occurrence: Distinguishes repeats of one event on one case (e.g. ``r0-l1``); with the
            event, case and endpoint it makes the idempotency key, so queueing twice is harmless.

    Returns:
        Rows added.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    endpoints = _covering_endpoints(session, row.site_id, district)
    audiences = {endpoint.audience for endpoint in endpoints}
    for audience in AUDIENCES:
        if audience not in audiences:
            log.warning("no active %s endpoint covers site %s (district %s): %s for case %s is not pushed to a %s", audience, row.site_id, district, event, row.id, audience)
    added = 0
    summary = violation_summary(row, district)
    for endpoint in endpoints:
        key = f"{event}:{row.id}:{occurrence}:{endpoint.id}"
        if session.scalar(select(OutboxRow.id).where(OutboxRow.idempotency_key == key)) is not None:
            continue
        body = {
            "event": event,
            "idempotency_key": key,
            "audience": endpoint.audience,
            "created_at": now.isoformat(),
            "violation": summary,
        }
        session.add(
            OutboxRow(
                idempotency_key=key,
                endpoint_id=endpoint.id,
                violation_id=row.id,
                event=event,
                audience=endpoint.audience,
                channel=endpoint.channel,
                target=endpoint.target,
                payload=json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        added += 1
    if added:
        session.flush()
    return added


# ------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class _Claimed:
    id: int
    key: str
    event: str
    audience: str
    channel: str
    target: str
    body: bytes
    secret: str
    attempts: int


def backoff(attempts: int, config: NotificationSettings) -> timedelta:
    """Delay before the next attempt after ``attempts`` failed ones."""
    seconds = config.backoff_base_seconds * (2 ** max(0, min(attempts - 1, 30)))
    return timedelta(seconds=min(seconds, config.backoff_max_seconds))


def _claim(sessions: sessionmaker[Session], now: datetime, config: NotificationSettings, limit: int) -> list[_Claimed]:
    with write_transaction(sessions) as session:
        rows = session.execute(
            select(OutboxRow, EndpointRow.secret)
            .join(EndpointRow, EndpointRow.id == OutboxRow.endpoint_id)
            .where(OutboxRow.status == PENDING, OutboxRow.next_attempt_at <= now)
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
            .with_for_update(of=OutboxRow, skip_locked=True)
        ).all()
        lease = now + timedelta(seconds=config.claim_seconds)
        claimed = []
        for row, secret in rows:
            row.attempts += 1
            row.next_attempt_at = lease
            claimed.append(_Claimed(row.id, row.idempotency_key, row.event, row.audience, row.channel, row.target, row.payload.encode("utf-8"), secret, row.attempts))
        return claimed


def _headers(item: _Claimed, timestamp: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: item.key,
        EVENT_HEADER: item.event,
        DELIVERY_HEADER: str(item.id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(item.secret, timestamp, item.body),
    }


def _send_webhook(http: requests.Session, item: _Claimed, timestamp: str, timeout: float) -> str | None:
    try:
        response = http.post(item.target, data=item.body, headers=_headers(item, timestamp), timeout=(timeout, timeout), allow_redirects=False)
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"[:1000]
    try:
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"
    finally:
        response.close()


def _send_mqtt(items: list[_Claimed], timestamp: str, config: NotificationSettings) -> dict[int, str | None]:
    """Publish MQTT items over one connection; returns id -> error (None on success)."""
    if not items:
        return {}
    if not config.mqtt_host:
        return {item.id: "no MQTT broker configured (workflows.notifications.mqtt_host)" for item in items}
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"canteen-watch-{uuid.uuid4().hex[:12]}", protocol=mqtt.MQTTv5)
    client.connect_timeout = config.timeout_seconds
    if config.mqtt_username:
        client.username_pw_set(config.mqtt_username, config.mqtt_password.get_secret_value() if config.mqtt_password else None)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_client, _userdata, _flags, reason_code, _properties=None) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            refused.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(config.mqtt_host, config.mqtt_port, keepalive=30)
    except (OSError, ValueError) as exc:
        return {item.id: f"MQTT connect to {config.mqtt_host}:{config.mqtt_port} failed: {exc}"[:1000] for item in items}
    results: dict[int, str | None] = {}
    client.loop_start()
    try:
        if not connected.wait(config.timeout_seconds) or refused:
            reason = refused[0] if refused else "no CONNACK"
            return {item.id: f"MQTT broker refused or did not answer: {reason}" for item in items}
        pending = []
        for item in items:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = "application/json"
            properties.UserProperty = [(k, v) for k, v in _headers(item, timestamp).items() if k not in ("Content-Type", "User-Agent")]
            info = client.publish(item.target, item.body, qos=config.mqtt_qos, properties=properties)
            pending.append((item, info))
        for item, info in pending:
            try:
                info.wait_for_publish(timeout=config.timeout_seconds)
            except (RuntimeError, ValueError) as exc:
                results[item.id] = f"MQTT publish failed: {exc}"
                continue
            results[item.id] = None if info.is_published() else f"MQTT publish not acknowledged (rc {info.rc})"
    finally:
        client.disconnect()
        client.loop_stop()
    return results


def deliver_due(sessions: sessionmaker[Session], now: datetime | None = None, *, config: NotificationSettings | WorkflowSettings | None = None, limit: int | None = None) -> DeliveryReport:
    """Send every notification that is due at ``now`` and record the outcome (scheduled job).

    Args:
        sessions: Session factory.
        now: Clock; pass a controllable one in tests. Retries are scheduled relative to it.
        config: Delivery settings (``settings.workflows.notifications``; the whole
            ``settings.workflows`` is accepted too).
        limit: Most rows to send in this run (default ``config.batch_size``).

    Returns:
        Counts of what happened; ``errors`` maps outbox id to the failure text.
    """
    now = as_utc(now or utcnow())
    if isinstance(config, WorkflowSettings):
        config = config.notifications
    config = config or NotificationSettings()
    claimed = _claim(sessions, now, config, limit or config.batch_size)
    report = DeliveryReport(attempted=len(claimed))
    if not claimed:
        return report
    timestamp = str(int(now.timestamp()))
    outcomes: dict[int, str | None] = {}
    with requests.Session() as http:
        for item in claimed:
            if item.channel == "webhook":
                outcomes[item.id] = _send_webhook(http, item, timestamp, config.timeout_seconds)
    outcomes.update(_send_mqtt([item for item in claimed if item.channel == "mqtt"], timestamp, config))
    by_id = {item.id: item for item in claimed}
    with write_transaction(sessions) as session:
        for outbox_id, error in outcomes.items():
            item = by_id[outbox_id]
            if error is None:
                session.execute(update(OutboxRow).where(OutboxRow.id == outbox_id).values(status=DELIVERED, delivered_at=now, last_error=None))
                report.delivered += 1
                continue
            report.errors[outbox_id] = error
            if item.attempts >= config.max_attempts:
                session.execute(update(OutboxRow).where(OutboxRow.id == outbox_id).values(status=DEAD, last_error=error))
                report.dead += 1
                log.error("notification %s (%s) is dead after %d attempts: %s", outbox_id, item.key, item.attempts, error)
            else:
                session.execute(update(OutboxRow).where(OutboxRow.id == outbox_id).values(next_attempt_at=now + backoff(item.attempts, config), last_error=error))
                report.retrying += 1
                log.info("notification %s to %s failed (attempt %d), retrying later: %s", outbox_id, item.target, item.attempts, error)
    return report


def requeue_dead(sessions: sessionmaker[Session], actor: User, *, now: datetime | None = None, endpoint_id: int | None = None) -> int:
    """Put dead notifications back in the queue (admin only); returns how many."""
    now = as_utc(now or utcnow())
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.ENDPOINT_MANAGE)
        query = update(OutboxRow).where(OutboxRow.status == DEAD)
        if endpoint_id is not None:
            query = query.where(OutboxRow.endpoint_id == endpoint_id)
        result = session.execute(query.values(status=PENDING, attempts=0, next_attempt_at=now))
        return int(result.rowcount or 0)


def outbox(sessions: sessionmaker[Session], actor: User, *, violation_id: int | None = None, status: str | None = None, limit: int = 200) -> list[OutboxItem]:
    """Outbox rows, newest first (admin only), to see what was sent and what is stuck."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.ENDPOINT_MANAGE)
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(min(max(limit, 1), 1000))
        if violation_id is not None:
            query = query.where(OutboxRow.violation_id == violation_id)
        if status is not None:
            query = query.where(OutboxRow.status == status)
        return [
            OutboxItem(
                id=row.id,
                idempotency_key=row.idempotency_key,
                endpoint_id=row.endpoint_id,
                violation_id=row.violation_id,
                event=row.event,
                audience=row.audience,
                channel=row.channel,
                status=row.status,
                attempts=row.attempts,
                next_attempt_at=as_utc(row.next_attempt_at),
                last_error=row.last_error,
                delivered_at=as_utc(row.delivered_at) if row.delivered_at else None,
            )
            for row in session.scalars(query).all()
        ]
