"""Database: migrations on SQLite and PostgreSQL, slot claims idempotent under concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from canteen_watch.config import CameraConfig
from canteen_watch.core import Slot
from canteen_watch.db.base import Base, make_engine, make_session_factory, write_transaction
from canteen_watch.db.migrate import current_revision, upgrade
from canteen_watch.db.models import SiteRow, SnapshotRow
from canteen_watch.recording import claim_slot
from canteen_watch.config import redact_source


def migrated(url: str):
    engine = make_engine(url)
    upgrade(engine)
    return engine


def test_migrations_create_schema_matching_models(db_url: str) -> None:
    engine = migrated(db_url)
    assert current_revision(engine) is not None
    tables = set(inspect(engine).get_table_names())
    assert {"sites", "cameras", "snapshots", "detections", "camera_health", "camera_events"} <= tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    upgrade(engine)  # idempotent
    engine.dispose()


def _seed(sessions) -> CameraConfig:
    from canteen_watch.db.models import CameraRow

    with write_transaction(sessions) as session:
        session.add(SiteRow(id="s1", name="S1", kind="school_canteen", district="D"))
        session.flush()
        session.add(CameraRow(id="c1", site_id="s1", room="operation", source="http://x", enabled=True, rois=[]))
    return CameraConfig(id="c1", site="s1", source="http://x")


def test_claim_is_idempotent_and_failed_slots_retry(db_url: str) -> None:
    engine = migrated(db_url)
    sessions = make_session_factory(engine)
    camera = _seed(sessions)
    slot = Slot("c1", datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc))
    first = claim_slot(sessions, camera, slot, stale_after=timedelta(minutes=5))
    assert not first.duplicate and first.snapshot_id
    again = claim_slot(sessions, camera, slot, stale_after=timedelta(minutes=5))
    assert again.duplicate and "being processed" in again.reason
    with write_transaction(sessions) as session:
        session.get(SnapshotRow, first.snapshot_id).status = "failed"
    retry = claim_slot(sessions, camera, slot, stale_after=timedelta(minutes=5))
    assert not retry.duplicate and retry.snapshot_id == first.snapshot_id
    with write_transaction(sessions) as session:
        session.get(SnapshotRow, first.snapshot_id).status = "stored"
    done = claim_slot(sessions, camera, slot, stale_after=timedelta(0))
    assert done.duplicate and "already stored" in done.reason
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotRow)) == 1
        assert session.get(SnapshotRow, first.snapshot_id).attempts == 2
    engine.dispose()


def test_concurrent_claims_of_one_slot_yield_one_winner(db_url: str) -> None:
    engine = migrated(db_url)
    sessions = make_session_factory(engine)
    camera = _seed(sessions)
    slot = Slot("c1", datetime(2026, 12, 4, 10, 5, tzinfo=timezone.utc))
    results, barrier = [], threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(claim_slot(sessions, camera, slot, stale_after=timedelta(minutes=5)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(not r.duplicate for r in results) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotRow)) == 1
    engine.dispose()


def test_redact_source_removes_credentials() -> None:
    assert redact_source("rtsp://admin:pw@10.0.0.5:554/s?x=1") == "rtsp://10.0.0.5:554/s?x=1"
    assert redact_source("http://cam/picture") == "http://cam/picture"
