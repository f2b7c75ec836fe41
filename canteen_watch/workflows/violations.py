"""Violations: folding detections into cases, review, and the read functions of the dashboard.

:func:`fold_detections` runs inside the pipeline's record transaction right after a snapshot's
detections are written. Detections of a label that belongs to a severity tier fold into the case
of the same camera and label whose detections lie within ``fold_window_minutes`` (like Frigate's
review items), so one rat seen in fifty snapshots is one case with fifty detections. A closed
case is never reopened: a later detection opens a new case. Folding is idempotent (a detection
belongs to at most one case) and serialised per camera (row lock on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite).

Every transition goes through :data:`~canteen_watch.workflows.states.VIOLATION_MACHINE` and is
appended to the ledger with the acting user's id and role (never a name).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, SiteRef, User, authorize, can, refresh_actor, scope_filter
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import CameraRow, DetectionRow, SiteRow, SnapshotRow
from canteen_watch.ledger.models import entries_table
from canteen_watch.events import EventSink
from canteen_watch.workflows.errors import InputError, NotFoundError
from canteen_watch.workflows.models import ROW_LOCK, RectificationRow, ReviewRow, SnapshotExpiryRow, ViolationDetectionRow, ViolationRow
from canteen_watch.workflows.notifications import EVENT_NEW, enqueue_violation_event
from canteen_watch.workflows.states import ACTIVE_STATES, ESCALATABLE_STATES, FOLDABLE_STATES, VIOLATION_MACHINE, ViolationAction, ViolationState
from canteen_watch.workflows.tiers import WorkflowSettings
from canteen_watch.workflows.types import EvidenceObject, HistoryEntry, Page, Rectification, Review, Violation, ViolationDetail, ViolationStats
from canteen_watch.workflows.validation import clean_moment, clean_text

FOLD_ACTOR = "system:workflows"
MAX_PER_PAGE = 200
CONFIRMED, FALSE_POSITIVE = "confirmed", "false_positive"

#: Which permission each violation action needs.
ACTION_PERMISSION: dict[str, Action] = {
    ViolationAction.CONFIRM.value: Action.VIOLATION_REVIEW,
    ViolationAction.DISMISS.value: Action.VIOLATION_REVIEW,
    ViolationAction.SUBMIT.value: Action.RECTIFICATION_SUBMIT,
    ViolationAction.ACCEPT.value: Action.RECTIFICATION_RECHECK,
    ViolationAction.REJECT.value: Action.RECTIFICATION_RECHECK,
}


# ------------------------------------------------------------------------------------- helpers


def to_violation(row: ViolationRow, district: str) -> Violation:
    """The dataclass of a violation row."""
    return Violation(
        id=row.id,
        site_id=row.site_id,
        district=district,
        camera_id=row.camera_id,
        label=row.label,
        tier=row.tier,
        state=row.state,
        opened_at=as_utc(row.opened_at),
        first_seen_at=as_utc(row.first_seen_at),
        last_seen_at=as_utc(row.last_seen_at),
        due_at=as_utc(row.due_at),
        closed_at=as_utc(row.closed_at) if row.closed_at else None,
        detection_count=row.detection_count,
        max_score=float(row.max_score),
        escalation_level=row.escalation_level,
        review_outcome=row.review_outcome,
        rectification_round=row.rectification_round,
        evidence_hold=bool(row.evidence_hold),
    )


def load_violation(session: Session, violation_id: int, *, lock: bool = False) -> tuple[ViolationRow, SiteRow]:
    """The violation row (locked for update when ``lock``) and its site; NotFoundError when absent."""
    if isinstance(violation_id, bool) or not isinstance(violation_id, int):
        raise InputError("must be a case number", field="violation_id")
    row = session.get(ViolationRow, violation_id, with_for_update=ROW_LOCK) if lock else session.get(ViolationRow, violation_id)
    if row is None:
        raise NotFoundError(f"no violation {violation_id}")
    site = session.get(SiteRow, row.site_id)
    assert site is not None
    return row, site


def authorize_on(acting: User, action: Action, row: ViolationRow, site: SiteRow) -> None:
    """Authorize ``action`` on the case's site."""
    authorize(acting, action, SiteRef(district=site.district, site_id=site.id))


def snapshot_evidence(snapshot: SnapshotRow | None) -> dict[str, Any] | None:
    """The ledger evidence reference of a snapshot, or None when it has no stored object."""
    if snapshot is None or not snapshot.bucket or not snapshot.key or not snapshot.sha256:
        return None
    return {"bucket": snapshot.bucket, "key": snapshot.key, "sha256": snapshot.sha256, "version_id": snapshot.version_id}


def transition(
    session: Session,
    sink: EventSink,
    row: ViolationRow,
    action: ViolationAction,
    *,
    actor: str,
    now: datetime,
    ledger_action: str,
    payload: dict[str, Any] | None = None,
    evidence: dict[str, Any] | None = None,
) -> str:
    """Move ``row`` by ``action`` (TransitionError when illegal) and ledger it; returns the old state."""
    before = row.state
    row.state = VIOLATION_MACHINE.next(before, action)
    row.updated_at = now
    body = {"action": action.value, "from": before, "to": row.state, "at": now.isoformat(), **(payload or {})}
    sink.append(session, actor=actor, action=ledger_action, subject=f"violation:{row.id}", payload=body, evidence=evidence)
    return before


def _clamp_page(page: int, per_page: int) -> tuple[int, int]:
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InputError("must be a whole number of at least 1", field="page")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise InputError(f"must be between 1 and {MAX_PER_PAGE}", field="per_page")
    return page, per_page


# ------------------------------------------------------------------------------------- folding


def fold_detections(session: Session, sink: EventSink, snapshot_id: int, now: datetime | None = None, *, config: WorkflowSettings | None = None) -> list[Violation]:
    """Fold the snapshot's new detections into cases, inside the caller's transaction.

    Call it in the pipeline's record transaction right after the detections are written. Only
    labels that belong to a severity tier (and score at least ``config.min_score``) count. A new
    case is due ``tier.deadline`` after the first detection, is ledgered as
    ``violation.opened`` and queues a ``violation.new`` notification for the site's manager and
    the district's regulator; folding into an existing case is ledgered as ``violation.folded``.

    Args:
        session: The caller's transaction (commits or rolls back with the detections).
        sink: Ledger sink.
        snapshot_id: The snapshot whose detection rows were just written.
        now: Clock (recording time of new cases).
        config: ``settings.workflows``; defaults when omitted.

    Returns:
        The cases opened or extended, one per label.

    Raises:
        NotFoundError: No such snapshot.
    """
    config = config or WorkflowSettings()
    now = as_utc(now or utcnow())
    snapshot = session.get(SnapshotRow, snapshot_id)
    if snapshot is None:
        raise NotFoundError(f"no snapshot {snapshot_id}")
    folded = select(ViolationDetectionRow.detection_id).where(ViolationDetectionRow.snapshot_id == snapshot_id)
    detections = session.scalars(
        select(DetectionRow).where(DetectionRow.snapshot_id == snapshot_id, DetectionRow.id.not_in(folded)).order_by(DetectionRow.id)
    ).all()
    by_label: dict[str, list[DetectionRow]] = defaultdict(list)
    for detection in detections:
        if config.tier_for(detection.label) is not None and detection.score >= config.min_score:
            by_label[detection.label].append(detection)
    if not by_label:
        return []
    session.get(CameraRow, snapshot.camera_id, with_for_update=ROW_LOCK)  # serialise folding per camera
    site = session.get(SiteRow, snapshot.site_id)
    assert site is not None
    seen_at = as_utc(snapshot.captured_at or snapshot.slot_time)
    window = config.fold_window
    evidence = snapshot_evidence(snapshot)
    results = []
    for label in sorted(by_label):
        items = by_label[label]
        tier = config.tier_for(label)
        assert tier is not None
        best = max(float(d.score) for d in items)
        row = session.scalars(
            select(ViolationRow)
            .where(
                ViolationRow.camera_id == snapshot.camera_id,
                ViolationRow.label == label,
                ViolationRow.state.in_(FOLDABLE_STATES),
                ViolationRow.first_seen_at <= seen_at + window,
                ViolationRow.last_seen_at >= seen_at - window,
            )
            .order_by(ViolationRow.last_seen_at.desc(), ViolationRow.id.desc())
            .limit(1)
            .with_for_update(key_share=True)
        ).first()
        detection_ids = [d.id for d in items]
        if row is None:
            row = ViolationRow(
                site_id=snapshot.site_id,
                camera_id=snapshot.camera_id,
                label=label,
                tier=tier.tier,
                state=ViolationState.OPEN.value,
                opened_at=now,
                first_seen_at=seen_at,
                last_seen_at=seen_at,
                due_at=seen_at + tier.deadline,
                detection_count=len(items),
                max_score=best,
                first_snapshot_id=snapshot.id,
                last_snapshot_id=snapshot.id,
                escalation_level=0,
                rectification_round=0,
                evidence_hold=False,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            sink.append(
                session,
                actor=FOLD_ACTOR,
                action="violation.opened",
                subject=f"violation:{row.id}",
                payload={
                    "site": row.site_id, "district": site.district, "camera": row.camera_id, "label": label, "tier": tier.tier,
                    "state": row.state, "first_seen_at": seen_at.isoformat(), "due_at": as_utc(row.due_at).isoformat(),
                    "snapshot": snapshot.id, "detections": detection_ids, "max_score_permille": round(best * 1000),
                },
                evidence=evidence,
            )
            enqueue_violation_event(session, row, site.district, EVENT_NEW, now, occurrence="opened")
        else:
            row.detection_count += len(items)
            row.max_score = max(float(row.max_score), best)
            if seen_at > as_utc(row.last_seen_at):
                row.last_seen_at, row.last_snapshot_id = seen_at, snapshot.id
            if seen_at < as_utc(row.first_seen_at):
                row.first_seen_at, row.first_snapshot_id = seen_at, snapshot.id
            row.updated_at = now
            sink.append(
                session,
                actor=FOLD_ACTOR,
                action="violation.folded",
                subject=f"violation:{row.id}",
                payload={"snapshot": snapshot.id, "detections": detection_ids, "state": row.state, "detection_count": row.detection_count},
                evidence=evidence,
            )
        for detection in items:
            session.add(ViolationDetectionRow(detection_id=detection.id, violation_id=row.id, snapshot_id=snapshot.id))
        session.flush()
        results.append(to_violation(row, site.district))
    return results


# ------------------------------------------------------------------------------------- review


def review_violation(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    violation_id: int,
    *,
    outcome: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> Violation:
    """Confirm a case or dismiss it as a false positive.

    The review is recorded per user (``violation_reviews``: user id, role, outcome, reason, time)
    and ledgered as ``violation.reviewed``. A confirmed case becomes ``rectification_due`` with
    the deadline set when it was opened (first detection + tier deadline); a false positive is
    ``dismissed`` and needs a reason.

    Args:
        sessions: Session factory.
        sink: Ledger sink.
        actor: The reviewer (a manager of the site, an inspector of the district, or an admin).
        violation_id: The case.
        outcome: ``confirmed`` or ``false_positive``.
        reason: Why (required for a false positive; at most 2000 characters).
        now: Clock.

    Raises:
        PermissionDenied: Role or jurisdiction does not allow reviewing this case.
        TransitionError: The case is not open.
        InputError: Unknown outcome, missing or hostile reason.
    """
    now = as_utc(now or utcnow())
    if outcome not in (CONFIRMED, FALSE_POSITIVE):
        raise InputError(f"must be {CONFIRMED} or {FALSE_POSITIVE}, not {str(outcome)[:40]!r}", field="outcome")
    text = clean_text(reason, "reason", max_length=2000, required=outcome == FALSE_POSITIVE, multiline=True)
    action = ViolationAction.CONFIRM if outcome == CONFIRMED else ViolationAction.DISMISS
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        row, site = load_violation(session, violation_id, lock=True)
        authorize_on(acting, Action.VIOLATION_REVIEW, row, site)
        transition(
            session, sink, row, action, actor=acting.tag, now=now, ledger_action="violation.reviewed",
            payload={"outcome": outcome, "role": acting.role.value, "reason_given": text is not None},
        )
        row.review_outcome, row.review_reason, row.reviewed_at, row.reviewed_by = outcome, text, now, acting.id
        if action is ViolationAction.DISMISS:
            row.closed_at = now
        session.add(ReviewRow(violation_id=row.id, user_id=acting.id, role=acting.role.value, outcome=outcome, reason=text, at=now))
        session.flush()
        return to_violation(row, site.district)


# ------------------------------------------------------------------------------------- reads


def _violation_query(acting: User, action: Action):  # type: ignore[no-untyped-def]
    return select(ViolationRow, SiteRow.district).join(SiteRow, SiteRow.id == ViolationRow.site_id).where(scope_filter(acting, action, ViolationRow.site_id, SiteRow.district))


def list_violations(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    site_id: str | None = None,
    district: str | None = None,
    camera_id: str | None = None,
    states: Sequence[str] | None = None,
    tier: int | None = None,
    label: str | None = None,
    overdue: bool | None = None,
    min_escalation: int | None = None,
    evidence_hold: bool | None = None,
    seen_from: datetime | None = None,
    seen_to: datetime | None = None,
    now: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[Violation]:
    """Cases the user may see, filtered, newest first, one page at a time.

    Args:
        sessions: Session factory.
        actor: The user; rows outside their jurisdiction are never returned.
        site_id: Only this site.
        district: Only this district.
        camera_id: Only this camera.
        states: Only these states (``open``, ``rectification_due``…).
        tier: Only this tier.
        label: Only this label.
        overdue: True: only cases past their deadline that the site still has to act on; False:
            only cases that are not.
        min_escalation: Only cases escalated at least this far (1 yellow, 2 red).
        evidence_hold: Only cases with (True) or without (False) an evidence hold.
        seen_from: First detection at or after this time.
        seen_to: First detection before this time.
        now: Clock for ``overdue``.
        page: 1-based page.
        per_page: Page size (at most 200).
    """
    now = as_utc(now or utcnow())
    page, per_page = _clamp_page(page, per_page)
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        query = _violation_query(acting, Action.VIOLATION_READ)
        if site_id is not None:
            query = query.where(ViolationRow.site_id == site_id)
        if district is not None:
            query = query.where(SiteRow.district == district)
        if camera_id is not None:
            query = query.where(ViolationRow.camera_id == camera_id)
        if states:
            unknown = [s for s in states if s not in {v.value for v in ViolationState}]
            if unknown:
                raise InputError(f"unknown state {unknown[0]!r}", field="states")
            query = query.where(ViolationRow.state.in_(list(states)))
        if tier is not None:
            query = query.where(ViolationRow.tier == tier)
        if label is not None:
            query = query.where(ViolationRow.label == label)
        if overdue is True:
            query = query.where(ViolationRow.state.in_(ESCALATABLE_STATES), ViolationRow.due_at < now)
        elif overdue is False:
            query = query.where(~(ViolationRow.state.in_(ESCALATABLE_STATES) & (ViolationRow.due_at < now)))
        if min_escalation is not None:
            query = query.where(ViolationRow.escalation_level >= min_escalation)
        if evidence_hold is not None:
            query = query.where(ViolationRow.evidence_hold.is_(evidence_hold))
        if seen_from is not None:
            query = query.where(ViolationRow.first_seen_at >= clean_moment(seen_from, "seen_from"))
        if seen_to is not None:
            query = query.where(ViolationRow.first_seen_at < clean_moment(seen_to, "seen_to"))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.execute(query.order_by(ViolationRow.first_seen_at.desc(), ViolationRow.id.desc()).offset((page - 1) * per_page).limit(per_page)).all()
        return Page(items=[to_violation(row, district) for row, district in rows], total=int(total), page=page, per_page=per_page)


def review_queue(sessions: sessionmaker[Session], actor: User, *, limit: int = 50) -> list[Violation]:
    """Open cases the user may review, most severe and most urgent first (a manager's inbox)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PER_PAGE:
        raise InputError(f"must be between 1 and {MAX_PER_PAGE}", field="limit")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_REVIEW)
        query = (
            _violation_query(acting, Action.VIOLATION_REVIEW)
            .where(ViolationRow.state == ViolationState.OPEN.value)
            .order_by(ViolationRow.tier, ViolationRow.due_at, ViolationRow.id)
            .limit(limit)
        )
        return [to_violation(row, district) for row, district in session.execute(query).all()]


def evidence_of(session: Session, violation_id: int) -> list[EvidenceObject]:
    """The case's snapshots and rectification photos, oldest first."""
    objects: list[EvidenceObject] = []
    snapshot_ids = select(ViolationDetectionRow.snapshot_id).where(ViolationDetectionRow.violation_id == violation_id).distinct()
    rows = session.execute(
        select(SnapshotRow, SnapshotExpiryRow.snapshot_id)
        .outerjoin(SnapshotExpiryRow, SnapshotExpiryRow.snapshot_id == SnapshotRow.id)
        .where(SnapshotRow.id.in_(snapshot_ids))
        .order_by(SnapshotRow.slot_time, SnapshotRow.id)
    ).all()
    for snapshot, expired in rows:
        moment = snapshot.captured_at or snapshot.slot_time
        objects.append(
            EvidenceObject(
                kind="snapshot", ref=snapshot.id, bucket=snapshot.bucket, key=snapshot.key, version_id=snapshot.version_id,
                sha256=snapshot.sha256, at=as_utc(moment) if moment else None, expired=expired is not None,
            )
        )
    for rect in session.scalars(select(RectificationRow).where(RectificationRow.violation_id == violation_id).order_by(RectificationRow.round)).all():
        objects.append(_photo(rect))
    return objects


def _photo(rect: RectificationRow) -> EvidenceObject:
    return EvidenceObject(
        kind="rectification_photo", ref=rect.id, bucket=rect.photo_bucket, key=rect.photo_key, version_id=rect.photo_version_id,
        sha256=rect.photo_sha256, at=as_utc(rect.submitted_at), expired=rect.photo_expired_at is not None,
    )


def to_rectification(rect: RectificationRow) -> Rectification:
    """The dataclass of a rectification row."""
    return Rectification(
        id=rect.id, violation_id=rect.violation_id, round=rect.round, submitted_by=rect.submitted_by, submitted_at=as_utc(rect.submitted_at),
        note=rect.note, photo=_photo(rect), checked_by=rect.checked_by, checked_at=as_utc(rect.checked_at) if rect.checked_at else None,
        outcome=rect.outcome, check_note=rect.check_note,
    )


def allowed_actions(acting: User, row: ViolationRow, site: SiteRow) -> list[str]:
    """Actions the user may take on the case now (state and permission both allow)."""
    ref = SiteRef(district=site.district, site_id=site.id)
    result = []
    for action in VIOLATION_MACHINE.allowed(row.state):
        permission = ACTION_PERMISSION.get(action)
        if permission is not None and can(acting, permission, ref):
            result.append(action)
    if can(acting, Action.EVIDENCE_HOLD, ref):
        result.append("release_hold" if row.evidence_hold else "hold_evidence")
    return result


def violation_detail(sessions: sessionmaker[Session], actor: User, violation_id: int) -> ViolationDetail:
    """A case with its reviews, rectifications, evidence objects, ledger history and the actions the user may take.

    Raises:
        NotFoundError: No such case.
        PermissionDenied: The case is outside the user's jurisdiction.
    """
    with sessions() as session:
        acting = refresh_actor(session, actor)
        row, site = load_violation(session, violation_id)
        authorize_on(acting, Action.VIOLATION_READ, row, site)
        reviews = [
            Review(user_id=r.user_id, role=r.role, outcome=r.outcome, reason=r.reason, at=as_utc(r.at))
            for r in session.scalars(select(ReviewRow).where(ReviewRow.violation_id == row.id).order_by(ReviewRow.id)).all()
        ]
        rectifications = [to_rectification(r) for r in session.scalars(select(RectificationRow).where(RectificationRow.violation_id == row.id).order_by(RectificationRow.round)).all()]
        history = [
            HistoryEntry(seq=e.seq, ts=e.ts, actor=e.actor, action=e.action, payload=_json(e.payload))
            for e in session.execute(
                select(entries_table.c.seq, entries_table.c.ts, entries_table.c.actor, entries_table.c.action, entries_table.c.payload)
                .where(entries_table.c.subject == f"violation:{row.id}")
                .order_by(entries_table.c.seq)
            ).all()
        ]
        return ViolationDetail(
            violation=to_violation(row, site.district),
            site_name=site.name,
            site_kind=site.kind,
            reviews=reviews,
            rectifications=rectifications,
            evidence=evidence_of(session, row.id),
            history=history,
            allowed_actions=allowed_actions(acting, row, site),
        )


def _json(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def violation_stats(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    group_by: str = "district",
    district: str | None = None,
    site_id: str | None = None,
    seen_from: datetime | None = None,
    seen_to: datetime | None = None,
    now: datetime | None = None,
) -> list[ViolationStats]:
    """Per-district or per-site aggregates, computed in SQL, over the cases the user may see.

    Args:
        sessions: Session factory.
        actor: The user (jurisdiction applies).
        group_by: ``district`` or ``site``.
        district: Only this district.
        site_id: Only this site.
        seen_from: Cases first seen at or after this time.
        seen_to: Cases first seen before this time.
        now: Clock for "overdue".

    Returns:
        One row per district or site with open cases by tier, overdue, red, confirmed, closed,
        dismissed, total and the rectification rate (closed / confirmed).
    """
    now = as_utc(now or utcnow())
    if group_by not in ("district", "site"):
        raise InputError("must be district or site", field="group_by")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        key = SiteRow.district if group_by == "district" else ViolationRow.site_id
        active = ViolationRow.state.in_(ACTIVE_STATES)
        overdue = ViolationRow.state.in_(ESCALATABLE_STATES) & (ViolationRow.due_at < now)
        confirmed = ViolationRow.review_outcome == CONFIRMED
        closed = ViolationRow.state == ViolationState.CLOSED.value
        dismissed = ViolationRow.state == ViolationState.DISMISSED.value

        def count_if(condition):  # type: ignore[no-untyped-def]
            return func.sum(case((condition, 1), else_=0))

        query = (
            select(
                key.label("key"),
                ViolationRow.tier,
                count_if(active).label("open"),
                count_if(overdue).label("overdue"),
                count_if(active & (ViolationRow.escalation_level >= 2)).label("red"),
                count_if(confirmed).label("confirmed"),
                count_if(closed).label("closed"),
                count_if(dismissed).label("dismissed"),
                func.count().label("total"),
            )
            .select_from(ViolationRow)
            .join(SiteRow, SiteRow.id == ViolationRow.site_id)
            .where(scope_filter(acting, Action.VIOLATION_READ, ViolationRow.site_id, SiteRow.district))
            .group_by(key, ViolationRow.tier)
        )
        if district is not None:
            query = query.where(SiteRow.district == district)
        if site_id is not None:
            query = query.where(ViolationRow.site_id == site_id)
        if seen_from is not None:
            query = query.where(ViolationRow.first_seen_at >= clean_moment(seen_from, "seen_from"))
        if seen_to is not None:
            query = query.where(ViolationRow.first_seen_at < clean_moment(seen_to, "seen_to"))
        groups: dict[str, dict[str, Any]] = {}
        for item in session.execute(query).all():
            group = groups.setdefault(item.key, {"open_by_tier": {}, "overdue": 0, "red": 0, "confirmed": 0, "closed": 0, "dismissed": 0, "total": 0})
            group["open_by_tier"][int(item.tier)] = int(item.open or 0)
            for name in ("overdue", "red", "confirmed", "closed", "dismissed", "total"):
                group[name] += int(getattr(item, name) or 0)
        result = []
        for name in sorted(groups):
            group = groups[name]
            result.append(
                ViolationStats(
                    key=name,
                    open_by_tier=dict(sorted(group["open_by_tier"].items())),
                    open_total=sum(group["open_by_tier"].values()),
                    overdue=group["overdue"],
                    red=group["red"],
                    confirmed=group["confirmed"],
                    closed=group["closed"],
                    dismissed=group["dismissed"],
                    total=group["total"],
                    rectification_rate=(group["closed"] / group["confirmed"]) if group["confirmed"] else None,
                )
            )
        return result


__all__ = [
    "ACTION_PERMISSION",
    "allowed_actions",
    "evidence_of",
    "fold_detections",
    "list_violations",
    "load_violation",
    "review_queue",
    "review_violation",
    "to_violation",
    "transition",
    "violation_detail",
    "violation_stats",
]
