"""Retention against the real S3 server: expiry of plain snapshots, evidence kept until the case is
closed plus M days, evidence holds (flag and S3 legal hold), every version deleted, rows marked."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from canteen_watch.config import RetentionConfig, StorageConfig
from canteen_watch.db.models import SnapshotRow
from canteen_watch.retention import run_retention
from canteen_watch.storage import SnapshotStore
from canteen_watch.workflows.evidence import object_versions, set_evidence_hold, verify_evidence
from canteen_watch.workflows.models import RectificationRow, SnapshotExpiryRow
from canteen_watch.workflows.rectification import recheck_rectification, submit_rectification
from canteen_watch.workflows.violations import review_violation, violation_detail
from tests.test_workflows_support import T0, WorkflowEnv, jpeg_bytes, store, wf, wf_sqlite  # noqa: F401

pytestmark = pytest.mark.s3
DAY = timedelta(days=1)
POLICY = RetentionConfig(snapshot_days=15, evidence_days_after_close=30)


def _key(env: WorkflowEnv, snapshot_id: int) -> str:
    with env.sessions() as session:
        return session.get(SnapshotRow, snapshot_id).key


def _versions(store: SnapshotStore, key: str) -> int:
    return len(object_versions(store, key))


def _expired(env: WorkflowEnv) -> set[int]:
    with env.sessions() as session:
        return set(session.scalars(select(SnapshotExpiryRow.snapshot_id)).all())


def test_retention_rules(wf: WorkflowEnv, store: SnapshotStore) -> None:
    env, system = wf, wf.system
    plain, _ = env.snapshot("cam-a", T0, [], store=store)
    person, _ = env.snapshot("cam-b", T0, ["person"], store=store)  # a detection that is not a violation
    store.client.put_object(bucket_name=store.bucket, object_name=_key(env, plain), data=io.BytesIO(b"second version"), length=14)
    open_snap, (open_case,) = env.snapshot("cam-a", T0 + timedelta(hours=1), ["pest"], store=store)
    closed_snap, (closed_case,) = env.snapshot("cam-b", T0, ["open_storage"], store=store)
    dismissed_snap, (dismissed_case,) = env.snapshot("cam-c", T0, ["no_mask"], store=store)
    held_snap, (held_case,) = env.snapshot("cam-c", T0 + timedelta(hours=5), ["pest"], store=store)
    shared_snap, shared_cases = env.snapshot("cam-a", T0 + timedelta(hours=5), ["no_hat", "open_storage"], store=store)
    assert _versions(store, _key(env, plain)) == 2

    review_violation(env.sessions, env.sink, system, closed_case.id, outcome="confirmed", now=T0 + timedelta(hours=1))
    photo = submit_rectification(env.sessions, env.sink, store, system, closed_case.id, note="covered", photo=jpeg_bytes(), now=T0 + DAY)
    recheck_rectification(env.sessions, env.sink, system, closed_case.id, accepted=True, now=T0 + 2 * DAY)
    review_violation(env.sessions, env.sink, system, dismissed_case.id, outcome="false_positive", reason="reflection", now=T0 + DAY)
    set_evidence_hold(env.sessions, env.sink, store, system, held_case.id, hold=True, reason="complaint filed", now=T0 + DAY)
    review_violation(env.sessions, env.sink, system, held_case.id, outcome="false_positive", reason="but keep it", now=T0 + DAY)
    no_hat = next(c for c in shared_cases if c.label == "no_hat")
    review_violation(env.sessions, env.sink, system, no_hat.id, outcome="false_positive", reason="hat is white", now=T0 + DAY)  # its sibling stays open

    assert run_retention(env.sessions, env.sink, store, T0 + 10 * DAY, retention=POLICY).snapshots_expired == []
    report = run_retention(env.sessions, env.sink, store, T0 + 16 * DAY, retention=POLICY)
    assert sorted(report.snapshots_expired) == sorted([plain, person]) and report.failures == [] and report.stopped is None
    assert report.versions_deleted == 3, "both versions of the re-uploaded snapshot and the other one"
    for snapshot_id in (plain, person):
        assert _versions(store, _key(env, snapshot_id)) == 0
    with env.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotRow)) == 7, "rows are kept (the ledger refers to them)"
    payload = json.loads(env.ledger_payloads(f"snapshot:{plain}")[-1])
    assert env.ledger_actions(f"snapshot:{plain}") == ["snapshot.expired"] and payload["reason"] == "no_violation" and payload["versions_deleted"] == 2

    assert run_retention(env.sessions, env.sink, store, T0 + 31 * DAY, retention=POLICY).snapshots_expired == [dismissed_snap]
    report = run_retention(env.sessions, env.sink, store, T0 + 33 * DAY, retention=POLICY)
    assert report.snapshots_expired == [closed_snap] and report.photos_expired == [photo.id]
    assert not store.exists(photo.photo.key) and _versions(store, photo.photo.key) == 0
    with env.sessions() as session:
        assert session.get(RectificationRow, photo.id).photo_expired_at is not None
        assert session.get(SnapshotExpiryRow, closed_snap).reason == "case_closed"
    assert "rectification.photo_expired" in env.ledger_actions(f"violation:{closed_case.id}")
    detail = violation_detail(env.sessions, env.user("auditor"), closed_case.id)
    assert all(obj.expired for obj in detail.evidence)
    assert all(check.ok and "expired" in check.detail for check in verify_evidence(env.sessions, store, env.user("auditor"), closed_case.id))

    years = T0 + 3650 * DAY
    assert run_retention(env.sessions, env.sink, store, years, retention=POLICY).snapshots_expired == [], "open, held and shared evidence stays"
    assert _expired(env) == {plain, person, dismissed_snap, closed_snap}
    held_key = _key(env, held_snap)
    assert store.client.is_object_legal_hold_enabled(bucket_name=store.bucket, object_name=held_key, version_id=None)
    set_evidence_hold(env.sessions, env.sink, store, system, held_case.id, hold=False, reason="complaint resolved", now=years)
    assert run_retention(env.sessions, env.sink, store, years, retention=POLICY).snapshots_expired == [held_snap]
    review_violation(env.sessions, env.sink, system, open_case.id, outcome="false_positive", reason="toy rat", now=years)
    sibling = next(c for c in shared_cases if c.label == "open_storage")
    review_violation(env.sessions, env.sink, system, sibling.id, outcome="false_positive", reason="lid is on", now=years)
    report = run_retention(env.sessions, env.sink, store, years + 31 * DAY, retention=POLICY)
    assert sorted(report.snapshots_expired) == sorted([open_snap, shared_snap])
    assert run_retention(env.sessions, env.sink, store, years + 31 * DAY, retention=POLICY).snapshots_expired == [], "idempotent"
    env.verify_ledger()


def test_objects_s3_refuses_to_delete_are_reported_not_marked(wf_sqlite: WorkflowEnv, store: SnapshotStore) -> None:
    env = wf_sqlite
    locked, _ = env.snapshot("cam-a", T0, [], store=store)
    free, _ = env.snapshot("cam-a", T0 + timedelta(minutes=5), [], store=store)
    spooled, _ = env.snapshot("cam-a", T0 + timedelta(minutes=10), [], store=store)
    with env.sessions() as session:
        session.get(SnapshotRow, spooled).status = "spooled"  # not in S3 yet: left alone
        session.commit()
    store.client.enable_object_legal_hold(bucket_name=store.bucket, object_name=_key(env, locked))  # held by someone else
    report = run_retention(env.sessions, env.sink, store, T0 + 20 * DAY, retention=POLICY, batch_size=1)
    assert report.snapshots_expired == [free] and len(report.failures) == 1 and _key(env, locked) in report.failures[0]
    assert _expired(env) == {free}
    again = run_retention(env.sessions, env.sink, store, T0 + 21 * DAY, retention=POLICY)
    assert again.snapshots_expired == [] and len(again.failures) == 1
    store.client.disable_object_legal_hold(bucket_name=store.bucket, object_name=_key(env, locked))
    assert run_retention(env.sessions, env.sink, store, T0 + 22 * DAY, retention=POLICY).snapshots_expired == [locked]


def test_s3_outage_stops_the_run_without_marking(wf_sqlite: WorkflowEnv, tmp_path: Path) -> None:
    env = wf_sqlite
    env.snapshot("cam-a", T0, [])
    with env.sessions() as session:
        row = session.scalars(select(SnapshotRow)).one()
        row.bucket = "dead-bucket"
        session.commit()
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = SnapshotStore(StorageConfig(endpoint=f"127.0.0.1:{port}", bucket="dead-bucket", timeout_seconds=0.5), tmp_path / "spool", endpoint=f"127.0.0.1:{port}")
    report = run_retention(env.sessions, env.sink, dead, T0 + 20 * DAY, retention=POLICY)
    assert report.stopped is not None and "S3 delete of" in report.stopped, report
    assert report.snapshots_expired == [] and _expired(env) == set()
