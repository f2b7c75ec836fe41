"""Wiring: build the database, storage, ledger and classifier handles a process needs."""

from __future__ import annotations

import logging
from contextlib import ExitStack

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import CameraConfig, Settings, redact_source
from canteen_watch.db.base import make_engine, make_session_factory, write_transaction
from canteen_watch.db.migrate import upgrade
from canteen_watch.db.models import CameraRow, SiteRow
from canteen_watch.ledger.sink import LedgerSink, ledger_sink
from canteen_watch.pipeline import PipelineContext
from canteen_watch.s3server import EmbeddedS3, all_ports_free
from classifiers.base import FrameClassifier, NoModelClassifier
from canteen_watch.storage import SnapshotStore, StorageUnavailableError

log = logging.getLogger(__name__)


def open_database(settings: Settings, *, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory; the schema is upgraded to the newest migration first."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, busy_timeout_seconds=settings.database.busy_timeout_seconds, echo=settings.database.echo)
    if migrate:
        upgrade(engine)
    return engine, make_session_factory(engine)


def sync_config(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Mirror the configured sites and cameras into the database (credentials never stored)."""
    with write_transaction(sessions) as session:
        for site in settings.sites:
            session.merge(SiteRow(id=site.id, name=site.name, kind=site.kind.value, district=site.district))
        session.flush()
        for camera in settings.cameras:
            session.merge(_camera_row(camera))


def _camera_row(camera: CameraConfig) -> CameraRow:
    return CameraRow(
        id=camera.id,
        site_id=camera.site,
        room=camera.room.value,
        source=redact_source(camera.source),
        enabled=camera.enabled,
        rois=[roi.model_dump(mode="json") for roi in camera.rois],
    )


def open_storage(settings: Settings, stack: ExitStack) -> SnapshotStore:
    """The snapshot store; starts the embedded S3 server when no endpoint is configured."""
    endpoint = settings.storage.endpoint
    if not endpoint:
        server = EmbeddedS3.from_config(settings.storage, (settings.data_dir / "s3").resolve())
        if all_ports_free(server.port):
            log.info("starting the embedded S3 server on %s", server.endpoint)
            stack.enter_context(server)
        else:
            log.info("using the embedded S3 server already running on %s", server.endpoint)
        endpoint = server.endpoint
    store = SnapshotStore(settings.storage, settings.spool_path, endpoint=endpoint)
    try:
        store.ensure_bucket()
    except StorageUnavailableError as exc:
        log.warning("%s; snapshots are spooled until it answers", exc)
    return store


def open_sink(settings: Settings, sessions: sessionmaker[Session]) -> LedgerSink:
    """The ledger every accountable event is appended to."""
    return ledger_sink(settings, sessions)


def build_context(settings: Settings, stack: ExitStack, *, classify: bool = True) -> PipelineContext:
    """Everything ``process_slot`` needs, for this process."""
    engine, sessions = open_database(settings)
    stack.callback(engine.dispose)
    sync_config(sessions, settings)
    store = open_storage(settings, stack)
    classifier = load_classifier(settings) if classify else None
    context = PipelineContext(settings=settings, sessions=sessions, store=store, sink=open_sink(settings, sessions), classify_enabled=classify)
    if classifier is not None:
        context.classifier = classifier
    return context


def load_classifier(settings: Settings) -> FrameClassifier:
    """The shipped classifier (violations only, per-ROI heads from ``data_dir/roi_heads``).

    Falls back to the honest "no model" placeholder when no intact weights are installed.
    """
    from classifiers.inference import build_classifier

    classifier = build_classifier(observations=False, roi_heads_dir=settings.data_dir / "roi_heads")
    if isinstance(classifier, NoModelClassifier):
        log.warning("no classifier weights installed: snapshots are stored and recorded as 'no_model'")
    return classifier
