"""``process_slot``: capture → store → classify → record, as one plain function.

Any executor can call it: the scheduler's thread pool on one box, or a worker on a distributed
queue. It is idempotent on (camera id, slot time): the slot is claimed in the database first, so
running it twice never stores or records twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import CameraConfig, Settings
from canteen_watch.core import ClassifierResult, Slot, SlotOutcome, StoredObject
from canteen_watch.journal import Journal, JournalRecord, record_from_outcome
from canteen_watch.events import EventSink, NullSink
from canteen_watch.recording import Claim, claim_slot, mark_uploaded, record_failure, record_success
from canteen_watch.db.models import SnapshotRow
from canteen_watch.storage import SnapshotStore, StorageUnavailableError, snapshot_key
from classifiers.base import FrameClassifier, NoModelClassifier
from snapshots.capture import CapturedFrame, CaptureError, capture_frame
from snapshots.quality import assess

@dataclass
class PipelineContext:
    """Everything a slot needs; built once per process and shared by all slots."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: SnapshotStore
    classifier: FrameClassifier = field(default_factory=NoModelClassifier)
    sink: EventSink = field(default_factory=NullSink)
    classify_enabled: bool = True
    stale_claim_after: timedelta = timedelta(minutes=10)
    journal: Journal = field(init=False)

    def __post_init__(self) -> None:
        self.journal = Journal(self.settings.data_dir.resolve() / "journal")

    def capture(self, camera: CameraConfig) -> CapturedFrame:
        """Grab one frame from ``camera`` (hard timeout inside)."""
        return capture_frame(camera, jpeg_quality=self.settings.capture.jpeg_quality)


def classify(context: PipelineContext, camera: CameraConfig, image: np.ndarray) -> ClassifierResult:
    """Run the classifier; a crash becomes an ``error`` result, never a lost snapshot."""
    if not context.classify_enabled:
        return ClassifierResult(detections=[], model_version=None, status="skipped", detail="classification disabled")
    started = time.perf_counter()
    try:
        result = context.classifier.classify(image, camera.rois, camera_id=camera.id)
    except Exception as exc:  # noqa: BLE001 - a classifier bug must not lose the snapshot
        return ClassifierResult(detections=[], model_version=None, status="error", detail=f"{type(exc).__name__}: {exc}", elapsed_ms=(time.perf_counter() - started) * 1000)
    return result


def database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached (not a bug or a constraint)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(word in text for word in ("connection", "could not connect", "server closed", "unable to open database", "timeout", "terminating"))


def _claim(context: PipelineContext, camera: CameraConfig, slot: Slot) -> Claim | None:
    """Claim the slot, or return None when the database is unreachable (journal mode)."""
    try:
        return claim_slot(context.sessions, camera, slot, stale_after=context.stale_claim_after)
    except DBAPIError as exc:
        if database_unavailable(exc):
            return None
        raise


def process_slot(context: PipelineContext, camera_id: str, slot_time: datetime) -> SlotOutcome:
    """Capture, store, classify and record one slot of one camera.

    Args:
        context: Shared database, storage, classifier and ledger handles.
        camera_id: The configured camera.
        slot_time: The slot's nominal time (its identity together with the camera id).

    Returns:
        What happened: ``stored``, ``spooled`` (S3 down; uploaded later), ``failed`` (with the
        reason) or ``duplicate`` (the slot was already done or is in progress). When the database
        is unreachable the slot is still captured and stored, and its record is journalled to
        disk until :func:`replay_journal` can write it (``SlotOutcome.reason`` says so).
    """
    camera = context.settings.camera(camera_id)
    slot = Slot(camera_id, slot_time)
    timings: dict[str, float] = {}

    mark = time.perf_counter()
    claim = _claim(context, camera, slot)
    timings["claim"] = (time.perf_counter() - mark) * 1000
    if claim is not None and claim.duplicate:
        return SlotOutcome(slot=slot, status="duplicate", snapshot_id=claim.snapshot_id, reason=claim.reason, timings_ms=timings)

    mark = time.perf_counter()
    try:
        captured = context.capture(camera)
    except CaptureError as exc:
        timings["capture"] = (time.perf_counter() - mark) * 1000
        note = _record(context, camera, slot, claim, record_from_outcome(camera.id, slot.slot_time, failure=str(exc)))
        return SlotOutcome(slot=slot, status="failed", snapshot_id=claim.snapshot_id if claim else None, reason=f"{exc}{note}", timings_ms=timings)
    timings["capture"] = (time.perf_counter() - mark) * 1000

    mark = time.perf_counter()
    quality = assess(captured.image, context.settings.health)
    timings["quality"] = (time.perf_counter() - mark) * 1000

    mark = time.perf_counter()
    frame = captured.frame
    key = snapshot_key(camera.site, slot)
    metadata = {"sha256": frame.sha256, "camera": camera.id, "site": camera.site, "slot": slot.key}
    stored = context.store.put(key, frame.jpeg, metadata)
    timings["store"] = (time.perf_counter() - mark) * 1000

    mark = time.perf_counter()
    result = classify(context, camera, captured.image)
    timings["classify"] = (time.perf_counter() - mark) * 1000

    mark = time.perf_counter()
    record = record_from_outcome(camera.id, slot.slot_time, frame=frame, stored=stored, quality=quality, result=result)
    note = _record(context, camera, slot, claim, record)
    timings["record"] = (time.perf_counter() - mark) * 1000

    reason = result.detail if result.status != "ok" else ""
    return SlotOutcome(
        slot=slot,
        status="spooled" if stored.spooled else "stored",
        snapshot_id=claim.snapshot_id if claim else None,
        sha256=frame.sha256,
        key=key,
        detections=len(result.detections),
        reason=(reason + note).strip(),
        timings_ms=timings,
    )


def _record(context: PipelineContext, camera: CameraConfig, slot: Slot, claim: Claim | None, record: JournalRecord) -> str:
    """Write the record to the database, or journal it when the database is unreachable."""
    if claim is not None:
        try:
            _write_record(context, camera, slot, claim.snapshot_id, record)
            return ""
        except DBAPIError as exc:
            if not database_unavailable(exc):
                raise
    context.journal.write(record)
    return " (database unreachable: record journalled)"


def _write_record(context: PipelineContext, camera: CameraConfig, slot: Slot, snapshot_id: int | None, record: JournalRecord) -> None:
    assert snapshot_id is not None
    if record.failure is not None:
        record_failure(context.sessions, context.sink, camera, slot, snapshot_id, record.failure, context.settings.health)
    else:
        assert record.stored is not None and record.quality is not None and record.result is not None
        record_success(context.sessions, context.sink, camera, slot, snapshot_id, record.frame_stub(), record.stored, record.quality, record.result, context.settings.health, context.settings.workflows)


def replay_journal(context: PipelineContext) -> int:
    """Write journalled records into the database; returns how many were written.

    A slot that is already recorded (done before the outage, or replayed earlier) is dropped
    from the journal without writing anything.
    """
    written = 0
    for record in context.journal.records():
        try:
            camera = context.settings.camera(record.camera_id)
        except KeyError:
            continue  # camera removed from the configuration; keep the file for an operator
        claim = claim_slot(context.sessions, camera, record.slot, stale_after=timedelta(0))
        if not claim.duplicate:
            _write_record(context, camera, record.slot, claim.snapshot_id, record)
            written += 1
        context.journal.remove(record)
    return written


def flush_spool(context: PipelineContext, limit: int | None = None) -> list[StoredObject]:
    """Upload spooled snapshots and mark their rows stored; returns what was uploaded.

    If the database is unreachable while marking, the rows stay ``spooled`` and
    :func:`reconcile_spooled` fixes them later; the objects themselves are safe in S3.
    """
    uploaded = context.store.flush_spool(limit)
    for stored in uploaded:
        try:
            mark_uploaded(context.sessions, context.sink, stored)
        except DBAPIError as exc:
            if not database_unavailable(exc):
                raise
    return uploaded


def reconcile_spooled(context: PipelineContext) -> int:
    """Mark rows ``stored`` whose object reached S3 but whose row still says ``spooled``."""
    waiting = {item.key for item in context.store.spool.items()}
    with context.sessions() as session:
        keys = session.scalars(select(SnapshotRow.key).where(SnapshotRow.status == "spooled")).all()
    fixed = 0
    for key in keys:
        if key is None or key in waiting:
            continue
        stat = context.store.stat(key)
        if stat is not None:
            fixed += mark_uploaded(context.sessions, context.sink, stat)
    return fixed


def maintain(context: PipelineContext) -> dict[str, int]:
    """One maintenance pass: replay the journal, flush the spool, reconcile rows.

    Each step is skipped (and retried on the next pass) while its backend is unreachable.
    """
    done = {"journal_replayed": 0, "spool_uploaded": 0, "rows_reconciled": 0}
    try:
        done["journal_replayed"] = replay_journal(context)
    except DBAPIError as exc:
        if not database_unavailable(exc):
            raise
        return done
    done["spool_uploaded"] = len(flush_spool(context))
    try:
        done["rows_reconciled"] = reconcile_spooled(context)
    except StorageUnavailableError:
        pass
    return done
