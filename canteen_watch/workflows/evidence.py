"""Evidence holds and verification.

An evidence hold keeps a case's objects (its snapshots and rectification photos) indefinitely:
the case's ``evidence_hold`` flag, which retention always honours, and an S3 legal hold on every
object version (minio ``enable_object_legal_hold``; the bucket is created with object lock). When
the store cannot place a legal hold (no object lock on the bucket, or S3 unreachable) the flag
still protects the objects from canteen-watch's own cleanup, and the result says so.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from minio.error import S3Error
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, User, refresh_actor
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.events import EventSink
from canteen_watch.storage import SnapshotStore, is_unavailable
from canteen_watch.workflows.errors import EvidenceError
from canteen_watch.workflows.models import ViolationDetectionRow, ViolationRow
from canteen_watch.workflows.types import EvidenceCheck, EvidenceObject, Violation
from canteen_watch.workflows.validation import clean_text
from canteen_watch.workflows.violations import authorize_on, evidence_of, load_violation, to_violation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldResult:
    """Outcome of placing or releasing an evidence hold.

    Attributes:
        violation: The case after the change.
        s3_objects: Object versions whose S3 legal hold was set (or released).
        s3_failures: ``key: reason`` for objects whose S3 legal hold could not be changed; the
            case flag protects them from retention regardless.
    """

    violation: Violation
    s3_objects: int
    s3_failures: list[str]


def object_versions(store: SnapshotStore, key: str) -> list[tuple[str | None, bool]]:
    """``(version_id, is_delete_marker)`` of every version stored under exactly ``key``."""
    found = []
    for item in store.client.list_objects(bucket_name=store.bucket, prefix=key, include_version=True):
        if item.object_name == key:
            found.append((item.version_id, bool(item.is_delete_marker)))
    return found


def _set_legal_hold(store: SnapshotStore, obj: EvidenceObject, enable: bool) -> tuple[int, str | None]:
    """Set or clear the legal hold on every version of ``obj``; returns (versions, failure)."""
    if not obj.key or obj.expired or obj.bucket != store.bucket:
        return 0, None
    try:
        versions = [v for v, marker in object_versions(store, obj.key) if not marker] or [obj.version_id]
        for version_id in versions:
            if enable:
                store.client.enable_object_legal_hold(bucket_name=store.bucket, object_name=obj.key, version_id=version_id)
            else:
                store.client.disable_object_legal_hold(bucket_name=store.bucket, object_name=obj.key, version_id=version_id)
        return len(versions), None
    except S3Error as exc:
        return 0, f"{obj.key}: {exc.code}"
    except Exception as exc:
        if is_unavailable(exc):
            return 0, f"{obj.key}: object storage unreachable"
        raise


def _held_elsewhere(session: Session, violation_id: int, obj: EvidenceObject) -> bool:
    """True when a snapshot is also evidence of another held case."""
    if obj.kind != "snapshot":
        return False
    other = session.scalar(
        select(ViolationRow.id)
        .join(ViolationDetectionRow, ViolationDetectionRow.violation_id == ViolationRow.id)
        .where(ViolationDetectionRow.snapshot_id == obj.ref, ViolationRow.id != violation_id, ViolationRow.evidence_hold.is_(True))
        .limit(1)
    )
    return other is not None


def set_evidence_hold(
    sessions: sessionmaker[Session],
    sink: EventSink,
    store: SnapshotStore,
    actor: User,
    violation_id: int,
    *,
    hold: bool,
    reason: str,
    now: datetime | None = None,
) -> HoldResult:
    """Place (``hold=True``) or release an evidence hold on a case.

    Placing always sets the flag (retention honours it) and tries an S3 legal hold on each
    object version. Releasing clears S3 legal holds (except on snapshots that another held case
    shares) and then the flag; if S3 cannot be reached the release is refused and nothing
    changes, so a release never leaves objects unprotected by mistake.

    Args:
        sessions: Session factory.
        sink: Ledger sink (``violation.evidence_hold``).
        store: Snapshot store.
        actor: An inspector of the district or an admin.
        violation_id: The case.
        hold: True to hold, False to release.
        reason: Why (required, at most 2000 characters).
        now: Clock.

    Raises:
        PermissionDenied, InputError: As the names say.
        EvidenceError: A release could not clear the S3 legal holds.
    """
    now = as_utc(now or utcnow())
    text = clean_text(reason, "reason", max_length=2000, multiline=True)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        row, site = load_violation(session, violation_id, lock=True)
        authorize_on(acting, Action.EVIDENCE_HOLD, row, site)
        objects = evidence_of(session, row.id)
        changed, failures = 0, []
        for obj in objects:
            if not hold and _held_elsewhere(session, row.id, obj):
                continue
            count, failure = _set_legal_hold(store, obj, hold)
            changed += count
            if failure:
                failures.append(failure)
        if failures and not hold:
            raise EvidenceError("could not release the S3 legal hold of " + "; ".join(failures[:5]) + (" …" if len(failures) > 5 else "") + "; the hold stays in place")
        if failures:
            log.warning("case %s: evidence held by flag only for %d object(s): %s", row.id, len(failures), "; ".join(failures[:5]))
        row.evidence_hold = hold
        row.hold_reason, row.hold_set_by, row.hold_set_at = (text, acting.id, now)
        row.updated_at = now
        sink.append(
            session,
            actor=acting.tag,
            action="violation.evidence_hold",
            subject=f"violation:{row.id}",
            payload={"hold": hold, "role": acting.role.value, "objects": len(objects), "s3_versions": changed, "s3_failures": len(failures), "at": now.isoformat()},
        )
        session.flush()
        return HoldResult(violation=to_violation(row, site.district), s3_objects=changed, s3_failures=failures)


def verify_evidence(sessions: sessionmaker[Session], store: SnapshotStore, actor: User, violation_id: int) -> list[EvidenceCheck]:
    """Re-read every evidence object of a case from S3 and compare its SHA-256 with the record.

    For auditors (everywhere), inspectors (their districts) and admins; changes nothing.
    """
    with sessions() as session:
        acting = refresh_actor(session, actor)
        row, site = load_violation(session, violation_id)
        authorize_on(acting, Action.EVIDENCE_VERIFY, row, site)
        objects = evidence_of(session, row.id)
    checks = []
    for obj in objects:
        if obj.expired:
            checks.append(EvidenceCheck(obj, ok=True, detail="expired by retention (deletion is ledgered)"))
            continue
        if not obj.key or not obj.bucket:
            checks.append(EvidenceCheck(obj, ok=False, detail="no stored object recorded"))
            continue
        try:
            data = store.read_evidence(obj.bucket, obj.key, obj.version_id)
        except Exception as exc:  # noqa: BLE001 - report every failure, keep checking the rest
            checks.append(EvidenceCheck(obj, ok=False, detail=f"cannot read: {type(exc).__name__}: {exc}"[:300]))
            continue
        digest = hashlib.sha256(data).hexdigest()
        ok = digest == obj.sha256
        checks.append(EvidenceCheck(obj, ok=ok, detail="sha256 matches" if ok else f"sha256 mismatch: stored object hashes to {digest}"))
    return checks
