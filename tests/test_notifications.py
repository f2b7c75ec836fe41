"""Notifications: outbox delivered to a real HTTP receiver on 127.0.0.1 (down for an hour, then up),
HMAC signatures, idempotency keys, retries with backoff, dead letters, and MQTT via the local
Mosquitto broker. Time comes from a controllable clock; nothing sleeps for an hour."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from canteen_watch.workflows.errors import InputError, PermissionDenied
from canteen_watch.workflows.escalation import escalate_overdue
from canteen_watch.workflows.models import OutboxRow
from canteen_watch.workflows.notifications import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    _claim,
    add_endpoint,
    backoff,
    deliver_due,
    list_endpoints,
    outbox,
    requeue_dead,
    set_endpoint_active,
    sign,
    verify_signature,
)
from canteen_watch.workflows.tiers import NotificationSettings, WorkflowSettings
from tests.test_workflows_support import T0, Clock, WorkflowEnv, wf, wf_sqlite  # noqa: F401

FAST = NotificationSettings(timeout_seconds=2.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers with scripted statuses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[dict] = []  # type: ignore[type-arg]
        self.statuses: list[int] = []
        self.delay = 0.0
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append({"path": self.path, "headers": {k: v for k, v in self.headers.items()}, "body": body})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args) -> None:  # type: ignore[no-untyped-def]
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    created = Receiver(free_port())
    yield created
    created.stop()


def _endpoints(env: WorkflowEnv, receiver: Receiver) -> dict[str, str]:
    manager = add_endpoint(env.sessions, env.sink, env.system, name="s-a kitchen", audience="manager", scope="site:s-a", channel="webhook", target=receiver.url("/manager"))
    regulator = add_endpoint(env.sessions, env.sink, env.system, name="Central office", audience="regulator", scope="district:Central", channel="webhook", target=receiver.url("/regulator"))
    assert manager.secret and regulator.secret and manager.secret != regulator.secret
    return {"/manager": manager.secret, "/regulator": regulator.secret}


def _pending_due(env: WorkflowEnv) -> datetime | None:
    from canteen_watch.core import as_utc

    with env.sessions() as session:
        moment = session.scalar(select(OutboxRow.next_attempt_at).where(OutboxRow.status == "pending").order_by(OutboxRow.next_attempt_at).limit(1))
    return as_utc(moment) if moment else None


def test_receiver_down_for_an_hour_loses_nothing(wf: WorkflowEnv, receiver: Receiver) -> None:
    secrets = _endpoints(wf, receiver)
    clock = Clock(T0)
    first = wf.open_case("pest", "cam-a", clock())  # dual push: manager and regulator
    attempts, delays, second_opened = 0, [], False
    while clock() < T0 + timedelta(hours=1):
        if not second_opened and clock() >= T0 + timedelta(minutes=30):
            wf.open_case("no_hat", "cam-a", clock())  # another case while the receiver is down
            second_opened = True
        report = deliver_due(wf.sessions, clock(), config=FAST)
        assert report.attempted >= 1 and report.delivered == 0 and report.dead == 0
        attempts += report.attempted
        due = _pending_due(wf)
        assert due is not None and due > clock(), "failed rows are rescheduled, never dropped"
        delays.append(due - clock())
        clock.now = due if second_opened or due < T0 + timedelta(minutes=30) else T0 + timedelta(minutes=30)
    assert attempts >= 2 * 9, "about nine attempts per notification during the hour"
    assert timedelta(seconds=30) in delays and timedelta(seconds=900) in delays and max(delays) <= timedelta(seconds=900)
    with wf.sessions() as session:
        errors = session.scalars(select(OutboxRow.last_error)).all()
    assert all("ConnectionError" in (e or "") for e in errors)
    receiver.start()  # the receiver is back
    clock.now = _pending_due(wf) or clock()
    delivered_at = clock()
    report = deliver_due(wf.sessions, delivered_at, config=FAST)
    assert report.delivered == 4 and report.retrying == 0, report.errors
    assert deliver_due(wf.sessions, clock.advance(hours=1), config=FAST).attempted == 0
    assert len(receiver.requests) == 4
    keys = set()
    for request in receiver.requests:
        headers, body = request["headers"], request["body"]
        payload = json.loads(body)
        assert verify_signature(secrets[request["path"]], headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now=delivered_at)
        assert not verify_signature(secrets[request["path"]], headers[TIMESTAMP_HEADER], body + b" ", headers[SIGNATURE_HEADER], now=delivered_at)
        assert headers[IDEMPOTENCY_HEADER] == payload["idempotency_key"] and headers["X-CanteenWatch-Event"] == "violation.new"
        assert payload["audience"] == request["path"].strip("/")
        assert set(payload["violation"]) >= {"id", "site_id", "district", "label", "tier", "due_at"}
        keys.add(payload["idempotency_key"])
    assert len(keys) == 4
    assert {json.loads(r["body"])["violation"]["id"] for r in receiver.requests if r["path"] == "/regulator"} >= {first.id}
    items = outbox(wf.sessions, wf.system)
    assert {i.status for i in items} == {"delivered"} and all(i.attempts >= 9 for i in items if i.violation_id == first.id)


def test_overdue_and_escalated_cases_are_pushed_to_both(wf_sqlite: WorkflowEnv, receiver: Receiver) -> None:
    env = wf_sqlite
    _endpoints(env, receiver)
    add_endpoint(env.sessions, env.sink, env.system, name="North office", audience="regulator", scope="district:North", channel="webhook", target=receiver.url("/north"))
    city = add_endpoint(env.sessions, env.sink, env.system, name="City bureau", audience="regulator", scope="city", channel="webhook", target=receiver.url("/city"))
    receiver.start()
    env.open_case("pest", "cam-a", T0)
    escalate_overdue(env.sessions, env.sink, T0 + timedelta(hours=49), config=env.config)  # yellow and red at once
    escalate_overdue(env.sessions, env.sink, T0 + timedelta(hours=50), config=env.config)  # nothing new
    report = deliver_due(env.sessions, T0 + timedelta(hours=50), config=WorkflowSettings(notifications=FAST))  # the whole settings.workflows works too
    assert report.delivered == 9
    seen = sorted((r["path"], r["headers"]["X-CanteenWatch-Event"]) for r in receiver.requests)
    assert seen == sorted((path, event) for path in ("/manager", "/regulator", "/city") for event in ("violation.new", "violation.overdue", "violation.escalated"))
    set_endpoint_active(env.sessions, env.sink, env.system, city.id, False)
    env.open_case("no_mask", "cam-c", T0 + timedelta(hours=50))
    deliver_due(env.sessions, T0 + timedelta(hours=50), config=FAST)
    assert [r["path"] for r in receiver.requests[9:]] == ["/north"], "North case: only North's regulator (the city endpoint is off, s-c has no manager endpoint)"


def test_retries_with_backoff_timeouts_redeliver_with_the_same_key_and_dead_letters(wf_sqlite: WorkflowEnv, receiver: Receiver) -> None:
    env = wf_sqlite
    add_endpoint(env.sessions, env.sink, env.system, name="s-a", audience="manager", scope="site:s-a", channel="webhook", target=receiver.url("/m"))
    receiver.start()
    config = NotificationSettings(timeout_seconds=0.5, max_attempts=3, backoff_base_seconds=10, backoff_max_seconds=25)
    assert [backoff(n, config).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 25, 25]
    env.open_case("pest", "cam-a", T0)
    receiver.statuses = [503]
    report = deliver_due(env.sessions, T0, config=config)
    assert report.retrying == 1 and "HTTP 503" in next(iter(report.errors.values()))
    assert deliver_due(env.sessions, T0 + timedelta(seconds=9), config=config).attempted == 0
    receiver.delay = 1.0  # the receiver processes the request but answers too late
    report = deliver_due(env.sessions, T0 + timedelta(seconds=10), config=config)
    assert report.retrying == 1 and "Timeout" in next(iter(report.errors.values()))
    receiver.delay = 0
    report = deliver_due(env.sessions, T0 + timedelta(seconds=30), config=config)
    assert report.delivered == 1
    keys = [r["headers"][IDEMPOTENCY_HEADER] for r in receiver.requests]
    assert len(keys) == 3 and len(set(keys)) == 1, "at least once: repeats carry the same idempotency key"
    # a worker that claimed rows and died: they come back after the claim lease
    env.open_case("no_mask", "cam-a", T0 + timedelta(hours=1))
    assert len(_claim(env.sessions, T0 + timedelta(hours=1), config, 10)) == 1
    assert deliver_due(env.sessions, T0 + timedelta(hours=1), config=config).attempted == 0
    assert deliver_due(env.sessions, T0 + timedelta(hours=1, seconds=config.claim_seconds), config=config).delivered == 1
    # max attempts -> dead, kept, and requeued by an admin
    env.open_case("no_hat", "cam-a", T0 + timedelta(hours=2))
    receiver.statuses = [500, 500, 500]
    moment = T0 + timedelta(hours=2)
    for _ in range(3):
        report = deliver_due(env.sessions, moment, config=config)
        moment += timedelta(seconds=30)
    assert report.dead == 1
    dead = outbox(env.sessions, env.system, status="dead")
    assert len(dead) == 1 and dead[0].attempts == 3 and "HTTP 500" in dead[0].last_error
    with pytest.raises(PermissionDenied):
        requeue_dead(env.sessions, env.user("auditor"))
    assert requeue_dead(env.sessions, env.system, now=moment) == 1
    assert deliver_due(env.sessions, moment, config=config).delivered == 1


def test_mqtt_delivery_through_the_local_broker(wf_sqlite: WorkflowEnv) -> None:
    import paho.mqtt.client as mqtt

    env = wf_sqlite
    topic = f"canteen-watch/test/{uuid.uuid4().hex}/regulator/Central"
    endpoint = add_endpoint(env.sessions, env.sink, env.system, name="Central MQTT", audience="regulator", scope="district:Central", channel="mqtt", target=topic)
    received: list[mqtt.MQTTMessage] = []
    subscribed = threading.Event()
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, message: received.append(message)
    client.on_subscribe = lambda *_args: subscribed.set()
    try:
        client.connect("127.0.0.1", 1883)
    except OSError:
        pytest.skip("no MQTT broker on 127.0.0.1:1883")
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(5)
        case = env.open_case("pest", "cam-b", T0)
        down = NotificationSettings(mqtt_host="127.0.0.1", mqtt_port=free_port(), timeout_seconds=2)
        report = deliver_due(env.sessions, T0, config=down)
        assert report.retrying == 1 and "MQTT connect" in next(iter(report.errors.values()))
        assert "no MQTT broker configured" in next(iter(deliver_due(env.sessions, T0 + timedelta(minutes=1), config=NotificationSettings()).errors.values()))
        up = NotificationSettings(mqtt_host="127.0.0.1", mqtt_port=1883, timeout_seconds=5)
        assert deliver_due(env.sessions, T0 + timedelta(hours=1), config=up).delivered == 1
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(received) == 1
        message = received[0]
        body = json.loads(message.payload)
        assert body["violation"]["id"] == case.id and body["event"] == "violation.new"
        properties = dict(message.properties.UserProperty)
        assert properties[IDEMPOTENCY_HEADER] == body["idempotency_key"]
        assert verify_signature(endpoint.secret, properties[TIMESTAMP_HEADER], message.payload, properties[SIGNATURE_HEADER], tolerance_seconds=None)
    finally:
        client.loop_stop()
        client.disconnect()


def test_endpoints_are_admin_only_validated_and_secrets_not_listed(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    good = dict(name="x", audience="manager", scope="site:s-a", channel="webhook", target="https://hooks.example.cn/canteen")
    with pytest.raises(PermissionDenied):
        add_endpoint(env.sessions, env.sink, env.user("inspector"), **good)
    for change, message in (
        ({"target": "javascript:alert(1)"}, "http:// or https://"),
        ({"target": "http://user:pw@example.cn/h"}, "user name or password"),
        ({"target": "https://example.cn/" + "a" * 600}, "at most 500"),
        ({"channel": "mqtt", "target": "canteen/#"}, "wildcards"),
        ({"channel": "sms"}, "channel"),
        ({"audience": "parents"}, "audience"),
        ({"scope": "planet:earth"}, "unknown scope level"),
        ({"name": "a\x1b[31mred"}, "control"),
        ({"secret": "short"}, "16 to 128"),
    ):
        with pytest.raises(InputError, match=message):
            add_endpoint(env.sessions, env.sink, env.system, **{**good, **change})
    created = add_endpoint(env.sessions, env.sink, env.system, **good, secret="s" * 32)
    assert created.secret == "s" * 32
    assert [e.secret for e in list_endpoints(env.sessions, env.system)] == [None]
    assert env.ledger_actions(f"endpoint:{created.id}") == ["endpoint.changed"]
    assert "s" * 32 not in "".join(env.ledger_payloads(f"endpoint:{created.id}"))


def test_signature_helpers() -> None:
    body = b'{"a":1}'
    header = sign("k" * 20, "1700000000", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature("k" * 20, "1700000000", body, header, tolerance_seconds=None)
    assert not verify_signature("k" * 20, "1700000000", body, header, now=datetime.fromtimestamp(1700000000 + 301, tz=T0.tzinfo))
    assert verify_signature("k" * 20, "1700000000", body, header, now=datetime.fromtimestamp(1700000000 + 299, tz=T0.tzinfo))
    assert not verify_signature("other-secret-xx", "1700000000", body, header, tolerance_seconds=None)
    assert not verify_signature("k" * 20, "not-a-number", body, sign("k" * 20, "not-a-number", body))
