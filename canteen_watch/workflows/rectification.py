"""Rectification: the site submits a note and a photo (stored in S3); an inspector re-checks it.

Accepted → the case is closed. Rejected → the case is due again with a fresh deadline of its
tier, counted from the re-check, and its escalation starts over (the earlier escalations stay in
the ledger and in the notifications already sent).
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime

from minio.error import S3Error
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, User, refresh_actor
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.events import EventSink
from canteen_watch.storage import SnapshotStore, StorageUnavailableError, is_unavailable
from canteen_watch.workflows.errors import EvidenceError, InputError
from canteen_watch.workflows.models import RectificationRow
from canteen_watch.workflows.states import VIOLATION_MACHINE, ViolationAction
from canteen_watch.workflows.tiers import WorkflowSettings
from canteen_watch.workflows.types import Rectification, Violation
from canteen_watch.workflows.validation import clean_text
from canteen_watch.workflows.violations import authorize_on, load_violation, to_rectification, to_violation, transition

MAX_PHOTO_BYTES = 10 * 1024 * 1024
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"))


def photo_type(photo: bytes) -> tuple[str, str]:
    """Content type and extension of a JPEG or PNG; InputError for anything else."""
    if not isinstance(photo, (bytes, bytearray)):
        raise InputError("must be the bytes of a JPEG or PNG image", field="photo")
    if not photo:
        raise InputError("is empty", field="photo")
    if len(photo) > MAX_PHOTO_BYTES:
        raise InputError(f"is {len(photo)} bytes; at most {MAX_PHOTO_BYTES} are allowed", field="photo")
    for magic, content_type, extension in _MAGIC:
        if bytes(photo[: len(magic)]) == magic:
            return content_type, extension
    raise InputError("must be a JPEG or PNG image", field="photo")


def _upload(store: SnapshotStore, key: str, photo: bytes, content_type: str, sha256: str) -> str | None:
    try:
        store.ensure_bucket()
        result = store.client.put_object(
            bucket_name=store.bucket, object_name=key, data=io.BytesIO(photo), length=len(photo), content_type=content_type, metadata={"sha256": sha256}
        )
    except StorageUnavailableError as exc:
        raise EvidenceError(f"object storage is unreachable; the rectification was not submitted, try again: {exc}") from exc
    except Exception as exc:
        if is_unavailable(exc):
            raise EvidenceError(f"object storage is unreachable; the rectification was not submitted, try again: {exc}") from exc
        raise
    return result.version_id


def _discard(store: SnapshotStore, key: str, version_id: str | None) -> None:
    try:
        store.client.remove_object(bucket_name=store.bucket, object_name=key, version_id=version_id)
    except (S3Error, OSError):  # best effort: retention removes strays with the case anyway
        pass


def submit_rectification(
    sessions: sessionmaker[Session],
    sink: EventSink,
    store: SnapshotStore,
    actor: User,
    violation_id: int,
    *,
    note: str,
    photo: bytes,
    now: datetime | None = None,
) -> Rectification:
    """Submit what the site did about a confirmed case: a note and a photo.

    The photo (JPEG or PNG, at most 10 MiB) is stored in S3 under
    ``rectifications/<site>/<case>/round-<n>-<sha256 prefix>.<ext>`` before the database change; if
    the change then fails the object is removed again. Ledgered as ``violation.rectified`` with
    the photo as evidence.

    Args:
        sessions: Session factory.
        sink: Ledger sink.
        store: Snapshot store (its bucket and client).
        actor: A manager of the site (or an admin).
        violation_id: The case (must be ``rectification_due``).
        note: What was done (at most 4000 characters).
        photo: Image bytes.
        now: Clock.

    Raises:
        PermissionDenied, TransitionError, InputError: As the names say.
        EvidenceError: S3 is unreachable (nothing was recorded).
    """
    now = as_utc(now or utcnow())
    text = clean_text(note, "note", max_length=4000, multiline=True)
    content_type, extension = photo_type(photo)
    photo = bytes(photo)
    sha256 = hashlib.sha256(photo).hexdigest()
    with sessions() as session:  # refuse early, before anything is uploaded
        acting = refresh_actor(session, actor)
        row, site = load_violation(session, violation_id)
        authorize_on(acting, Action.RECTIFICATION_SUBMIT, row, site)
        VIOLATION_MACHINE.next(row.state, ViolationAction.SUBMIT)
        next_round = row.rectification_round + 1
    key = f"rectifications/{row.site_id}/{row.id}/round-{next_round}-{sha256[:16]}.{extension}"
    version_id = _upload(store, key, photo, content_type, sha256)
    try:
        with write_transaction(sessions) as session:
            acting = refresh_actor(session, actor)
            row, site = load_violation(session, violation_id, lock=True)
            authorize_on(acting, Action.RECTIFICATION_SUBMIT, row, site)
            row.rectification_round += 1
            evidence = {"bucket": store.bucket, "key": key, "sha256": sha256, "version_id": version_id}
            transition(
                session, sink, row, ViolationAction.SUBMIT, actor=acting.tag, now=now, ledger_action="violation.rectified",
                payload={"round": row.rectification_round, "role": acting.role.value, "photo_bytes": len(photo)}, evidence=evidence,
            )
            rect = RectificationRow(
                violation_id=row.id, round=row.rectification_round, submitted_by=acting.id, submitted_at=now, note=text,
                photo_bucket=store.bucket, photo_key=key, photo_version_id=version_id, photo_sha256=sha256, photo_size=len(photo), content_type=content_type,
            )
            session.add(rect)
            session.flush()
            return to_rectification(rect)
    except BaseException:
        _discard(store, key, version_id)
        raise


def recheck_rectification(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    violation_id: int,
    *,
    accepted: bool,
    note: str | None = None,
    now: datetime | None = None,
    config: WorkflowSettings | None = None,
) -> Violation:
    """An inspector's re-check of the latest rectification.

    Args:
        sessions: Session factory.
        sink: Ledger sink (``violation.closed`` when accepted, ``violation.rechecked`` when rejected).
        actor: An inspector of the district (or an admin); managers cannot re-check their own work.
        violation_id: The case (must be ``rectification_submitted``).
        accepted: True closes the case; False makes it due again with a fresh tier deadline.
        note: The inspector's note (required when rejecting; at most 4000 characters).
        now: Clock.
        config: ``settings.workflows`` (tier deadlines).

    Raises:
        PermissionDenied, TransitionError, InputError: As the names say.
    """
    now = as_utc(now or utcnow())
    config = config or WorkflowSettings()
    if not isinstance(accepted, bool):
        raise InputError("must be true or false", field="accepted")
    text = clean_text(note, "note", max_length=4000, required=not accepted, multiline=True)
    action = ViolationAction.ACCEPT if accepted else ViolationAction.REJECT
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        row, site = load_violation(session, violation_id, lock=True)
        authorize_on(acting, Action.RECTIFICATION_RECHECK, row, site)
        rect = session.scalars(select(RectificationRow).where(RectificationRow.violation_id == row.id, RectificationRow.round == row.rectification_round)).one_or_none()
        payload = {"round": row.rectification_round, "outcome": "accepted" if accepted else "rejected", "role": acting.role.value}
        if not accepted:
            tier = config.tier_or_default(row.tier)
            payload["due_at"] = (now + tier.deadline).isoformat()
        transition(session, sink, row, action, actor=acting.tag, now=now, ledger_action="violation.closed" if accepted else "violation.rechecked", payload=payload)
        if rect is not None:
            rect.checked_by, rect.checked_at, rect.outcome, rect.check_note = acting.id, now, payload["outcome"], text
        if accepted:
            row.closed_at = now
        else:
            row.due_at = now + tier.deadline
            row.escalation_level, row.escalated_at = 0, None
        session.flush()
        return to_violation(row, site.district)
