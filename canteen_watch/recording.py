"""The record stage: claim a slot, then write its outcome, detections and health in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import CameraConfig, HealthConfig
from canteen_watch.core import ClassifierResult, Frame, Quality, Slot, StoredObject, as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import CameraEventRow, CameraHealthRow, DetectionRow, SnapshotRow
from canteen_watch.events import EventSink
from canteen_watch.health import HealthEvent, HealthState, advance
from canteen_watch.workflows.tiers import WorkflowSettings
from canteen_watch.workflows.violations import fold_detections

PIPELINE_ACTOR = "system:pipeline"
DONE_STATUSES = ("stored", "spooled")


class DeferredSink:
    """Collects events and appends them in order at the end of the transaction.

    The ledger serialises appends (one global lock held until commit), so taking that lock
    last keeps the time other writers wait as short as possible.
    """

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.events: list[dict[str, Any]] = []

    def append(self, session: Session, **event: Any) -> None:
        """Remember one event (same arguments as ``EventSink.append``)."""
        self.events.append(event)

    def flush(self, session: Session) -> None:
        """Append every remembered event to the real sink, in order."""
        for event in self.events:
            self.sink.append(session, **event)
        self.events.clear()


@dataclass(frozen=True)
class Claim:
    """Result of claiming a slot."""

    snapshot_id: int | None
    duplicate: bool
    reason: str = ""


def claim_slot(factory: sessionmaker[Session], camera: CameraConfig, slot: Slot, *, stale_after: timedelta) -> Claim:
    """Claim ``slot`` for capture, or report that it is done or in progress.

    A slot already stored or spooled is a duplicate. A failed slot, or one claimed longer than
    ``stale_after`` ago (its worker died), may be retried and is claimed again.
    """
    now = utcnow()
    try:
        with write_transaction(factory) as session:
            row = session.scalars(
                select(SnapshotRow).where(SnapshotRow.camera_id == camera.id, SnapshotRow.slot_time == slot.slot_time).with_for_update()
            ).first()
            if row is None:
                row = SnapshotRow(camera_id=camera.id, site_id=camera.site, slot_time=slot.slot_time, status="pending", claimed_at=now, attempts=1)
                session.add(row)
                session.flush()
                return Claim(row.id, duplicate=False)
            if row.status in DONE_STATUSES:
                return Claim(row.id, duplicate=True, reason=f"slot {slot.key} already {row.status}")
            if row.status == "pending" and now - as_utc(row.claimed_at) < stale_after:
                return Claim(row.id, duplicate=True, reason=f"slot {slot.key} is being processed")
            row.status, row.claimed_at, row.attempts, row.failure_reason = "pending", now, row.attempts + 1, None
            return Claim(row.id, duplicate=False)
    except IntegrityError:
        return Claim(None, duplicate=True, reason=f"slot {slot.key} claimed concurrently")


def _load_health(session: Session, camera_id: str) -> tuple[CameraHealthRow, HealthState]:
    row = session.get(CameraHealthRow, camera_id, with_for_update=True)
    if row is None:
        row = CameraHealthRow(camera_id=camera_id, online=True, consecutive_failures=0, consecutive_successes=0, consecutive_bad_quality=0)
        session.add(row)
    state = HealthState(
        online=row.online,
        consecutive_failures=row.consecutive_failures,
        consecutive_successes=row.consecutive_successes,
        consecutive_bad_quality=row.consecutive_bad_quality,
        quality_alert=row.quality_alert,
        last_error=row.last_error,
    )
    return row, state


def _save_health(session: Session, sink: EventSink, row: CameraHealthRow, state: HealthState, events: list[HealthEvent], *, ok: bool, now: datetime) -> None:
    row.online = state.online
    row.consecutive_failures = state.consecutive_failures
    row.consecutive_successes = state.consecutive_successes
    row.consecutive_bad_quality = state.consecutive_bad_quality
    row.quality_alert = state.quality_alert
    row.last_error = state.last_error
    if ok:
        row.last_success_at = now
    else:
        row.last_failure_at = now
    for event in events:
        row.changed_at = event.at
        session.add(CameraEventRow(camera_id=row.camera_id, kind=event.kind, at=event.at, detail=event.detail))
        sink.append(session, actor=PIPELINE_ACTOR, action=f"camera.{event.kind}", subject=f"camera:{row.camera_id}", payload={"camera": row.camera_id, "detail": event.detail, "at": event.at.isoformat()})


def record_failure(factory: sessionmaker[Session], sink: EventSink, camera: CameraConfig, slot: Slot, snapshot_id: int, reason: str, health: HealthConfig) -> list[HealthEvent]:
    """Mark the slot failed with ``reason`` and advance the camera's health."""
    now = utcnow()
    with write_transaction(factory) as session:
        snapshot = session.get(SnapshotRow, snapshot_id)
        assert snapshot is not None
        snapshot.status, snapshot.failure_reason = "failed", reason[:2000]
        deferred = DeferredSink(sink)
        row, state = _load_health(session, camera.id)
        state, events = advance(state, ok=False, quality=None, error=reason[:500], config=health, now=now)
        _save_health(session, deferred, row, state, events, ok=False, now=now)
        deferred.flush(session)
    return events


def record_success(
    factory: sessionmaker[Session],
    sink: EventSink,
    camera: CameraConfig,
    slot: Slot,
    snapshot_id: int,
    frame: Frame,
    stored: StoredObject,
    quality: Quality,
    result: ClassifierResult,
    health: HealthConfig,
    workflows: WorkflowSettings | None = None,
) -> list[HealthEvent]:
    """Write the stored snapshot, its detections, the violations they fold into, health and ledger entries in one transaction."""
    now = utcnow()
    with write_transaction(factory) as session:
        deferred = DeferredSink(sink)
        snapshot = session.get(SnapshotRow, snapshot_id)
        assert snapshot is not None
        snapshot.status = "spooled" if stored.spooled else "stored"
        snapshot.captured_at = frame.captured_at
        snapshot.bucket, snapshot.key, snapshot.version_id = stored.bucket, stored.key, stored.version_id
        snapshot.sha256, snapshot.size, snapshot.width, snapshot.height = frame.sha256, stored.size, frame.width, frame.height
        snapshot.sharpness, snapshot.brightness, snapshot.contrast = quality.sharpness, quality.brightness, quality.contrast
        snapshot.blurred, snapshot.dark, snapshot.blocked = quality.blurred, quality.dark, quality.blocked
        snapshot.classifier_status, snapshot.model_version = result.status, result.model_version
        evidence = {"bucket": stored.bucket, "key": stored.key, "version_id": stored.version_id, "sha256": frame.sha256}
        deferred.append(
            session,
            actor=PIPELINE_ACTOR,
            action="snapshot.stored",
            subject=f"snapshot:{snapshot_id}",
            payload={"camera": camera.id, "site": camera.site, "slot": slot.key, "size": stored.size, "spooled": stored.spooled, "quality": quality.flags},
            evidence=evidence,
        )
        for detection in result.detections:
            row = DetectionRow(
                snapshot_id=snapshot_id,
                label=detection.label,
                score=float(detection.score),
                x1=detection.box.x1, y1=detection.box.y1, x2=detection.box.x2, y2=detection.box.y2,
                model_version=detection.model_version,
                roi_id=detection.roi_id,
                extra={k: float(v) for k, v in detection.extra.items()},
            )
            session.add(row)
            session.flush()
            deferred.append(
                session,
                actor=f"model:{detection.model_version}",
                action="detection.recorded",
                subject=f"detection:{row.id}",
                payload={
                    "snapshot": snapshot_id, "camera": camera.id, "label": detection.label, "score": round(float(detection.score), 6),
                    "box": [round(v, 2) for v in (detection.box.x1, detection.box.y1, detection.box.x2, detection.box.y2)],
                    "roi": detection.roi_id, "model_version": detection.model_version,
                },
                evidence=evidence,
            )
        if result.detections:
            session.flush()
            fold_detections(session, deferred, snapshot_id, now=now, config=workflows)
        row, state = _load_health(session, camera.id)
        state, events = advance(state, ok=True, quality=quality, error=None, config=health, now=now)
        _save_health(session, deferred, row, state, events, ok=True, now=now)
        deferred.flush(session)
    return events


def mark_uploaded(factory: sessionmaker[Session], sink: EventSink, stored: StoredObject) -> int:
    """Flip spooled snapshots whose object has now reached S3 to ``stored``; returns rows changed."""
    with write_transaction(factory) as session:
        rows = session.scalars(select(SnapshotRow).where(SnapshotRow.key == stored.key, SnapshotRow.status == "spooled")).all()
        for row in rows:
            row.status, row.version_id = "stored", stored.version_id
            sink.append(
                session,
                actor=PIPELINE_ACTOR,
                action="snapshot.uploaded",
                subject=f"snapshot:{row.id}",
                payload={"camera": row.camera_id, "from_spool": True},
                evidence={"bucket": stored.bucket, "key": stored.key, "version_id": stored.version_id, "sha256": row.sha256},
            )
        return len(rows)
