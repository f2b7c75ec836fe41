"""Retention: delete expired snapshot and rectification objects from S3, keep the rows.

Rules (``settings.retention``):

* a stored snapshot that is evidence of no case expires ``snapshot_days`` after capture;
* evidence of a case (its snapshots and rectification photos) is kept while the case is being
  worked on and until ``evidence_days_after_close`` days after it was closed or dismissed — for a
  snapshot shared by several cases, until the last of them allows it;
* a case under evidence hold keeps its objects indefinitely (the flag is honoured here; the S3
  legal hold set by :func:`canteen_watch.workflows.evidence.set_evidence_hold` also makes S3 refuse
  the deletion).

Expiry deletes every version (and delete marker) of the object, then marks the row:
``snapshot_expiry`` for snapshots, ``rectifications.photo_expired_at`` for photos. Rows are never
deleted (the ledger refers to them) and every expiry is ledgered (``snapshot.expired``,
``rectification.photo_expired``) with the object as evidence, so an auditor can tell an expired
object from a missing one. Objects are deleted before rows are marked: a crash in between leaves
rows that the next run marks without anything left to delete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from minio.error import S3Error
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.config import RetentionConfig
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import SnapshotRow
from canteen_watch.events import EventSink
from canteen_watch.storage import SnapshotStore, StorageUnavailableError, is_unavailable
from canteen_watch.workflows.evidence import object_versions
from canteen_watch.workflows.models import ROW_LOCK, RectificationRow, SnapshotExpiryRow, ViolationDetectionRow, ViolationRow
from canteen_watch.workflows.states import FINAL_STATES

T = TypeVar("T")

log = logging.getLogger(__name__)

RETENTION_ACTOR = "system:retention"
REASON_NO_VIOLATION = "no_violation"
REASON_CASE_CLOSED = "case_closed"


@dataclass
class RetentionReport:
    """What one run of :func:`run_retention` did.

    Attributes:
        snapshots_expired: Snapshot ids whose objects were deleted and rows marked.
        photos_expired: Rectification ids whose photos were deleted and rows marked.
        versions_deleted: Object versions (and delete markers) removed from S3.
        failures: ``key: reason`` for objects S3 refused to delete (e.g. under legal hold).
        stopped: Why the run stopped early (S3 unreachable), or None.
    """

    snapshots_expired: list[int] = field(default_factory=list)
    photos_expired: list[int] = field(default_factory=list)
    versions_deleted: int = 0
    failures: list[str] = field(default_factory=list)
    stopped: str | None = None


def _blocking_case(evidence_cutoff: datetime):  # type: ignore[no-untyped-def]
    """Cases that keep their evidence: not final, held, or closed too recently."""
    return or_(
        ViolationRow.state.not_in(FINAL_STATES),
        ViolationRow.evidence_hold.is_(True),
        ViolationRow.closed_at.is_(None),
        ViolationRow.closed_at > evidence_cutoff,
    )


def expirable_snapshots(session: Session, now: datetime, retention: RetentionConfig, limit: int) -> list[tuple[SnapshotRow, str]]:
    """Stored snapshots whose objects may be deleted now, with the reason."""
    snapshot_cutoff = now - timedelta(days=retention.snapshot_days)
    evidence_cutoff = now - timedelta(days=retention.evidence_days_after_close)
    moment = func.coalesce(SnapshotRow.captured_at, SnapshotRow.slot_time)
    not_expired = ~exists().where(SnapshotExpiryRow.snapshot_id == SnapshotRow.id)
    linked = exists().where(ViolationDetectionRow.snapshot_id == SnapshotRow.id)
    blocked = exists().where(
        ViolationDetectionRow.snapshot_id == SnapshotRow.id,
        ViolationRow.id == ViolationDetectionRow.violation_id,
        _blocking_case(evidence_cutoff),
    )
    base = select(SnapshotRow).where(SnapshotRow.status == "stored", SnapshotRow.key.is_not(None), moment < snapshot_cutoff, not_expired)
    found = [(row, REASON_NO_VIOLATION) for row in session.scalars(base.where(~linked).order_by(SnapshotRow.id).limit(limit)).all()]
    if len(found) < limit:
        found += [(row, REASON_CASE_CLOSED) for row in session.scalars(base.where(linked, ~blocked).order_by(SnapshotRow.id).limit(limit - len(found))).all()]
    return found


def expirable_photos(session: Session, now: datetime, retention: RetentionConfig, limit: int) -> list[RectificationRow]:
    """Rectification photos whose case allows deletion now."""
    evidence_cutoff = now - timedelta(days=retention.evidence_days_after_close)
    return list(
        session.scalars(
            select(RectificationRow)
            .join(ViolationRow, ViolationRow.id == RectificationRow.violation_id)
            .where(RectificationRow.photo_expired_at.is_(None), ~_blocking_case(evidence_cutoff))
            .order_by(RectificationRow.id)
            .limit(limit)
        ).all()
    )


def delete_all_versions(store: SnapshotStore, key: str) -> int:
    """Delete every version and delete marker of ``key``; returns how many were removed.

    Raises:
        S3Error: S3 refused (e.g. a version is under legal hold).
        StorageUnavailableError: S3 is unreachable.
    """
    try:
        versions = object_versions(store, key)
        for version_id, _marker in versions:
            store.client.remove_object(bucket_name=store.bucket, object_name=key, version_id=version_id)
        return len(versions)
    except S3Error:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise StorageUnavailableError(f"S3 delete of {key} failed: {exc}") from exc
        raise


def _delete_each(store: SnapshotStore, items: list[T], location: Callable[[T], tuple[str, str]], refused: set[str], report: "RetentionReport") -> list[tuple[T, int]]:
    """Delete every version of each item's object; returns ``(item, versions deleted)`` for those deleted.

    An object S3 refuses to delete (a legal hold, object lock) is named in ``report.failures`` and
    remembered in ``refused`` so later batches skip it; an outage raises ``StorageUnavailableError``.
    Objects in another bucket than the store's are not ours to delete (0 versions).
    """
    done = []
    for item in items:
        bucket, key = location(item)
        try:
            count = delete_all_versions(store, key) if bucket == store.bucket else 0
        except S3Error as exc:
            refused.add(key)
            report.failures.append(f"{key}: {exc.code}")
            continue
        done.append((item, count))
    return done


def run_retention(
    sessions: sessionmaker[Session],
    sink: EventSink,
    store: SnapshotStore,
    now: datetime | None = None,
    *,
    retention: RetentionConfig | None = None,
    batch_size: int = 200,
    max_objects: int | None = None,
) -> RetentionReport:
    """Delete expired objects and mark their rows (scheduled by the lead, e.g. nightly).

    Args:
        sessions: Session factory.
        sink: Ledger sink; each expiry is one entry.
        store: Snapshot store (bucket and client).
        now: Clock; tests pass a controllable one.
        retention: ``settings.retention``; defaults when omitted.
        batch_size: Objects per database transaction.
        max_objects: Stop after this many objects (None: until nothing is left).

    Returns:
        What was expired, and what S3 refused.
    """
    now = as_utc(now or utcnow())
    retention = retention or RetentionConfig()
    report = RetentionReport()
    refused: set[str] = set()
    budget = max_objects if max_objects is not None else float("inf")
    try:
        while budget > 0:
            size = int(min(batch_size, budget)) + len(refused)
            with sessions() as session:
                snapshots = [(r.id, r.bucket, r.key, r.version_id, r.sha256, reason) for r, reason in expirable_snapshots(session, now, retention, size)]
            snapshots = [s for s in snapshots if s[2] not in refused][:batch_size]
            if not snapshots:
                break
            done = _delete_each(store, snapshots, lambda item: (item[1], item[2]), refused, report)
            with write_transaction(sessions) as session:
                for (snapshot_id, bucket, key, version_id, sha256, reason), count in done:
                    if session.get(SnapshotExpiryRow, snapshot_id) is not None:
                        continue
                    session.add(SnapshotExpiryRow(snapshot_id=snapshot_id, expired_at=now, reason=reason, versions_deleted=count))
                    evidence = {"bucket": bucket, "key": key, "sha256": sha256, "version_id": version_id} if sha256 and bucket and key else None
                    sink.append(session, actor=RETENTION_ACTOR, action="snapshot.expired", subject=f"snapshot:{snapshot_id}", payload={"reason": reason, "versions_deleted": count, "at": now.isoformat()}, evidence=evidence)
                    report.snapshots_expired.append(snapshot_id)
                    report.versions_deleted += count
            budget -= len(snapshots)
        while budget > 0:
            with sessions() as session:
                photos = [(r.id, r.violation_id, r.photo_bucket, r.photo_key, r.photo_version_id, r.photo_sha256) for r in expirable_photos(session, now, retention, int(min(batch_size, budget)) + len(refused))]
            photos = [p for p in photos if p[3] not in refused][:batch_size]
            if not photos:
                break
            done_photos = _delete_each(store, photos, lambda item: (item[2], item[3]), refused, report)
            with write_transaction(sessions) as session:
                for (rect_id, violation_id, bucket, key, version_id, sha256), count in done_photos:
                    rect = session.get(RectificationRow, rect_id, with_for_update=ROW_LOCK)
                    if rect is None or rect.photo_expired_at is not None:
                        continue
                    rect.photo_expired_at = now
                    sink.append(
                        session, actor=RETENTION_ACTOR, action="rectification.photo_expired", subject=f"violation:{violation_id}",
                        payload={"rectification": rect_id, "versions_deleted": count, "at": now.isoformat()},
                        evidence={"bucket": bucket, "key": key, "sha256": sha256, "version_id": version_id},
                    )
                    report.photos_expired.append(rect_id)
                    report.versions_deleted += count
            budget -= len(photos)
    except StorageUnavailableError as exc:
        report.stopped = str(exc)
        log.warning("retention stopped: %s", exc)
    log.info(
        "retention: %d snapshot(s) and %d rectification photo(s) expired, %d object version(s) deleted, %d refused",
        len(report.snapshots_expired), len(report.photos_expired), report.versions_deleted, len(report.failures),
    )
    return report
