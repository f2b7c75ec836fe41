"""End-to-end pipeline on real components: simulated HTTP cameras, SeaweedFS S3, SQLite/PostgreSQL."""

from __future__ import annotations

import hashlib
import time
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from canteen_watch.config import Settings
from canteen_watch.db.base import make_engine, make_session_factory
from canteen_watch.db.models import CameraEventRow, SnapshotRow
from canteen_watch.pipeline import PipelineContext, maintain, process_slot
from canteen_watch.runtime import build_context, open_database, sync_config
from canteen_watch.s3server import EmbeddedS3, find_free_base
from canteen_watch.service import SnapshotService
from canteen_watch.storage import SnapshotStore
from snapshots.simulated import SimulatedCameraServer
from tests.conftest import S3_ACCESS, S3_SECRET

USER, PASSWORD = "admin", "pw-for-tests"
T0 = datetime(2026, 12, 4, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cameras_server():
    with SimulatedCameraServer(None, USER, PASSWORD, auth="digest") as server:
        yield server


def http_camera(server: SimulatedCameraServer, cam: str, *, interval: float = 300, timeout: float = 3, endpoint: str | None = None) -> dict:
    source = server.url_for(endpoint) if endpoint else server.url_for(cam)
    return {
        "id": cam, "site": "site-a", "source": source, "username": USER, "password": PASSWORD, "auth": "digest",
        "timeout_seconds": timeout, "schedule": {"interval_seconds": interval, "misfire_grace_seconds": 5},
    }


def rows(context: PipelineContext) -> list[SnapshotRow]:
    with context.sessions() as session:
        return list(session.scalars(select(SnapshotRow).order_by(SnapshotRow.slot_time)))


def test_slot_stores_object_whose_sha256_matches_row(db_url: str, make_settings, cameras_server) -> None:
    settings = make_settings([http_camera(cameras_server, "cam-1")], db_url=db_url)
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=False)
        outcome = process_slot(context, "cam-1", T0)
        assert outcome.status == "stored", outcome.reason
        [row] = rows(context)
        data = context.store.get(row.key)
        assert hashlib.sha256(data).hexdigest() == row.sha256 == outcome.sha256
        assert context.store.metadata(row.key)["sha256"] == row.sha256
        assert row.key == "site-a/cam-1/2026/12/04/080000-cam-1@20261204T080000Z.jpg"
        assert row.size == len(data) and row.width > 0 and row.blurred is not None
        assert row.classifier_status == "skipped"


def test_rerunning_a_slot_is_a_noop(db_url: str, make_settings, cameras_server) -> None:
    settings = make_settings([http_camera(cameras_server, "cam-1")], db_url=db_url)
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=False)
        first = process_slot(context, "cam-1", T0)
        objects_before = list(context.store.client.list_objects(bucket_name=settings.storage.bucket, recursive=True, include_version=True))
        second = process_slot(context, "cam-1", T0 + timedelta(microseconds=500))  # same slot
        objects_after = list(context.store.client.list_objects(bucket_name=settings.storage.bucket, recursive=True, include_version=True))
        assert first.status == "stored" and second.status == "duplicate"
        assert len(rows(context)) == 1
        assert len(objects_after) == len(objects_before) == 1  # no second version either


@pytest.mark.parametrize(("endpoint", "reason"), [("corrupt", "truncated jpeg"), ("empty", "empty")])
def test_corrupt_or_empty_jpeg_is_rejected_with_reason(make_settings, cameras_server, endpoint: str, reason: str) -> None:
    settings = make_settings([http_camera(cameras_server, "cam-bad", endpoint=endpoint)])
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=False)
        outcome = process_slot(context, "cam-bad", T0)
        assert outcome.status == "failed"
        [row] = rows(context)
        assert row.status == "failed" and reason in row.failure_reason.lower()
        assert row.key is None
        assert list(context.store.client.list_objects(bucket_name=settings.storage.bucket, recursive=True)) == []


def test_s3_down_mid_run_spools_then_flushes_exactly(tmp_path: Path, make_settings, cameras_server) -> None:
    server = EmbeddedS3(data_dir=tmp_path / "own-s3", port=find_free_base(), access_key=S3_ACCESS, secret_key=S3_SECRET)
    server.start()
    settings = make_settings([http_camera(cameras_server, "cam-1")], storage={"endpoint": server.endpoint})
    try:
        with ExitStack() as stack:
            context = build_context(settings, stack, classify=False)
            statuses = [process_slot(context, "cam-1", T0 + timedelta(minutes=5 * i)).status for i in range(3)]
            server.stop()
            statuses += [process_slot(context, "cam-1", T0 + timedelta(minutes=5 * i)).status for i in range(3, 7)]
            assert statuses == ["stored"] * 3 + ["spooled"] * 4
            assert context.store.spool.depth() == 4
            assert maintain(context)["spool_uploaded"] == 0  # still down: nothing lost, nothing uploaded
            server.start()
            uploaded, deadline = 0, time.monotonic() + 30
            while context.store.spool.depth() and time.monotonic() < deadline:  # a fresh server may refuse writes briefly
                uploaded += maintain(context)["spool_uploaded"]
                time.sleep(0.2)
            assert uploaded == 4
            assert context.store.spool.depth() == 0
            assert maintain(context) == {"journal_replayed": 0, "spool_uploaded": 0, "rows_reconciled": 0}
            all_rows = rows(context)
            assert [r.status for r in all_rows] == ["stored"] * 7
            objects = list(context.store.client.list_objects(bucket_name=settings.storage.bucket, recursive=True, include_version=True))
            assert len(objects) == 7
            for row in all_rows:
                assert hashlib.sha256(context.store.get(row.key)).hexdigest() == row.sha256
    finally:
        server.stop()


def test_database_down_journals_then_replays(make_settings, cameras_server, tmp_path: Path) -> None:
    settings = make_settings([http_camera(cameras_server, "cam-1")])
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=False)
        real_sessions = context.sessions
        dead = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1")
        context.sessions = make_session_factory(dead)
        outcome = process_slot(context, "cam-1", T0)
        assert outcome.status == "stored" and "journalled" in outcome.reason
        assert context.journal.depth() == 1
        assert maintain(context)["journal_replayed"] == 0  # still down
        context.sessions = real_sessions
        assert maintain(context)["journal_replayed"] == 1
        assert context.journal.depth() == 0
        [row] = rows(context)
        assert row.status == "stored" and row.sha256 == outcome.sha256
        assert hashlib.sha256(context.store.get(row.key)).hexdigest() == row.sha256
        assert process_slot(context, "cam-1", T0).status == "duplicate"


def test_scheduler_fires_and_hung_camera_does_not_delay_others(make_settings, cameras_server) -> None:
    cams = [http_camera(cameras_server, f"cam-{i}", interval=2) for i in range(3)]
    cams.append(http_camera(cameras_server, "cam-hung", interval=2, timeout=3.5, endpoint="hang"))
    settings = make_settings(cams, health={"offline_after_failures": 2})
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=False)
        service = stack.enter_context(SnapshotService(context, maintenance_seconds=30))
        time.sleep(9.5)
        service.stop()
        all_rows = rows(context)
    for cam in ("cam-0", "cam-1", "cam-2"):
        slots = sorted(r.slot_time for r in all_rows if r.camera_id == cam and r.status == "stored")
        # The hung camera holds a worker for 3.5 s per slot; the others must still keep their 2 s grid.
        assert len(slots) >= 4, f"{cam} kept only {len(slots)} slots"
        assert all(s.second % 2 == 0 and s.microsecond == 0 for s in slots), f"{cam} slots off the grid: {slots}"
        gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:])]
        assert gaps.count(2.0) >= len(gaps) - 1, f"{cam} skipped slots: {gaps}"
    hung = [r for r in all_rows if r.camera_id == "cam-hung"]
    assert hung and all(r.status == "failed" and "within" in r.failure_reason for r in hung)
    with context.sessions() as session:
        kinds = session.scalars(select(CameraEventRow.kind).where(CameraEventRow.camera_id == "cam-hung")).all()
    assert kinds == ["offline"]


def test_status_reports_spool_depth(make_settings, cameras_server, tmp_path: Path) -> None:
    from canteen_watch.status import collect_status

    settings = make_settings([http_camera(cameras_server, "cam-1")], storage={"endpoint": f"127.0.0.1:{find_free_base()}"})
    engine, sessions = open_database(settings)
    sync_config(sessions, settings)
    store = SnapshotStore(settings.storage, settings.spool_path, endpoint=settings.storage.endpoint)
    context = PipelineContext(settings=settings, sessions=sessions, store=store, classify_enabled=False)
    for i in range(2):
        assert process_slot(context, "cam-1", T0 + timedelta(minutes=5 * i)).status == "spooled"
    report = collect_status(sessions, settings)
    assert report.spool_files == 2 and report.spooled_rows == 2
    assert report.cameras[0].spooled == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(SnapshotRow)) == 2
    engine.dispose()


def test_settings_fixture_is_isolated(make_settings, cameras_server) -> None:
    a: Settings = make_settings([http_camera(cameras_server, "cam-1")])
    b: Settings = make_settings([http_camera(cameras_server, "cam-1")])
    assert a.storage.bucket != b.storage.bucket


def test_real_classifier_detections_fold_into_one_violation(make_settings, tmp_path: Path) -> None:
    """A folder camera showing a real rat photo: the shipped models flag a pest; repeated slots fold into one case."""
    import shutil

    from canteen_watch.workflows.models import ViolationRow
    from tests.conftest import shared_data

    rats = sorted(shared_data("pests", "rat_detector", "images", "valid").glob("*.jpg"))[:1]
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(rats[0], folder / "rat.jpg")
    camera = {"id": "cam-store", "site": "site-a", "room": "storage", "source": f"folder://{folder}", "schedule": {"interval_seconds": 300}}
    settings = make_settings([camera])
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=True)
        outcomes = [process_slot(context, "cam-store", T0 + timedelta(minutes=5 * i)) for i in range(3)]
        assert all(o.status == "stored" and o.detections >= 1 for o in outcomes), [o.reason for o in outcomes]
        with context.sessions() as session:
            violations = session.scalars(select(ViolationRow)).all()
            from canteen_watch.db.models import DetectionRow

            labels = set(session.scalars(select(DetectionRow.label)).all())
            pest_versions = set(session.scalars(select(DetectionRow.model_version).where(DetectionRow.label == "pest")).all())
            snapshot_versions = set(session.scalars(select(SnapshotRow.model_version)).all())
        assert "pest" in labels
        assert len(pest_versions) == 1 and next(iter(pest_versions)).startswith("pest-")
        assert len(snapshot_versions) == 1 and next(iter(pest_versions)) in next(iter(snapshot_versions))
        pest_cases = [v for v in violations if v.label == "pest"]
        assert len(pest_cases) == 1 and pest_cases[0].detection_count >= 3 and pest_cases[0].tier == 1
        history = context.sink.history(context.sessions(), f"violation:{pest_cases[0].id}")
        assert history and history[0].action.startswith("violation.")


def test_reviewed_cases_export_as_training_set(make_settings, tmp_path: Path) -> None:
    """Confirmed cases file their crops under the violation class (the input of train --from-reviews)."""
    import shutil

    from canteen_watch.auth import system_actor
    from canteen_watch.workflows.labels import export_reviews
    from canteen_watch.workflows.models import ViolationRow
    from canteen_watch.workflows.violations import review_violation
    from tests.conftest import shared_data

    rat = sorted(shared_data("pests", "rat_detector", "images", "valid").glob("*.jpg"))[0]
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(rat, folder / "rat.jpg")
    settings = make_settings([{"id": "cam-store", "site": "site-a", "source": f"folder://{folder}"}])
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=True)
        for i in range(2):
            process_slot(context, "cam-store", T0 + timedelta(minutes=5 * i))
        with context.sessions() as session:
            case = session.scalars(select(ViolationRow).where(ViolationRow.label == "pest")).one()
        review_violation(context.sessions, context.sink, system_actor("cli"), case.id, outcome="confirmed", reason="rat on the shelf")
    counts = export_reviews(settings, tmp_path / "reviews")
    assert counts.get("pest/pest", 0) >= 1 and not any(k.startswith("pest/none") for k in counts)
    crops = list((tmp_path / "reviews" / "pest" / "pest").glob("*.jpg"))
    assert 1 <= len(crops) <= counts["pest/pest"]  # identical crops (the same frame twice) are written once
