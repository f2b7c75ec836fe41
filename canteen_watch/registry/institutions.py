"""The registry of off-campus care institutions (校外托管机构) and their inspections.

An institution **is** a site of kind ``care_institution``: registering one creates (or links to)
the ``sites`` row with the same id, so its cameras (configured with ``site = "<id>"``) are
captured, classified, folded into violations, reviewed and escalated exactly like a school
canteen's. The default site id is ``ci-<credit code in lower case>``; pass ``site_id`` to link an
institution to a site that is already configured.

Status workflow (each change with a reason and the acting user)::

    submitted ──register──► registered (备案) ──suspend──► suspended ──revoke──► revoked
        │                      ▲    │ revoke                 │ reinstate
        │                      │    └──────► revoked         ▼
        └──withdraw──► withdrawn ◄──withdraw── (registered or suspended)

Every change is recorded in ``institution_events`` and appended to the ledger
(``registration.changed``). Ledger payloads carry no personal data: the legal representative,
phone and address are only committed to by a salted hash (when ``workflows.pii_salt`` is set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, SiteRef, User, authorize, refresh_actor, scope_filter, site_ref
from canteen_watch.config import SiteKind
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import CameraRow, SiteRow
from canteen_watch.ledger.canonical import salted_hash
from canteen_watch.events import EventSink
from canteen_watch.registry.codes import normalise_credit_code, normalise_licence, normalise_phone
from canteen_watch.workflows.errors import ConflictError, InputError, NotFoundError
from canteen_watch.workflows.models import ROW_LOCK, InspectionRow, InstitutionEventRow, InstitutionRow, ViolationRow
from canteen_watch.workflows.states import ACTIVE_STATES, INSTITUTION_MACHINE, InstitutionAction, InstitutionStatus
from canteen_watch.workflows.types import Page
from canteen_watch.workflows.validation import clean_bool, clean_int, clean_moment, clean_text, like_pattern

REGISTRY_ACTION = "registration.changed"
SITE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_CAPACITY = 10_000
INSPECTION_OUTCOMES = ("pass", "rectify", "fail")
#: Fields that hold personal data: never in ledger payloads, only their salted hash.
PERSONAL_FIELDS = ("legal_rep", "contact_phone", "address")


# ------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class InstitutionInput:
    """The registrable fields of an institution, validated and normalised.

    Attributes:
        name: Registered name (at most 200 characters).
        credit_code: Unified social credit code (18 characters, check character verified).
        licence_no: Food business licence number (JY + 14 digits).
        address: Street address (at most 300 characters).
        district: Supervising district.
        legal_rep: Legal representative (at most 50 characters).
        contact_phone: Mobile or landline with area code, normalised.
        capacity: Children it may look after (1-10000).
        serves_meals: Whether meals are served (then its kitchen should be watched).
        opening_hours: Free text, e.g. ``周一至周五 16:00-19:30`` (at most 100 characters).
        site_id: Site id to use or link to (default ``ci-<credit code>``).
    """

    name: str
    credit_code: str
    licence_no: str
    address: str
    district: str
    legal_rep: str
    contact_phone: str
    capacity: int
    serves_meals: bool
    opening_hours: str
    site_id: str | None = None


INPUT_FIELDS = tuple(f.name for f in fields(InstitutionInput))
REQUIRED_FIELDS = tuple(name for name in INPUT_FIELDS if name != "site_id")


@dataclass(frozen=True)
class Institution:
    """A registered (or submitted, suspended…) care institution."""

    site_id: str
    name: str
    credit_code: str
    licence_no: str
    address: str
    district: str
    legal_rep: str
    contact_phone: str
    capacity: int
    serves_meals: bool
    opening_hours: str
    status: str
    status_reason: str | None
    status_changed_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class InstitutionEvent:
    """One recorded change of an institution."""

    at: datetime
    actor_id: int | None
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    changed_fields: list[str]


@dataclass(frozen=True)
class Inspection:
    """An on-site inspection and what it found."""

    id: int
    site_id: str
    inspector_id: int | None
    inspected_at: datetime
    outcome: str
    findings: list[str]
    note: str | None


@dataclass(frozen=True)
class CameraInfo:
    """A camera watching the institution's kitchen."""

    id: str
    room: str
    enabled: bool


@dataclass(frozen=True)
class InstitutionDetail:
    """An institution with its history, inspections, cameras and open cases."""

    institution: Institution
    events: list[InstitutionEvent]
    inspections: list[Inspection]
    cameras: list[CameraInfo]
    open_violations: int
    allowed_actions: list[str]


# ------------------------------------------------------------------------------------- validation


def _check_site_id(value: object) -> str | None:
    import re

    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(SITE_ID_PATTERN, value.strip()):
        raise InputError("must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'", field="site_id")
    return value.strip()


_CHECKS = {
    "name": lambda v: clean_text(v, "name", max_length=200),
    "credit_code": normalise_credit_code,
    "licence_no": normalise_licence,
    "address": lambda v: clean_text(v, "address", max_length=300),
    "district": lambda v: clean_text(v, "district", max_length=100),
    "legal_rep": lambda v: clean_text(v, "legal_rep", max_length=50),
    "contact_phone": normalise_phone,
    "capacity": lambda v: clean_int(v, "capacity", minimum=1, maximum=MAX_CAPACITY),
    "serves_meals": lambda v: clean_bool(v, "serves_meals"),
    "opening_hours": lambda v: clean_text(v, "opening_hours", max_length=100),
    "site_id": _check_site_id,
}


def check_institution(data: Mapping[str, Any] | InstitutionInput, *, partial: bool = False) -> tuple[dict[str, Any], list[InputError]]:
    """Validate every field and collect **all** errors (for per-row import reports).

    Args:
        data: Field values (an :class:`InstitutionInput` or a mapping with its field names).
        partial: Only check the fields present (for updates); otherwise every required field
            must be there.

    Returns:
        ``(clean values, errors)``; the values are only complete when ``errors`` is empty.
    """
    values = asdict(data) if isinstance(data, InstitutionInput) else dict(data)
    errors: list[InputError] = []
    unknown = sorted(set(values) - set(INPUT_FIELDS))
    for name in unknown:
        errors.append(InputError("is not an institution field", field=name))
    clean: dict[str, Any] = {}
    for name in INPUT_FIELDS:
        if name not in values:
            if not partial and name in REQUIRED_FIELDS:
                errors.append(InputError("is required", field=name))
            continue
        value = values[name]
        if value is None and name == "site_id":
            continue
        if name in ("capacity",) and (value is None or value == ""):
            errors.append(InputError("is required", field=name))
            continue
        if name == "serves_meals" and (value is None or value == ""):
            errors.append(InputError("is required", field=name))
            continue
        try:
            clean[name] = _CHECKS[name](value)
        except InputError as exc:
            errors.append(exc)
    return clean, errors


def validate_institution(data: Mapping[str, Any] | InstitutionInput) -> InstitutionInput:
    """The validated input, or the first error (all errors: :func:`check_institution`)."""
    clean, errors = check_institution(data)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise InputError("; ".join(str(e) for e in errors))
    return InstitutionInput(**clean)


# ------------------------------------------------------------------------------------- helpers


def to_institution(row: InstitutionRow) -> Institution:
    """The dataclass of an institution row."""
    return Institution(
        site_id=row.site_id, name=row.name, credit_code=row.credit_code, licence_no=row.licence_no, address=row.address,
        district=row.district, legal_rep=row.legal_rep, contact_phone=row.contact_phone, capacity=row.capacity,
        serves_meals=bool(row.serves_meals), opening_hours=row.opening_hours, status=row.status, status_reason=row.status_reason,
        status_changed_at=as_utc(row.status_changed_at) if row.status_changed_at else None, created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at),
    )


def _personal_commitment(values: Mapping[str, Any], salt: str | None) -> dict[str, str]:
    if not salt:
        return {}
    return {f"{name}_hash": salted_hash(str(values[name]), salt) for name in PERSONAL_FIELDS if name in values}


def _public_payload(row: InstitutionRow) -> dict[str, Any]:
    return {
        "site": row.site_id, "district": row.district, "credit_code": row.credit_code, "licence_no": row.licence_no,
        "name": row.name, "capacity": row.capacity, "serves_meals": bool(row.serves_meals), "status": row.status,
    }


def _ledger(session: Session, sink: EventSink, actor: User, row: InstitutionRow, change: str, now: datetime, salt: str | None, **extra: Any) -> None:
    personal = {name: getattr(row, name) for name in PERSONAL_FIELDS}
    payload = {"change": change, **_public_payload(row), **_personal_commitment(personal, salt), "role": actor.role.value, "at": now.isoformat(), **extra}
    sink.append(session, actor=actor.tag, action=REGISTRY_ACTION, subject=f"institution:{row.site_id}", payload=payload)


def _load(session: Session, site_id: str, *, lock: bool = False) -> InstitutionRow:
    if not isinstance(site_id, str):
        raise InputError("must be a site id", field="site_id")
    row = session.get(InstitutionRow, site_id, with_for_update=ROW_LOCK) if lock else session.get(InstitutionRow, site_id)
    if row is None:
        raise NotFoundError(f"no care institution {site_id!r}")
    return row


def _ref(row: InstitutionRow) -> SiteRef:
    return SiteRef(district=row.district, site_id=row.site_id)


def insert_institution(session: Session, sink: EventSink, acting: User, data: InstitutionInput, *, status: str, reason: str | None, now: datetime, salt: str | None) -> InstitutionRow:
    """Create the institution (and its site) in the caller's transaction; the actor is already authorized.

    Raises:
        ConflictError: The credit code is registered already, or the site id belongs to another
            kind of site, another district or another institution.
    """
    existing = session.scalar(select(InstitutionRow.site_id).where(InstitutionRow.credit_code == data.credit_code))
    if existing is not None:
        raise ConflictError(f"credit code {data.credit_code} is already registered (institution {existing})")
    site_id = data.site_id or f"ci-{data.credit_code.lower()}"
    site = session.get(SiteRow, site_id)
    if site is None:
        session.add(SiteRow(id=site_id, name=data.name, kind=SiteKind.CARE_INSTITUTION.value, district=data.district))
        session.flush()
    else:
        if site.kind != SiteKind.CARE_INSTITUTION.value:
            raise ConflictError(f"site {site_id!r} is a {site.kind}, not a care institution")
        if site.district != data.district:
            raise ConflictError(f"site {site_id!r} is in district {site.district!r}, not {data.district!r}")
        if session.get(InstitutionRow, site_id) is not None:
            raise ConflictError(f"site {site_id!r} already has an institution")
    values = asdict(data)
    values.pop("site_id")
    row = InstitutionRow(
        site_id=site_id, **values, status=status, status_reason=reason, status_changed_at=now, status_changed_by=acting.id,
        created_at=now, created_by=acting.id, updated_at=now,
    )
    session.add(row)
    session.flush()
    session.add(InstitutionEventRow(site_id=site_id, at=now, actor_id=acting.id, action="created", from_status=None, to_status=status, reason=reason, changed_fields=[]))
    _ledger(session, sink, acting, row, "created", now, salt)
    return row


# ------------------------------------------------------------------------------------- writes


def register_institution(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    data: InstitutionInput | Mapping[str, Any],
    *,
    reason: str | None = None,
    now: datetime | None = None,
    salt: str | None = None,
) -> Institution:
    """Record an application: the institution is created in status ``submitted``.

    Args:
        sessions: Session factory.
        sink: Ledger sink.
        actor: A registrar of the institution's district (or an admin).
        data: The fields (validated here; see :class:`InstitutionInput`).
        reason: Optional note.
        now: Clock.
        salt: ``settings.workflows.salt``: commit to personal fields in the ledger.

    Raises:
        InputError: A field is invalid (all problems are listed).
        ConflictError: Duplicate credit code or site clash.
        PermissionDenied: The district is outside the registrar's jurisdiction.
    """
    now = as_utc(now or utcnow())
    checked = validate_institution(data)
    note = clean_text(reason, "reason", max_length=2000, required=False, multiline=True)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.INSTITUTION_WRITE, SiteRef(district=checked.district, site_id=checked.site_id))
        row = insert_institution(session, sink, acting, checked, status=InstitutionStatus.SUBMITTED.value, reason=note, now=now, salt=salt)
        return to_institution(row)


def update_institution(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    site_id: str,
    changes: Mapping[str, Any],
    *,
    reason: str,
    now: datetime | None = None,
    salt: str | None = None,
) -> Institution:
    """Change registered fields (name, address, phone, capacity…) with a reason.

    Moving an institution to another district needs the registrar to cover both. Changing the
    credit code is refused when another institution has it. The site's name and district follow.

    Raises:
        InputError, ConflictError, NotFoundError, PermissionDenied: As the names say.
    """
    now = as_utc(now or utcnow())
    if "site_id" in changes:
        raise InputError("cannot be changed; register a new institution instead", field="site_id")
    clean, errors = check_institution(changes, partial=True)
    if errors:
        raise errors[0] if len(errors) == 1 else InputError("; ".join(str(e) for e in errors))
    if not clean:
        raise InputError("nothing to change")
    note = clean_text(reason, "reason", max_length=2000, multiline=True)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        row = _load(session, site_id, lock=True)
        authorize(acting, Action.INSTITUTION_WRITE, _ref(row))
        if "district" in clean:
            authorize(acting, Action.INSTITUTION_WRITE, SiteRef(district=clean["district"], site_id=row.site_id))
        if "credit_code" in clean and clean["credit_code"] != row.credit_code:
            other = session.scalar(select(InstitutionRow.site_id).where(InstitutionRow.credit_code == clean["credit_code"]))
            if other is not None:
                raise ConflictError(f"credit code {clean['credit_code']} is already registered (institution {other})")
        changed = sorted(name for name, value in clean.items() if getattr(row, name) != value)
        if not changed:
            return to_institution(row)
        for name in changed:
            setattr(row, name, clean[name])
        row.updated_at = now
        site = session.get(SiteRow, row.site_id)
        if site is not None:
            site.name, site.district = row.name, row.district
        session.add(InstitutionEventRow(site_id=row.site_id, at=now, actor_id=acting.id, action="updated", from_status=row.status, to_status=row.status, reason=note, changed_fields=changed))
        session.flush()
        _ledger(session, sink, acting, row, "updated", now, salt, changed_fields=changed)
        return to_institution(row)


def change_institution_status(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    site_id: str,
    action: InstitutionAction | str,
    *,
    reason: str,
    now: datetime | None = None,
    salt: str | None = None,
) -> Institution:
    """Move an institution through its status workflow (register, suspend, reinstate, revoke, withdraw).

    Raises:
        TransitionError: The action is not allowed in the current status (the message names both).
        InputError: Missing or hostile reason, unknown action.
        NotFoundError, PermissionDenied: As the names say.
    """
    now = as_utc(now or utcnow())
    try:
        action = InstitutionAction(action)
    except ValueError:
        raise InputError(f"unknown action {str(action)[:40]!r}; use one of {', '.join(a.value for a in InstitutionAction)}", field="action") from None
    note = clean_text(reason, "reason", max_length=2000, multiline=True)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        row = _load(session, site_id, lock=True)
        authorize(acting, Action.INSTITUTION_WRITE, _ref(row))
        before = row.status
        row.status = INSTITUTION_MACHINE.next(before, action)
        row.status_reason, row.status_changed_at, row.status_changed_by, row.updated_at = note, now, acting.id, now
        session.add(InstitutionEventRow(site_id=row.site_id, at=now, actor_id=acting.id, action=action.value, from_status=before, to_status=row.status, reason=note, changed_fields=[]))
        session.flush()
        _ledger(session, sink, acting, row, action.value, now, salt, **{"from": before, "to": row.status})
        return to_institution(row)


def record_inspection(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    site_id: str,
    *,
    outcome: str,
    findings: list[str],
    note: str | None = None,
    inspected_at: datetime | None = None,
    now: datetime | None = None,
) -> Inspection:
    """Record an on-site inspection of a site (care institution or school canteen).

    Args:
        sessions: Session factory.
        sink: Ledger sink (``inspection.recorded`` on the site).
        actor: An inspector of the district (or an admin).
        site_id: The site.
        outcome: ``pass``, ``rectify`` or ``fail``.
        findings: What was found, one item each (at most 50 items of 1000 characters).
        note: Free text (at most 4000 characters).
        inspected_at: When (default ``now``).
        now: Clock.
    """
    now = as_utc(now or utcnow())
    if outcome not in INSPECTION_OUTCOMES:
        raise InputError(f"must be one of {', '.join(INSPECTION_OUTCOMES)}", field="outcome")
    if not isinstance(findings, (list, tuple)) or len(findings) > 50:
        raise InputError("must be a list of at most 50 items", field="findings")
    items = [clean_text(f, f"findings[{i}]", max_length=1000, multiline=True) for i, f in enumerate(findings)]
    text = clean_text(note, "note", max_length=4000, required=False, multiline=True)
    moment = clean_moment(inspected_at, "inspected_at") or now
    if moment > now:
        raise InputError("is in the future", field="inspected_at")
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        ref = site_ref(session, site_id)
        authorize(acting, Action.INSPECTION_RECORD, ref)
        row = InspectionRow(site_id=site_id, inspector_id=acting.id, inspected_at=moment, outcome=outcome, findings=items, note=text, created_at=now)
        session.add(row)
        session.flush()
        sink.append(
            session, actor=acting.tag, action="inspection.recorded", subject=f"institution:{site_id}" if session.get(InstitutionRow, site_id) else f"site:{site_id}",
            payload={"inspection": row.id, "site": site_id, "district": ref.district, "outcome": outcome, "findings": len(items), "role": acting.role.value, "inspected_at": moment.isoformat()},
        )
        return _to_inspection(row)


def _to_inspection(row: InspectionRow) -> Inspection:
    return Inspection(id=row.id, site_id=row.site_id, inspector_id=row.inspector_id, inspected_at=as_utc(row.inspected_at), outcome=row.outcome, findings=list(row.findings or []), note=row.note)


# ------------------------------------------------------------------------------------- reads


def get_institution(sessions: sessionmaker[Session], actor: User, site_id: str) -> InstitutionDetail:
    """An institution with its change history, inspections, cameras and number of open cases."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        row = _load(session, site_id)
        authorize(acting, Action.INSTITUTION_READ, _ref(row))
        events = [
            InstitutionEvent(at=as_utc(e.at), actor_id=e.actor_id, action=e.action, from_status=e.from_status, to_status=e.to_status, reason=e.reason, changed_fields=list(e.changed_fields or []))
            for e in session.scalars(select(InstitutionEventRow).where(InstitutionEventRow.site_id == site_id).order_by(InstitutionEventRow.id)).all()
        ]
        inspections = [_to_inspection(i) for i in session.scalars(select(InspectionRow).where(InspectionRow.site_id == site_id).order_by(InspectionRow.inspected_at.desc(), InspectionRow.id.desc())).all()]
        cameras = [CameraInfo(id=c.id, room=c.room, enabled=bool(c.enabled)) for c in session.scalars(select(CameraRow).where(CameraRow.site_id == site_id).order_by(CameraRow.id)).all()]
        open_cases = session.scalar(select(func.count()).select_from(ViolationRow).where(ViolationRow.site_id == site_id, ViolationRow.state.in_(ACTIVE_STATES))) or 0
        from canteen_watch.auth import can

        allowed = list(INSTITUTION_MACHINE.allowed(row.status)) if can(acting, Action.INSTITUTION_WRITE, _ref(row)) else []
        return InstitutionDetail(institution=to_institution(row), events=events, inspections=inspections, cameras=cameras, open_violations=int(open_cases), allowed_actions=allowed)


def search_institutions(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    query: str | None = None,
    district: str | None = None,
    status: str | None = None,
    serves_meals: bool | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page[Institution]:
    """Institutions the user may see, by name, credit code or licence number (substring, literal).

    Args:
        sessions: Session factory.
        actor: The user (jurisdiction applies).
        query: Text to look for in the name, credit code or licence number; ``%`` and ``_`` are
            matched literally.
        district: Only this district.
        status: Only this status.
        serves_meals: Only institutions that do (True) or do not (False) serve meals.
        page: 1-based page.
        per_page: Page size (at most 200).
    """
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise InputError("must be a whole number of at least 1", field="page")
    if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 200:
        raise InputError("must be between 1 and 200", field="per_page")
    text = clean_text(query, "query", max_length=200, required=False)
    if status is not None and status not in {s.value for s in InstitutionStatus}:
        raise InputError(f"unknown status {str(status)[:40]!r}", field="status")
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.INSTITUTION_READ)
        stmt = select(InstitutionRow).where(scope_filter(acting, Action.INSTITUTION_READ, InstitutionRow.site_id, InstitutionRow.district))
        if text:
            pattern = like_pattern(text)
            stmt = stmt.where(
                or_(InstitutionRow.name.like(pattern, escape="\\"), InstitutionRow.credit_code.like(like_pattern(text.upper()), escape="\\"), InstitutionRow.licence_no.like(like_pattern(text.upper()), escape="\\"))
            )
        if district is not None:
            stmt = stmt.where(InstitutionRow.district == district)
        if status is not None:
            stmt = stmt.where(InstitutionRow.status == status)
        if serves_meals is not None:
            stmt = stmt.where(InstitutionRow.serves_meals.is_(serves_meals))
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = session.scalars(stmt.order_by(InstitutionRow.district, InstitutionRow.name, InstitutionRow.site_id).offset((page - 1) * per_page).limit(per_page)).all()
        return Page(items=[to_institution(r) for r in rows], total=int(total), page=page, per_page=per_page)


def list_inspections(sessions: sessionmaker[Session], actor: User, site_id: str) -> list[Inspection]:
    """Inspections of a site, newest first (whoever may read the site's institution or cases)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        ref = site_ref(session, site_id)
        authorize(acting, Action.INSTITUTION_READ, ref)
        return [_to_inspection(i) for i in session.scalars(select(InspectionRow).where(InspectionRow.site_id == site_id).order_by(InspectionRow.inspected_at.desc(), InspectionRow.id.desc())).all()]
