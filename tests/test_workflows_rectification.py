"""Rectification (note and photo in real S3), re-check, evidence holds and verification, and every
service action attempted in every state (legal ones succeed, illegal ones raise TransitionError)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from minio.error import S3Error

from canteen_watch.storage import SnapshotStore
from canteen_watch.workflows.errors import InputError, PermissionDenied, TransitionError
from canteen_watch.workflows.escalation import escalate_overdue
from canteen_watch.workflows.evidence import set_evidence_hold, verify_evidence
from canteen_watch.workflows.rectification import recheck_rectification, submit_rectification
from canteen_watch.workflows.types import Violation
from canteen_watch.workflows.violations import review_violation, violation_detail
from tests.test_workflows_support import T0, Clock, WorkflowEnv, jpeg_bytes, png_bytes, store, wf, wf_sqlite  # noqa: F401

pytestmark = pytest.mark.s3
HOUR = timedelta(hours=1)


def _open(env: WorkflowEnv, store: SnapshotStore) -> Violation:
    return env.open_case("pest", "cam-a", T0, store=store)


def _to(env: WorkflowEnv, store: SnapshotStore, state: str) -> Violation:
    """A case brought to ``state`` through the services."""
    case = _open(env, store)
    admin, manager, inspector = env.user("admin"), env.user("manager"), env.user("inspector")
    if state == "open":
        return case
    if state == "dismissed":
        return review_violation(env.sessions, env.sink, admin, case.id, outcome="false_positive", reason="shadow", now=T0 + HOUR)
    review_violation(env.sessions, env.sink, manager, case.id, outcome="confirmed", now=T0 + HOUR)
    if state == "rectification_due":
        return case
    submit_rectification(env.sessions, env.sink, store, manager, case.id, note="traps set", photo=jpeg_bytes(), now=T0 + 2 * HOUR)
    if state == "rectification_submitted":
        return case
    return recheck_rectification(env.sessions, env.sink, inspector, case.id, accepted=True, now=T0 + 3 * HOUR)


ACTIONS: dict[str, Callable[[WorkflowEnv, SnapshotStore, int], Violation | object]] = {
    "confirm": lambda env, st, vid: review_violation(env.sessions, env.sink, env.user("admin"), vid, outcome="confirmed", now=T0 + 5 * HOUR),
    "dismiss": lambda env, st, vid: review_violation(env.sessions, env.sink, env.user("admin"), vid, outcome="false_positive", reason="r", now=T0 + 5 * HOUR),
    "submit_rectification": lambda env, st, vid: submit_rectification(env.sessions, env.sink, st, env.user("admin"), vid, note="n", photo=png_bytes(), now=T0 + 5 * HOUR),
    "accept": lambda env, st, vid: recheck_rectification(env.sessions, env.sink, env.user("admin"), vid, accepted=True, now=T0 + 5 * HOUR),
    "reject": lambda env, st, vid: recheck_rectification(env.sessions, env.sink, env.user("admin"), vid, accepted=False, note="still dirty", now=T0 + 5 * HOUR),
}
LEGAL = {
    ("open", "confirm"): "rectification_due",
    ("open", "dismiss"): "dismissed",
    ("rectification_due", "submit_rectification"): "rectification_submitted",
    ("rectification_submitted", "accept"): "closed",
    ("rectification_submitted", "reject"): "rectification_due",
}
STATES = ("open", "rectification_due", "rectification_submitted", "closed", "dismissed")


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_service_action_in_every_state(wf_sqlite: WorkflowEnv, store: SnapshotStore, state: str, action: str) -> None:
    case = _to(wf_sqlite, store, state)
    before = wf_sqlite.ledger_actions(f"violation:{case.id}")
    expected = LEGAL.get((state, action))
    if expected is None:
        with pytest.raises(TransitionError) as caught:
            ACTIONS[action](wf_sqlite, store, case.id)
        assert caught.value.state == state and caught.value.action == action
        assert f"cannot {action} a violation that is {state}" in str(caught.value)
        assert wf_sqlite.ledger_actions(f"violation:{case.id}") == before, "a refused action leaves no trace"
        assert violation_detail(wf_sqlite.sessions, wf_sqlite.user("admin"), case.id).violation.state == state
    else:
        ACTIONS[action](wf_sqlite, store, case.id)
        assert violation_detail(wf_sqlite.sessions, wf_sqlite.user("admin"), case.id).violation.state == expected
        assert len(wf_sqlite.ledger_actions(f"violation:{case.id}")) == len(before) + 1


def test_full_loop_with_rejection_on_both_databases(wf: WorkflowEnv, store: SnapshotStore) -> None:
    clock = Clock(T0)
    manager, inspector = wf.user("manager"), wf.user("inspector")
    case = wf.open_case("open_storage", "cam-a", clock(), store=store)
    review_violation(wf.sessions, wf.sink, manager, case.id, outcome="confirmed", now=clock.advance(hours=1))
    photo = jpeg_bytes("lids on every tub")
    first = submit_rectification(wf.sessions, wf.sink, store, manager, case.id, note="Covered all containers.\nStaff retrained.", photo=photo, now=clock.advance(hours=2))
    assert first.round == 1 and first.photo.sha256 == hashlib.sha256(photo).hexdigest()
    assert first.photo.key.startswith(f"rectifications/s-a/{case.id}/round-1-") and first.photo.key.endswith(".jpg")
    assert store.get(first.photo.key, first.photo.version_id) == photo, "the photo is in S3, byte for byte"
    assert store.client.stat_object(bucket_name=store.bucket, object_name=first.photo.key).content_type == "image/jpeg"
    with pytest.raises(PermissionDenied, match="canteen_manager may not rectification.recheck"):
        recheck_rectification(wf.sessions, wf.sink, manager, case.id, accepted=True, now=clock())
    with pytest.raises(InputError, match="note: is required"):
        recheck_rectification(wf.sessions, wf.sink, inspector, case.id, accepted=False, now=clock())
    rejected = recheck_rectification(wf.sessions, wf.sink, inspector, case.id, accepted=False, note="One tub still open.", now=clock.advance(hours=1))
    assert rejected.state == "rectification_due" and rejected.due_at == clock() + timedelta(hours=72), "rejected: due again with a fresh tier deadline"
    second = submit_rectification(wf.sessions, wf.sink, store, manager, case.id, note="Fixed.", photo=png_bytes(), now=clock.advance(hours=1))
    assert second.round == 2 and second.photo.key.endswith(".png")
    closed = recheck_rectification(wf.sessions, wf.sink, inspector, case.id, accepted=True, note="OK", now=clock.advance(hours=1))
    assert closed.state == "closed" and closed.closed_at == clock() and closed.rectification_round == 2
    detail = violation_detail(wf.sessions, wf.user("auditor"), case.id)
    assert [(r.round, r.outcome) for r in detail.rectifications] == [(1, "rejected"), (2, "accepted")]
    assert [h.action for h in detail.history] == [
        "violation.opened", "violation.reviewed", "violation.rectified", "violation.rechecked", "violation.rectified", "violation.closed",
    ]
    assert detail.allowed_actions == []
    rectified = [json.loads(p) for p in wf.ledger_payloads(f"violation:{case.id}")][2]
    assert rectified["round"] == 1 and rectified["role"] == "canteen_manager" and "note" not in rectified
    assert [c.ok for c in verify_evidence(wf.sessions, store, wf.user("auditor"), case.id)] == [True, True, True]
    wf.verify_ledger()


def test_photo_and_note_are_checked_before_anything_is_stored(wf_sqlite: WorkflowEnv, store: SnapshotStore) -> None:
    env = wf_sqlite
    case = _to(env, store, "rectification_due")
    manager = env.user("manager")
    for photo, message in ((b"", "photo: is empty"), (b"GIF89a....", "photo: must be a JPEG or PNG"), ("not bytes", "photo: must be the bytes"), (b"\xff\xd8\xff" + b"0" * (10 * 1024 * 1024), "at most 10485760")):
        with pytest.raises(InputError, match=message):
            submit_rectification(env.sessions, env.sink, store, manager, case.id, note="n", photo=photo)  # type: ignore[arg-type]
    for note, message in (("", "note: is required"), ("x" * 4001, "at most 4000"), ("ok\x00nul", "control or invisible"), ("ok\u202eevil", "U\\+202E")):
        with pytest.raises(InputError, match=message):
            submit_rectification(env.sessions, env.sink, store, manager, case.id, note=note, photo=jpeg_bytes())
    with pytest.raises(PermissionDenied):
        submit_rectification(env.sessions, env.sink, store, env.user("inspector"), case.id, note="n", photo=jpeg_bytes())
    assert [o.object_name for o in store.client.list_objects(bucket_name=store.bucket, prefix="rectifications/", recursive=True)] == []
    hostile = "<script>alert(1)</script> '; DROP TABLE violations; -- =HYPERLINK(\"http://x\")\n\tsecond line 中文"
    rect = submit_rectification(env.sessions, env.sink, store, manager, case.id, note=hostile, photo=jpeg_bytes())
    assert violation_detail(env.sessions, manager, case.id).rectifications[0].note == hostile == rect.note, "stored verbatim"


def test_evidence_hold_uses_s3_legal_hold_and_verify_detects_tampering(wf_sqlite: WorkflowEnv, store: SnapshotStore) -> None:
    env = wf_sqlite
    case = _to(env, store, "rectification_submitted")
    inspector, manager = env.user("inspector"), env.user("manager")
    with pytest.raises(PermissionDenied):
        set_evidence_hold(env.sessions, env.sink, store, manager, case.id, hold=True, reason="court")
    with pytest.raises(InputError, match="reason: is required"):
        set_evidence_hold(env.sessions, env.sink, store, inspector, case.id, hold=True, reason=" ")
    held = set_evidence_hold(env.sessions, env.sink, store, inspector, case.id, hold=True, reason="Case referred to the district court")
    assert held.violation.evidence_hold and held.s3_failures == [] and held.s3_objects == 2
    objects = [o for o in violation_detail(env.sessions, inspector, case.id).evidence]
    for obj in objects:
        assert store.client.is_object_legal_hold_enabled(bucket_name=store.bucket, object_name=obj.key, version_id=obj.version_id)
        with pytest.raises(S3Error):
            store.client.remove_object(bucket_name=store.bucket, object_name=obj.key, version_id=obj.version_id)
    # tamper: a new version replaces the photo; the recorded version still verifies, the latest would not
    photo = next(o for o in objects if o.kind == "rectification_photo")
    import io

    store.client.put_object(bucket_name=store.bucket, object_name=photo.key, data=io.BytesIO(b"forged"), length=6)
    checks = verify_evidence(env.sessions, store, env.user("auditor"), case.id)
    assert all(c.ok for c in checks), "the recorded versions are intact"
    from canteen_watch.db.base import write_transaction
    from canteen_watch.workflows.models import RectificationRow

    with write_transaction(env.sessions) as session:  # forget the version: the latest (forged) object is read
        session.get(RectificationRow, photo.ref).photo_version_id = None
    bad = [c for c in verify_evidence(env.sessions, store, env.user("auditor"), case.id) if not c.ok]
    assert len(bad) == 1 and "sha256 mismatch" in bad[0].detail
    with pytest.raises(PermissionDenied):
        verify_evidence(env.sessions, store, manager, case.id)
    released = set_evidence_hold(env.sessions, env.sink, store, inspector, case.id, hold=False, reason="Court case closed")
    assert not released.violation.evidence_hold
    snapshot = next(o for o in objects if o.kind == "snapshot")
    assert not store.client.is_object_legal_hold_enabled(bucket_name=store.bucket, object_name=snapshot.key, version_id=snapshot.version_id)
    assert env.ledger_actions(f"violation:{case.id}")[-2:] == ["violation.evidence_hold", "violation.evidence_hold"]


def test_escalation_does_not_touch_submitted_cases_and_restarts_after_rejection(wf_sqlite: WorkflowEnv, store: SnapshotStore) -> None:
    env = wf_sqlite
    case = _to(env, store, "rectification_submitted")  # submitted at T0+2h, tier 1 due T0+24h
    assert escalate_overdue(env.sessions, env.sink, T0 + timedelta(days=5), config=env.config).yellow == []
    rejected = recheck_rectification(env.sessions, env.sink, env.user("inspector"), case.id, accepted=False, note="no", now=T0 + timedelta(days=5))
    assert rejected.due_at == T0 + timedelta(days=6) and rejected.escalation_level == 0
    report = escalate_overdue(env.sessions, env.sink, T0 + timedelta(days=6, minutes=1), config=env.config)
    assert report.yellow == [case.id]
