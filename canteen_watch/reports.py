"""Excel reports: violations of a site or district over a date range, and the institution registry.

The violations workbook has two sheets:

* **Violations** - one row per case first seen in ``[start, end)``: site, camera, label, tier,
  state, review outcome (with the reviewer's role, never a name), rectification status, re-check
  outcome, escalation and days overdue (as of ``now``);
* **Summary** - per site: cases, open by tier, overdue, red, confirmed, closed, dismissed and the
  rectification rate (aggregated in SQL by :func:`~canteen_watch.workflows.violations.violation_stats`).

Text is written as text (never as formulas) and times as UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, SiteRef, User, authorize, refresh_actor, scope_filter, site_ref
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.models import SiteRow
from canteen_watch.registry.io import export_institutions
from canteen_watch.workflows.errors import InputError
from canteen_watch.workflows.models import RectificationRow, ReviewRow, ViolationRow
from canteen_watch.workflows.spreadsheet import xlsx_bytes
from canteen_watch.workflows.states import ViolationState
from canteen_watch.workflows.tiers import DEFAULT_TIERS, WorkflowSettings
from canteen_watch.workflows.types import Violation
from canteen_watch.workflows.validation import clean_moment
from canteen_watch.workflows.violations import to_violation, violation_stats

VIOLATION_HEADERS = [
    "Case", "Site", "Site name", "District", "Camera", "Label", "Tier", "State",
    "First seen (UTC)", "Last seen (UTC)", "Detections", "Due (UTC)",
    "Review outcome", "Reviewer role", "Reviewed (UTC)", "Review reason",
    "Rectification rounds", "Rectification status", "Last submitted (UTC)", "Re-check outcome",
    "Closed (UTC)", "Escalation", "Overdue days", "Evidence hold",
]


def rectification_status(violation: Violation) -> str:
    """``not required`` (dismissed), ``awaiting review``, ``due``, ``submitted``, ``rejected, due again`` or ``accepted``."""
    state = violation.state
    if state == ViolationState.DISMISSED.value:
        return "not required"
    if state == ViolationState.OPEN.value:
        return "awaiting review"
    if state == ViolationState.SUBMITTED.value:
        return "submitted"
    if state == ViolationState.CLOSED.value:
        return "accepted"
    return "rejected, due again" if violation.rectification_round else "due"


def _scope_ref(session: Session, site_id: str | None, district: str | None) -> SiteRef | None:
    if site_id is not None:
        ref = site_ref(session, site_id)
        if district is not None and ref.district != district:
            raise InputError(f"site {site_id!r} is not in district {district!r}", field="district")
        return ref
    if district is not None:
        return SiteRef(district=district)
    return None


def violations_report_rows(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    start: datetime,
    end: datetime,
    site_id: str | None = None,
    district: str | None = None,
    now: datetime | None = None,
) -> list[list[object]]:
    """The rows of the Violations sheet (in :data:`VIOLATION_HEADERS` order)."""
    now = as_utc(now or utcnow())
    start_at, end_at = clean_moment(start, "start"), clean_moment(end, "end")
    if start_at is None or end_at is None or start_at >= end_at:
        raise InputError("start must be before end", field="end")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.REPORT_EXPORT, _scope_ref(session, site_id, district))
        query = (
            select(ViolationRow, SiteRow.district, SiteRow.name)
            .join(SiteRow, SiteRow.id == ViolationRow.site_id)
            .where(scope_filter(acting, Action.REPORT_EXPORT, ViolationRow.site_id, SiteRow.district))
            .where(ViolationRow.first_seen_at >= start_at, ViolationRow.first_seen_at < end_at)
            .order_by(SiteRow.district, ViolationRow.site_id, ViolationRow.first_seen_at, ViolationRow.id)
        )
        if site_id is not None:
            query = query.where(ViolationRow.site_id == site_id)
        if district is not None:
            query = query.where(SiteRow.district == district)
        found = session.execute(query).all()
        ids = [row.id for row, _d, _n in found]
        latest: dict[int, RectificationRow] = {}
        for start_index in range(0, len(ids), 500):
            chunk = ids[start_index:start_index + 500]
            for rect in session.scalars(select(RectificationRow).where(RectificationRow.violation_id.in_(chunk)).order_by(RectificationRow.round)).all():
                latest[rect.violation_id] = rect
        reviewer_role: dict[int, str] = {}
        for start_index in range(0, len(ids), 500):
            chunk = ids[start_index:start_index + 500]
            for review in session.scalars(select(ReviewRow).where(ReviewRow.violation_id.in_(chunk)).order_by(ReviewRow.id)).all():
                reviewer_role[review.violation_id] = review.role
        rows: list[list[object]] = []
        for row, site_district, site_name in found:
            case = to_violation(row, site_district)
            rect = latest.get(row.id)
            rows.append([
                case.id, case.site_id, site_name, case.district, case.camera_id, case.label, case.tier, case.state,
                case.first_seen_at, case.last_seen_at, case.detection_count, case.due_at,
                case.review_outcome or "", reviewer_role.get(row.id, ""), as_utc(row.reviewed_at) if row.reviewed_at else None, row.review_reason or "",
                case.rectification_round, rectification_status(case), as_utc(rect.submitted_at) if rect else None, (rect.outcome or "pending") if rect else "",
                case.closed_at, case.escalation, case.overdue_days(now), "yes" if case.evidence_hold else "no",
            ])
        return rows


def export_violations_xlsx(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    start: datetime,
    end: datetime,
    site_id: str | None = None,
    district: str | None = None,
    now: datetime | None = None,
    config: WorkflowSettings | None = None,
) -> bytes:
    """The violations report of a site or a district (or all the user may see) as .xlsx bytes.

    Args:
        sessions: Session factory.
        actor: Managers (their sites), inspectors and registrars (their districts), auditors and
            admins (everything).
        start: Cases first seen at or after this time.
        end: ... and before this time.
        site_id: Only this site.
        district: Only this district.
        now: Clock for overdue days.
        config: ``settings.workflows`` (tier titles for the summary).

    Raises:
        PermissionDenied: The site or district is outside the user's jurisdiction.
        InputError: ``start`` is not before ``end``, or the site is not in the district.
    """
    now = as_utc(now or utcnow())
    config = config or WorkflowSettings()
    rows = violations_report_rows(sessions, actor, start=start, end=end, site_id=site_id, district=district, now=now)
    stats = violation_stats(sessions, actor, group_by="site", district=district, site_id=site_id, seen_from=start, seen_to=end, now=now)
    tiers = sorted({t.tier for t in config.tiers} | {t for s in stats for t in s.open_by_tier})
    titles = {t.tier: t.title for t in (*DEFAULT_TIERS, *config.tiers)}
    summary_headers = ["Site", "Cases", *[f"Open tier {t} ({titles.get(t, '')})" for t in tiers], "Overdue", "Red", "Confirmed", "Closed", "Dismissed", "Rectification rate"]
    summary = [
        [s.key, s.total, *[s.open_by_tier.get(t, 0) for t in tiers], s.overdue, s.red, s.confirmed, s.closed, s.dismissed,
         round(s.rectification_rate, 4) if s.rectification_rate is not None else ""]
        for s in stats
    ]
    period = [["Period start (UTC)", as_utc(start)], ["Period end (UTC)", as_utc(end)], ["Generated (UTC)", now], ["Site", site_id or ""], ["District", district or ""]]
    return xlsx_bytes([("Violations", VIOLATION_HEADERS, rows), ("Summary", summary_headers, summary), ("About", ["Field", "Value"], period)])


def export_registry_xlsx(sessions: sessionmaker[Session], actor: User, *, district: str | None = None, status: str | None = None, headers: str = "en") -> bytes:
    """The institution registry as .xlsx (see :func:`canteen_watch.registry.io.export_institutions`)."""
    return export_institutions(sessions, actor, file_format="xlsx", district=district, status=status, headers=headers)
