"""``process_slot``: capture → store → classify → record, as one plain function.

Any executor can call it: the scheduler's thread pool on one box, or a worker on a distributed
queue. It is idempotent on (camera id, slot time): the slot is claimed in the database first, so
running it twice never stores or records twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import cv2
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import CameraConfig, Settings
from canteen_watch.core import ClassifierResult, Slot, SlotOutcome, StoredObject
from canteen_watch.recording import EventSink, NullSink, claim_slot, mark_uploaded, record_failure, record_success
from canteen_watch.storage import SnapshotStore, snapshot_key
from classifiers.base import FrameClassifier, NoModelClassifier
from snapshots.capture import CapturedFrame, CaptureError, capture_frame
from snapshots.quality import assess

Capture = Callable[[CameraConfig], CapturedFrame]


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

    def capture(self, camera: CameraConfig) -> CapturedFrame:
        """Grab one frame from ``camera`` (hard timeout inside)."""
        return capture_frame(camera, jpeg_quality=self.settings.capture.jpeg_quality)


def classify(context: PipelineContext, camera: CameraConfig, image: np.ndarray) -> ClassifierResult:
    """Run the classifier; a crash becomes an ``error`` result, never a lost snapshot."""
    if not context.classify_enabled:
        return ClassifierResult(detections=[], model_version=None, status="skipped", detail="classification disabled")
    started = time.perf_counter()
    try:
        result = context.classifier.classify(image, camera.rois)
    except Exception as exc:  # noqa: BLE001 - a classifier bug must not lose the snapshot
        return ClassifierResult(detections=[], model_version=None, status="error", detail=f"{type(exc).__name__}: {exc}", elapsed_ms=(time.perf_counter() - started) * 1000)
    return result


def process_slot(context: PipelineContext, camera_id: str, slot_time: datetime) -> SlotOutcome:
    """Capture, store, classify and record one slot of one camera.

    Args:
        context: Shared database, storage, classifier and ledger handles.
        camera_id: The configured camera.
        slot_time: The slot's nominal time (its identity together with the camera id).

    Returns:
        What happened: ``stored``, ``spooled`` (S3 down; uploaded later), ``failed`` (with the
        reason) or ``duplicate`` (the slot was already done or is in progress).
    """
    camera = context.settings.camera(camera_id)
    slot = Slot(camera_id, slot_time)
    timings: dict[str, float] = {}

    mark = time.perf_counter()
    claim = claim_slot(context.sessions, camera, slot, stale_after=context.stale_claim_after)
    timings["claim"] = (time.perf_counter() - mark) * 1000
    if claim.duplicate:
        return SlotOutcome(slot=slot, status="duplicate", snapshot_id=claim.snapshot_id, reason=claim.reason, timings_ms=timings)
    assert claim.snapshot_id is not None

    mark = time.perf_counter()
    try:
        captured = context.capture(camera)
    except CaptureError as exc:
        timings["capture"] = (time.perf_counter() - mark) * 1000
        record_failure(context.sessions, context.sink, camera, slot, claim.snapshot_id, str(exc), context.settings.health)
        return SlotOutcome(slot=slot, status="failed", snapshot_id=claim.snapshot_id, reason=str(exc), timings_ms=timings)
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
    record_success(context.sessions, context.sink, camera, slot, claim.snapshot_id, frame, stored, quality, result, context.settings.health)
    timings["record"] = (time.perf_counter() - mark) * 1000

    return SlotOutcome(
        slot=slot,
        status="spooled" if stored.spooled else "stored",
        snapshot_id=claim.snapshot_id,
        sha256=frame.sha256,
        key=key,
        detections=len(result.detections),
        reason=result.detail if result.status != "ok" else "",
        timings_ms=timings,
    )


def flush_spool(context: PipelineContext, limit: int | None = None) -> list[StoredObject]:
    """Upload spooled snapshots and mark their rows stored; returns what was uploaded."""
    uploaded = context.store.flush_spool(limit)
    for stored in uploaded:
        mark_uploaded(context.sessions, context.sink, stored)
    return uploaded


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to BGR, raising ``ValueError`` when they are not a readable image."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable image")
    return image
