"""Read and aggregate functions the dashboard needs beyond the workflow services.

Every function takes the acting :class:`~canteen_watch.auth.User`, re-reads it inside its
session (:func:`~canteen_watch.auth.refresh_actor`, so a disabled account or a narrowed
jurisdiction takes effect at once), checks the permission with
:func:`~canteen_watch.auth.authorize`, and filters rows by jurisdiction with
:func:`~canteen_watch.auth.scope_filter`. Aggregation happens in SQL; pages never hold SQL.

Camera health and snapshots count as monitoring data of a site: reading them needs
``violation.read`` there. The whole-city ledger needs ``evidence.verify`` with city-wide reach
(auditors, administrators, city-wide inspectors). Promoting a model is for administrators.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import ALL, POLICY, Action, Role, User, authorize, refresh_actor, scope_filter, site_ref
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import CameraEventRow, CameraHealthRow, CameraRow, DetectionRow, SiteRow, SnapshotRow
from canteen_watch.ledger.entry import format_ts
from canteen_watch.ledger.models import entries_table
from canteen_watch.workflows.errors import InputError, NotFoundError, PermissionDenied
from canteen_watch.workflows.models import InstitutionRow, UserRow, ViolationRow
from canteen_watch.workflows.types import Page
from canteen_watch.workflows.validation import clean_text, like_pattern

MAX_PER_PAGE = 200
SNAPSHOT_OK = ("stored", "spooled")


# ------------------------------------------------------------------------------------- helpers


def _page_args(page: int, per_page: int) -> tuple[int, int]:
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InputError("must be a whole number of at least 1", field="page")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
        raise InputError(f"must be between 1 and {MAX_PER_PAGE}", field="per_page")
    return page, per_page


def _camera_scope(acting: User):  # type: ignore[no-untyped-def]
    return scope_filter(acting, Action.VIOLATION_READ, CameraRow.site_id, SiteRow.district)


def _require_citywide(acting: User, action: Action) -> None:
    """The action must reach the whole city (the ledger is one log for every site)."""
    authorize(acting, action)
    if POLICY.get(acting.role, {}).get(action) != ALL and not acting.citywide:
        raise PermissionDenied("the ledger covers the whole city: only auditors, administrators and city-wide users may read it", role=acting.role.value, action=action.value)


def hour_bucket(column: Any, dialect: str) -> Any:
    """SQL expression: the UTC hour of a timestamp column as ``YYYY-MM-DD HH`` text.

    Cheap on both databases (SQLite keeps naive UTC text, so it is a prefix); :func:`local_days`
    then folds the hours into calendar days of the display zone in Python, exactly for any zone
    whose offset is whole hours.
    """
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)


def local_day(hour_text: str, zone: tzinfo) -> str:
    """``YYYY-MM-DD`` in ``zone`` of a ``YYYY-MM-DD HH`` UTC hour."""
    moment = datetime.strptime(str(hour_text)[:13], "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
    return moment.astimezone(zone).strftime("%Y-%m-%d")


def _reaches_all(acting: User, action: Action) -> bool:
    return POLICY.get(acting.role, {}).get(action) == ALL or acting.citywide


def _scoped(query: Any, acting: User, action: Action, site_column: Any) -> Any:
    """``query`` limited to the user's jurisdiction (no join at all for city-wide users)."""
    if _reaches_all(acting, action):
        return query
    return query.join(SiteRow, SiteRow.id == site_column).where(scope_filter(acting, action, site_column, SiteRow.district))


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# ------------------------------------------------------------------------------------- users


def refresh_user(sessions: sessionmaker[Session], user: User) -> User:
    """The logged-in user as the database has it now.

    Raises:
        PermissionDenied: The account was deleted or disabled since the login.
    """
    with sessions() as session:
        return refresh_actor(session, user)


def user_for_sso(sessions: sessionmaker[Session], username: str) -> User | None:
    """The active local user whose user name matches an identity-provider login (None if there is none).

    The identity provider has authenticated the person; the local account supplies the role and
    jurisdiction, so an SSO login never grants more than the local account holds.
    """
    from canteen_watch.auth import USERNAME_PATTERN, get_user

    name = (username or "").strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        return None
    with sessions() as session:
        user_id = session.scalar(select(UserRow.id).where(UserRow.username == name, UserRow.active.is_(True)))
        return get_user(session, user_id) if user_id is not None else None


# ------------------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class SiteInfo:
    """A site the user may see."""

    id: str
    name: str
    kind: str
    district: str


def visible_sites(sessions: sessionmaker[Session], actor: User, action: Action = Action.VIOLATION_READ) -> list[SiteInfo]:
    """Sites inside the user's jurisdiction for ``action``, by district and name (for filters)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, action)
        rows = session.execute(
            select(SiteRow.id, SiteRow.name, SiteRow.kind, SiteRow.district)
            .where(scope_filter(acting, action, SiteRow.id, SiteRow.district))
            .order_by(SiteRow.district, SiteRow.name, SiteRow.id)
        ).all()
        return [SiteInfo(*row) for row in rows]


# ------------------------------------------------------------------------------------- overview


@dataclass(frozen=True)
class OverviewCounts:
    """Headline numbers of the overview."""

    cameras: int
    cameras_enabled: int
    cameras_online: int
    cameras_offline: int
    cameras_quality: int
    snapshots_today: int
    failed_today: int


def overview_counts(sessions: sessionmaker[Session], actor: User, *, day_start: datetime) -> OverviewCounts:
    """Cameras online/offline and today's snapshots inside the user's jurisdiction (two SQL aggregates)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        enabled = CameraRow.enabled.is_(True)
        offline = and_(enabled, CameraHealthRow.online.is_(False))
        quality = and_(enabled, CameraHealthRow.quality_alert.is_not(None))
        cams = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((enabled, 1), else_=0)), 0),
                func.coalesce(func.sum(case((offline, 1), else_=0)), 0),
                func.coalesce(func.sum(case((quality, 1), else_=0)), 0),
            )
            .select_from(CameraRow)
            .join(SiteRow, SiteRow.id == CameraRow.site_id)
            .outerjoin(CameraHealthRow, CameraHealthRow.camera_id == CameraRow.id)
            .where(_camera_scope(acting))
        ).one()
        # all slots from the (site, slot) index, minus the failed and pending ones from the status
        # index: neither count reads the snapshot rows themselves
        since = as_utc(day_start)
        slots = session.scalar(_scoped(select(func.count()).select_from(SnapshotRow), acting, Action.VIOLATION_READ, SnapshotRow.site_id).where(SnapshotRow.slot_time >= since)) or 0
        not_ok = dict(
            session.execute(
                _scoped(select(SnapshotRow.status, func.count()).select_from(SnapshotRow), acting, Action.VIOLATION_READ, SnapshotRow.site_id)
                .where(SnapshotRow.status.in_(("failed", "pending")), SnapshotRow.slot_time >= since)
                .group_by(SnapshotRow.status)
            ).all()
        )
        total, on, off, qual = (int(v or 0) for v in cams)
        failed = int(not_ok.get("failed", 0))
        return OverviewCounts(
            cameras=total, cameras_enabled=on, cameras_online=on - off, cameras_offline=off, cameras_quality=qual,
            snapshots_today=int(slots) - failed - int(not_ok.get("pending", 0)), failed_today=failed,
        )


def violation_trend(sessions: sessionmaker[Session], actor: User, *, since: datetime, zone: tzinfo) -> list[tuple[str, int, int]]:
    """``(day, tier, cases first seen)`` per calendar day of ``zone`` since ``since`` (hours grouped in SQL)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        hour = hour_bucket(ViolationRow.first_seen_at, _dialect(session)).label("hour")
        rows = session.execute(
            _scoped(select(hour, ViolationRow.tier, func.count()).select_from(ViolationRow), acting, Action.VIOLATION_READ, ViolationRow.site_id)
            .where(ViolationRow.first_seen_at >= as_utc(since))
            .group_by(hour, ViolationRow.tier)
        ).all()
    days: dict[tuple[str, int], int] = {}
    for hour_text, tier, n in rows:
        key = (local_day(hour_text, zone), int(tier))
        days[key] = days.get(key, 0) + int(n)
    return [(day, tier, n) for (day, tier), n in sorted(days.items())]


def snapshot_trend(sessions: sessionmaker[Session], actor: User, *, since: datetime, zone: tzinfo) -> list[tuple[str, int, int]]:
    """``(day, stored or spooled, failed)`` snapshots per calendar day of ``zone`` since ``since``.

    Two index-only aggregates: every slot per hour from the (site, slot) index, and the failed
    and pending slots per hour from the status index.
    """
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        since = as_utc(since)
        hour = hour_bucket(SnapshotRow.slot_time, _dialect(session)).label("hour")
        slots = session.execute(
            _scoped(select(hour, func.count()).select_from(SnapshotRow), acting, Action.VIOLATION_READ, SnapshotRow.site_id)
            .where(SnapshotRow.slot_time >= since)
            .group_by(hour)
        ).all()
        others = session.execute(
            _scoped(select(hour, SnapshotRow.status, func.count()).select_from(SnapshotRow), acting, Action.VIOLATION_READ, SnapshotRow.site_id)
            .where(SnapshotRow.status.in_(("failed", "pending")), SnapshotRow.slot_time >= since)
            .group_by(hour, SnapshotRow.status)
        ).all()
    days: dict[str, list[int]] = {}
    for hour_text, n in slots:
        days.setdefault(local_day(hour_text, zone), [0, 0])[0] += int(n)
    for hour_text, status, n in others:
        entry = days.setdefault(local_day(hour_text, zone), [0, 0])
        entry[0] -= int(n)
        if status == "failed":
            entry[1] += int(n)
    return [(day, ok, bad) for day, (ok, bad) in sorted(days.items())]


@dataclass(frozen=True)
class CoverageGap:
    """A site whose kitchen is not (fully) watched."""

    site_id: str
    name: str
    kind: str
    district: str
    cameras: int
    offline: int
    stale: int
    last_success_at: datetime | None


def coverage_gaps(sessions: sessionmaker[Session], actor: User, *, stale_before: datetime, limit: int = 500) -> list[CoverageGap]:
    """Sites with no enabled camera, a camera offline, or a camera without a good snapshot since ``stale_before``.

    Worst first (most cameras offline or stale). Uses the debounced health rows, not a scan of
    the snapshots.
    """
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        stale_before = as_utc(stale_before)
        enabled_join = and_(CameraRow.site_id == SiteRow.id, CameraRow.enabled.is_(True))
        has_camera = CameraRow.id.is_not(None)
        offline = func.coalesce(func.sum(case((and_(has_camera, CameraHealthRow.online.is_(False)), 1), else_=0)), 0)
        stale = func.coalesce(
            func.sum(case((and_(has_camera, or_(CameraHealthRow.last_success_at.is_(None), CameraHealthRow.last_success_at < stale_before)), 1), else_=0)), 0
        )
        cameras = func.count(CameraRow.id)
        rows = session.execute(
            select(SiteRow.id, SiteRow.name, SiteRow.kind, SiteRow.district, cameras.label("cameras"), offline.label("offline"), stale.label("stale"), func.max(CameraHealthRow.last_success_at))
            .select_from(SiteRow)
            .outerjoin(CameraRow, enabled_join)
            .outerjoin(CameraHealthRow, CameraHealthRow.camera_id == CameraRow.id)
            .where(scope_filter(acting, Action.VIOLATION_READ, SiteRow.id, SiteRow.district))
            .group_by(SiteRow.id, SiteRow.name, SiteRow.kind, SiteRow.district)
            .having(or_(cameras == 0, offline > 0, stale > 0))
            .order_by((offline + stale).desc(), cameras, SiteRow.district, SiteRow.id)
            .limit(limit)
        ).all()
        return [
            CoverageGap(site_id=r[0], name=r[1], kind=r[2], district=r[3], cameras=int(r[4]), offline=int(r[5]), stale=int(r[6]), last_success_at=as_utc(r[7]) if r[7] else None)
            for r in rows
        ]


# ------------------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class CameraSummary:
    """One camera's health and capture record."""

    camera_id: str
    site_id: str
    site_name: str
    district: str
    room: str
    enabled: bool
    online: bool
    quality_alert: str | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    stored: int
    failed: int

    @property
    def success_rate(self) -> float | None:
        """Good captures / attempts in the period (None without attempts)."""
        attempts = self.stored + self.failed
        return self.stored / attempts if attempts else None


CAMERA_STATUSES = ("all", "offline", "quality", "stale", "disabled")


def camera_summaries(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    since: datetime,
    stale_before: datetime | None = None,
    district: str | None = None,
    site_id: str | None = None,
    status: str = "all",
    page: int = 1,
    per_page: int = 50,
) -> Page[CameraSummary]:
    """Cameras the user may see, with health and capture counts since ``since``, one page at a time.

    Args:
        status: ``all``, ``offline``, ``quality`` (a blur/dark/blocked alert), ``stale`` (no good
            snapshot since ``stale_before``) or ``disabled``.
    """
    page, per_page = _page_args(page, per_page)
    if status not in CAMERA_STATUSES:
        raise InputError(f"must be one of {', '.join(CAMERA_STATUSES)}", field="status")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ)
        query = (
            select(CameraRow, SiteRow.name, SiteRow.district, CameraHealthRow)
            .join(SiteRow, SiteRow.id == CameraRow.site_id)
            .outerjoin(CameraHealthRow, CameraHealthRow.camera_id == CameraRow.id)
            .where(_camera_scope(acting))
        )
        if district is not None:
            query = query.where(SiteRow.district == district)
        if site_id is not None:
            query = query.where(CameraRow.site_id == site_id)
        if status == "offline":
            query = query.where(CameraRow.enabled.is_(True), CameraHealthRow.online.is_(False))
        elif status == "quality":
            query = query.where(CameraRow.enabled.is_(True), CameraHealthRow.quality_alert.is_not(None))
        elif status == "stale":
            cutoff = as_utc(stale_before or utcnow() - timedelta(hours=2))
            query = query.where(CameraRow.enabled.is_(True), or_(CameraHealthRow.last_success_at.is_(None), CameraHealthRow.last_success_at < cutoff))
        elif status == "disabled":
            query = query.where(CameraRow.enabled.is_(False))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.execute(query.order_by(SiteRow.district, CameraRow.site_id, CameraRow.id).offset((page - 1) * per_page).limit(per_page)).all()
        ids = [camera.id for camera, *_ in rows]
        counts: dict[str, tuple[int, int]] = {}
        if ids:
            for camera_id, ok, bad in session.execute(
                select(
                    SnapshotRow.camera_id,
                    func.sum(case((SnapshotRow.status.in_(SNAPSHOT_OK), 1), else_=0)),
                    func.sum(case((SnapshotRow.status == "failed", 1), else_=0)),
                )
                .where(SnapshotRow.camera_id.in_(ids), SnapshotRow.slot_time >= as_utc(since))
                .group_by(SnapshotRow.camera_id)
            ).all():
                counts[camera_id] = (int(ok or 0), int(bad or 0))
        items = []
        for camera, site_name, site_district, health in rows:
            ok, bad = counts.get(camera.id, (0, 0))
            items.append(
                CameraSummary(
                    camera_id=camera.id, site_id=camera.site_id, site_name=site_name, district=site_district, room=camera.room, enabled=bool(camera.enabled),
                    online=bool(health.online) if health else True, quality_alert=health.quality_alert if health else None,
                    last_success_at=as_utc(health.last_success_at) if health and health.last_success_at else None,
                    last_failure_at=as_utc(health.last_failure_at) if health and health.last_failure_at else None,
                    last_error=health.last_error if health else None, stored=ok, failed=bad,
                )
            )
        return Page(items=items, total=int(total), page=page, per_page=per_page)


def _camera_site(session: Session, acting: User, camera_id: str) -> CameraRow:
    camera = session.get(CameraRow, camera_id) if isinstance(camera_id, str) else None
    if camera is None:
        raise NotFoundError(f"no camera {camera_id!r}")
    authorize(acting, Action.VIOLATION_READ, site_ref(session, camera.site_id))
    return camera


@dataclass(frozen=True)
class CameraEvent:
    """A health event of a camera."""

    camera_id: str
    kind: str
    at: datetime
    detail: str | None


def camera_events(sessions: sessionmaker[Session], actor: User, camera_id: str, *, since: datetime | None = None, limit: int = 200) -> list[CameraEvent]:
    """The camera's offline/online/quality events, newest first."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        _camera_site(session, acting, camera_id)
        query = select(CameraEventRow).where(CameraEventRow.camera_id == camera_id)
        if since is not None:
            query = query.where(CameraEventRow.at >= as_utc(since))
        rows = session.scalars(query.order_by(CameraEventRow.at.desc(), CameraEventRow.id.desc()).limit(max(1, min(limit, 1000)))).all()
        return [CameraEvent(camera_id=r.camera_id, kind=r.kind, at=as_utc(r.at), detail=r.detail) for r in rows]


def camera_quality_days(sessions: sessionmaker[Session], actor: User, camera_id: str, *, since: datetime, zone: tzinfo) -> list[tuple[str, int, int, int, int, int]]:
    """``(day, good, failed, blurred, dark, blocked)`` snapshots of one camera per calendar day of ``zone``."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        _camera_site(session, acting, camera_id)
        hour = hour_bucket(SnapshotRow.slot_time, _dialect(session)).label("hour")

        def count_if(condition):  # type: ignore[no-untyped-def]
            return func.sum(case((condition, 1), else_=0))

        rows = session.execute(
            select(
                hour,
                count_if(SnapshotRow.status.in_(SNAPSHOT_OK)),
                count_if(SnapshotRow.status == "failed"),
                count_if(SnapshotRow.blurred.is_(True)),
                count_if(SnapshotRow.dark.is_(True)),
                count_if(SnapshotRow.blocked.is_(True)),
            )
            .where(SnapshotRow.camera_id == camera_id, SnapshotRow.slot_time >= as_utc(since))
            .group_by(hour)
        ).all()
    days: dict[str, list[int]] = {}
    for hour_text, *counts in rows:
        entry = days.setdefault(local_day(hour_text, zone), [0, 0, 0, 0, 0])
        for i, value in enumerate(counts):
            entry[i] += int(value or 0)
    return [(day, *values) for day, values in sorted(days.items())]  # type: ignore[misc]


@dataclass(frozen=True)
class SnapshotRef:
    """A stored snapshot: where its bytes are and what the quality check said."""

    id: int
    camera_id: str
    site_id: str
    slot_time: datetime
    captured_at: datetime | None
    status: str
    bucket: str | None
    key: str | None
    version_id: str | None
    sha256: str | None
    width: int | None
    height: int | None
    blurred: bool | None
    dark: bool | None
    blocked: bool | None
    model_version: str | None
    classifier_status: str | None


def _snapshot_ref(row: SnapshotRow) -> SnapshotRef:
    return SnapshotRef(
        id=row.id, camera_id=row.camera_id, site_id=row.site_id, slot_time=as_utc(row.slot_time), captured_at=as_utc(row.captured_at) if row.captured_at else None,
        status=row.status, bucket=row.bucket, key=row.key, version_id=row.version_id, sha256=row.sha256, width=row.width, height=row.height,
        blurred=row.blurred, dark=row.dark, blocked=row.blocked, model_version=row.model_version, classifier_status=row.classifier_status,
    )


def recent_snapshots(sessions: sessionmaker[Session], actor: User, camera_id: str, *, limit: int = 6) -> list[SnapshotRef]:
    """The camera's latest stored snapshots, newest first (uses the (camera, slot) index)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        _camera_site(session, acting, camera_id)
        rows = session.scalars(
            select(SnapshotRow)
            .where(SnapshotRow.camera_id == camera_id, SnapshotRow.status.in_(SNAPSHOT_OK), SnapshotRow.key.is_not(None))
            .order_by(SnapshotRow.slot_time.desc())
            .limit(max(1, min(limit, 50)))
        ).all()
        return [_snapshot_ref(r) for r in rows]


def latest_site_snapshots(sessions: sessionmaker[Session], actor: User, site_id: str, *, limit: int = 12) -> list[tuple[str, SnapshotRef | None]]:
    """``(camera id, latest stored snapshot or None)`` for each enabled camera of a site."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_READ, site_ref(session, site_id))
        camera_ids = session.scalars(select(CameraRow.id).where(CameraRow.site_id == site_id, CameraRow.enabled.is_(True)).order_by(CameraRow.id).limit(limit)).all()
        result = []
        for camera_id in camera_ids:
            row = session.scalars(
                select(SnapshotRow)
                .where(SnapshotRow.camera_id == camera_id, SnapshotRow.status.in_(SNAPSHOT_OK), SnapshotRow.key.is_not(None))
                .order_by(SnapshotRow.slot_time.desc())
                .limit(1)
            ).first()
            result.append((camera_id, _snapshot_ref(row) if row else None))
        return result


@dataclass(frozen=True)
class DetectionBox:
    """One classifier finding drawn on a snapshot (pixel coordinates)."""

    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float
    model_version: str
    roi_id: str | None


@dataclass(frozen=True)
class SnapshotView:
    """A snapshot with its detections and the camera's regions of interest."""

    snapshot: SnapshotRef
    detections: list[DetectionBox]
    rois: list[dict[str, Any]] = field(default_factory=list)
    room: str | None = None


def snapshot_view(sessions: sessionmaker[Session], actor: User, snapshot_id: int) -> SnapshotView:
    """A snapshot, its detections (boxes, scores, model versions) and its camera's ROIs."""
    if isinstance(snapshot_id, bool) or not isinstance(snapshot_id, int):
        raise InputError("must be a snapshot number", field="snapshot_id")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        row = session.get(SnapshotRow, snapshot_id)
        if row is None:
            raise NotFoundError(f"no snapshot {snapshot_id}")
        authorize(acting, Action.VIOLATION_READ, site_ref(session, row.site_id))
        camera = session.get(CameraRow, row.camera_id)
        detections = [
            DetectionBox(label=d.label, score=float(d.score), x1=float(d.x1), y1=float(d.y1), x2=float(d.x2), y2=float(d.y2), model_version=d.model_version, roi_id=d.roi_id)
            for d in session.scalars(select(DetectionRow).where(DetectionRow.snapshot_id == snapshot_id).order_by(DetectionRow.score.desc(), DetectionRow.id)).all()
        ]
        return SnapshotView(snapshot=_snapshot_ref(row), detections=detections, rois=list(camera.rois or []) if camera else [], room=camera.room if camera else None)


def case_snapshot_ids(sessions: sessionmaker[Session], actor: User, violation_id: int) -> tuple[int | None, int | None]:
    """``(first, last)`` snapshot ids of a case (read permission on its site)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        row = session.get(ViolationRow, violation_id) if isinstance(violation_id, int) and not isinstance(violation_id, bool) else None
        if row is None:
            raise NotFoundError(f"no violation {violation_id}")
        authorize(acting, Action.VIOLATION_READ, site_ref(session, row.site_id))
        return row.first_snapshot_id, row.last_snapshot_id


def review_list(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    states: Sequence[str] | None = ("open",),
    site_id: str | None = None,
    label: str | None = None,
    tier: int | None = None,
    seen_from: datetime | None = None,
    seen_to: datetime | None = None,
    page: int = 1,
    per_page: int = 20,
) -> Page[Any]:
    """Cases the user may review, filtered; open cases most severe and most urgent first (tier, then
    deadline, as :func:`~canteen_watch.workflows.violations.review_queue`), others newest first.
    """
    from canteen_watch.workflows.violations import to_violation

    page, per_page = _page_args(page, per_page)
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.VIOLATION_REVIEW)
        query = (
            select(ViolationRow, SiteRow.district)
            .join(SiteRow, SiteRow.id == ViolationRow.site_id)
            .where(scope_filter(acting, Action.VIOLATION_REVIEW, ViolationRow.site_id, SiteRow.district))
        )
        if states:
            query = query.where(ViolationRow.state.in_(list(states)))
        if site_id is not None:
            query = query.where(ViolationRow.site_id == site_id)
        if label is not None:
            query = query.where(ViolationRow.label == label)
        if tier is not None:
            query = query.where(ViolationRow.tier == tier)
        if seen_from is not None:
            query = query.where(ViolationRow.first_seen_at >= as_utc(seen_from))
        if seen_to is not None:
            query = query.where(ViolationRow.first_seen_at < as_utc(seen_to))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        if states and set(states) == {"open"}:
            order = (ViolationRow.tier, ViolationRow.due_at, ViolationRow.id)
        else:
            order = (ViolationRow.first_seen_at.desc(), ViolationRow.id.desc())
        rows = session.execute(query.order_by(*order).offset((page - 1) * per_page).limit(per_page)).all()
        return Page(items=[to_violation(row, district) for row, district in rows], total=int(total), page=page, per_page=per_page)


def institution_sites(sessions: sessionmaker[Session], actor: User) -> set[str]:
    """Site ids that are registered care institutions inside the user's reach."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.INSTITUTION_READ)
        return set(session.scalars(select(InstitutionRow.site_id).where(scope_filter(acting, Action.INSTITUTION_READ, InstitutionRow.site_id, InstitutionRow.district))).all())


# ------------------------------------------------------------------------------------- ledger


@dataclass(frozen=True)
class LedgerRow:
    """A ledger entry as the audit trail shows it."""

    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    payload: dict[str, Any]
    evidence: dict[str, Any] | None
    corrects: int | None
    prev_hash: str
    entry_hash: str


def _ledger_row(row: Any) -> LedgerRow:
    m = row._mapping
    try:
        payload = json.loads(m["payload"])
    except ValueError:
        payload = {}
    evidence = None
    if m["evidence_sha256"] is not None or m["evidence_key"] is not None:
        evidence = {"bucket": m["evidence_bucket"], "key": m["evidence_key"], "sha256": m["evidence_sha256"], "version_id": m["evidence_version_id"]}
    return LedgerRow(
        seq=int(m["seq"]), ts=m["ts"], actor=m["actor"], action=m["action"], subject=m["subject"], payload=payload if isinstance(payload, dict) else {"value": payload},
        evidence=evidence, corrects=m["corrects"], prev_hash=m["prev_hash"], entry_hash=m["entry_hash"],
    )


def ledger_actions(sessions: sessionmaker[Session], actor: User) -> list[str]:
    """The distinct actions in the ledger (for the filter)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        _require_citywide(acting, Action.EVIDENCE_VERIFY)
        return sorted(session.scalars(select(entries_table.c.action).distinct()).all())


def ledger_search(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    site_id: str | None = None,
    action: str | None = None,
    violation_id: int | None = None,
    subject: str | None = None,
    ts_from: datetime | None = None,
    ts_to: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[LedgerRow]:
    """Ledger entries, newest first, filtered by site, action, case, subject and time.

    A site matches the entries about its cases, snapshots, cameras, institution and inspections
    (found through sub-queries on the ``subject`` index, never by scanning payloads).

    Args:
        site_id: Only entries about this site.
        action: Exact action (``violation.reviewed``), or a prefix ending in ``.`` (``violation.``).
        violation_id: Only entries about this case.
        subject: Subject text to look for (substring).
        ts_from: Entries at or after this time.
        ts_to: Entries before this time.
    """
    page, per_page = _page_args(page, per_page)
    text = clean_text(subject, "subject", max_length=200, required=False)
    e = entries_table.c
    with sessions() as session:
        acting = refresh_actor(session, actor)
        _require_citywide(acting, Action.EVIDENCE_VERIFY)
        query = select(entries_table)
        if violation_id is not None:
            if isinstance(violation_id, bool) or not isinstance(violation_id, int):
                raise InputError("must be a case number", field="violation_id")
            query = query.where(e.subject == f"violation:{violation_id}")
        if action:
            query = query.where(e.action.like(like_pattern(action)[1:], escape="\\") if action.endswith(".") else e.action == action)
        if text:
            query = query.where(e.subject.like(like_pattern(text), escape="\\"))
        if ts_from is not None:
            query = query.where(e.ts >= format_ts(as_utc(ts_from)))
        if ts_to is not None:
            query = query.where(e.ts < format_ts(as_utc(ts_to)))
        if site_id is not None:
            if session.get(SiteRow, site_id) is None:
                raise NotFoundError(f"no site {site_id!r}")
            cases = select(literal("violation:") + cast(ViolationRow.id, String)).where(ViolationRow.site_id == site_id)
            snapshots = select(literal("snapshot:") + cast(SnapshotRow.id, String)).where(SnapshotRow.site_id == site_id)
            cameras = select(literal("camera:") + CameraRow.id).where(CameraRow.site_id == site_id)
            query = query.where(or_(e.subject.in_(cases), e.subject.in_(snapshots), e.subject.in_(cameras), e.subject.in_([f"institution:{site_id}", f"site:{site_id}"])))
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.execute(query.order_by(e.seq.desc()).offset((page - 1) * per_page).limit(per_page)).all()
        return Page(items=[_ledger_row(r) for r in rows], total=int(total), page=page, per_page=per_page)


@dataclass(frozen=True)
class EntryProof:
    """An entry with its Merkle inclusion proof, checked on the spot."""

    entry: LedgerRow
    proof: dict[str, Any]
    tree_size: int
    root: str
    signed: bool
    checkpoint_note: str | None


def entry_with_proof(sessions: sessionmaker[Session], actor: User, ledger: Any, seq: int) -> EntryProof:
    """Entry ``seq`` and its inclusion proof: against the latest signed checkpoint when it covers the
    entry (its signature checked with the ledger's public key), else against the current tree
    (then ``signed`` is False). The proof is verified here; a proof that does not verify raises
    (the ledger then needs ``verify``).
    """
    from canteen_watch.ledger.store import LedgerError

    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InputError("must be an entry number", field="seq")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        _require_citywide(acting, Action.EVIDENCE_VERIFY)
        row = session.execute(select(entries_table).where(entries_table.c.seq == seq)).first()
        if row is None:
            raise NotFoundError(f"no ledger entry {seq}")
        checkpoint = ledger.latest_checkpoint(session) if getattr(ledger, "verifier", None) is not None else None
        signed = checkpoint is not None and checkpoint.size > seq
        size = checkpoint.size if signed else ledger.size(session)
        try:
            proof = ledger.inclusion_proof(session, seq, size)
        except LedgerError as exc:
            raise NotFoundError(str(exc)) from exc
        proof.verify()
        if signed and proof.root != checkpoint.root:
            signed = False
        return EntryProof(
            entry=_ledger_row(row), proof=proof.as_dict(), tree_size=size, root=proof.root.hex(), signed=signed,
            checkpoint_note=checkpoint.note if signed else None,
        )


def trusted_notes(data_dir: Path) -> list[str]:
    """Published day checkpoints (``<data_dir>/checkpoints/*.checkpoint``), as the CLI trusts them."""
    folder = Path(data_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.checkpoint"))]


def verify_ledger_progress(
    sessions: sessionmaker[Session],
    actor: User,
    verifier: Any,
    *,
    trusted: Sequence[str] = (),
    progress: Callable[[float, int, int], None] | None = None,
    batch: int = 5000,
) -> Any:
    """Replay the whole ledger like ``canteen-watch ledger verify``, reporting progress between batches.

    Returns the :class:`~canteen_watch.ledger.verify.VerifyReport`.
    """
    from canteen_watch.ledger.models import checkpoints_table, nodes_table
    from canteen_watch.ledger.verify import CHECKPOINT_COLUMNS, ENTRY_COLUMNS, Replay

    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.EVIDENCE_VERIFY)
        _require_citywide(acting, Action.EVIDENCE_VERIFY)
        e = entries_table.c
        total = int(session.scalar(select(func.count()).select_from(entries_table)) or 0)
        replay = Replay(verifier, list(trusted))
        rows = session.execute(select(*(getattr(e, name) for name in ENTRY_COLUMNS)).order_by(e.seq).execution_options(yield_per=batch))
        done = 0
        while True:
            chunk = list(itertools.islice(rows, batch))
            if not chunk:
                break
            replay.feed_entries(chunk)
            done += len(chunk)
            if progress is not None:
                progress(0.9 * done / max(total, 1), done, total)
        n = nodes_table.c
        replay.feed_nodes(session.execute(select(n.level, n.idx, n.hash).order_by(n.level, n.idx).execution_options(yield_per=batch * 4)))
        c = checkpoints_table.c
        replay.feed_checkpoints(session.execute(select(*(getattr(c, name) for name in CHECKPOINT_COLUMNS)).order_by(c.id)))
        report = replay.finish()
        if progress is not None:
            progress(1.0, done, total)
        return report


def export_evidence_bundle(
    sessions: sessionmaker[Session],
    actor: User,
    ledger: Any,
    reader: Callable[[str, str, str | None], bytes] | None,
    *,
    violation_id: int | None = None,
    date_from: Any = None,
    date_to: Any = None,
) -> tuple[bytes, Any]:
    """An evidence bundle (zip bytes) for a case or a range of UTC days, and its summary.

    Images that cannot be read are listed in the bundle as missing rather than stopping the
    export (an image whose bytes do not match the ledger still stops it). A checkpoint is signed
    first if the latest one does not cover the selection.

    Raises:
        PermissionDenied: Not an evidence verifier with city-wide reach (for a case: on its site).
        BundleError: Nothing selected, no key, or an image does not match its hash.
    """
    from canteen_watch.ledger.bundle import export_bundle

    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.REPORT_EXPORT)
        if violation_id is not None:
            row = session.get(ViolationRow, violation_id)
            if row is None:
                raise NotFoundError(f"no violation {violation_id}")
            authorize(acting, Action.EVIDENCE_VERIFY, site_ref(session, row.site_id))
        else:
            _require_citywide(acting, Action.EVIDENCE_VERIFY)
    with tempfile.TemporaryDirectory(prefix="cw-bundle-") as folder:
        out = Path(folder) / "bundle.zip"
        try:
            with write_transaction(sessions) as session:
                summary = export_bundle(
                    session, ledger, out, violation_id=violation_id, date_from=date_from, date_to=date_to,
                    reader=reader, allow_missing_images=True, skip_images=reader is None,
                )
        except BaseException:
            ledger.discard_pending()
            raise
        ledger.publish_pending(sessions)
        return out.read_bytes(), summary


# ------------------------------------------------------------------------------------- models


def promote_model(
    sessions: sessionmaker[Session],
    sink: Any,
    actor: User,
    registry: Any,
    version: str,
    *,
    force: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Promote a registered model version (administrators only) and ledger the decision.

    The registry's gate compares the candidate's recorded validation metrics with the active
    model's; ``force`` overrides a refusal and then needs a reason. Ledgered as
    ``model.promoted`` (or ``model.promotion_refused``) with the acting user's id.

    Raises:
        PermissionDenied: The user is not an administrator.
        InputError: Unknown or already active version, missing reason for a forced promotion.
    """
    from classifiers.registry import RegistryError

    from canteen_watch.model_events import promotion_payload

    text = clean_text(reason, "reason", max_length=2000, required=force, multiline=True)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        if acting.role is not Role.ADMIN or not acting.active:
            raise PermissionDenied(f"role {acting.role.value} may not promote models", role=acting.role.value, action="model.promote")
        try:
            record = registry.record(version)
        except RegistryError as exc:
            raise InputError(str(exc), field="version") from None
        active = registry.active(record["task"])
        if active is not None and active["version"] == version:
            raise InputError(f"{version} is already the active {record['task']} model", field="version")
        decision = registry.promote(version, candidate_metrics=record.get("metrics") or {}, active_metrics=(active or {}).get("metrics"), force=force)
        payload = {
            **promotion_payload(decision), "promoted": bool(decision["promoted"]), "forced": bool(force), "role": acting.role.value,
            "sha256": decision["sha256"], "reason_given": text is not None, "at": utcnow().isoformat(),
        }
        sink.append(
            session, actor=acting.tag, action="model.promoted" if decision["promoted"] else "model.promotion_refused", subject=f"model:{version}", payload=payload,
        )
        return decision


__all__ = [
    "CameraEvent", "CameraSummary", "CoverageGap", "DetectionBox", "EntryProof", "LedgerRow", "OverviewCounts", "SiteInfo", "SnapshotRef", "SnapshotView",
    "camera_events", "camera_quality_days", "camera_summaries", "case_snapshot_ids", "coverage_gaps", "hour_bucket", "local_day", "entry_with_proof", "export_evidence_bundle",
    "institution_sites", "latest_site_snapshots", "ledger_actions", "ledger_search", "overview_counts", "promote_model", "recent_snapshots", "refresh_user", "review_list",
    "snapshot_trend", "snapshot_view", "trusted_notes", "user_for_sso", "verify_ledger_progress", "violation_trend", "visible_sites",
]
