"""Bulk import and export of the institution registry (CSV and Excel).

Import reads the first sheet (or the CSV), maps the header to fields — English field names or the
usual Chinese column titles (``机构名称``, ``统一社会信用代码``, ``食品经营许可证编号``…) — and checks
every row, collecting **all** problems with their row number and column. A file with any bad row
imports nothing (``committed=False``) until it is fixed, unless ``good_rows_only=True`` is passed,
which imports the good rows and reports the rest. Duplicate credit codes (in the file or already
registered) are refused. Each imported institution is ledgered like a single registration.

Export writes the institutions the user may see, with every field and the status, to CSV or
.xlsx; an export re-imports unchanged (status columns are ignored on import).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.auth import Action, SiteRef, User, authorize, can, refresh_actor, scope_filter
from canteen_watch.config import SiteKind
from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import SiteRow
from canteen_watch.events import EventSink
from canteen_watch.registry.institutions import INPUT_FIELDS, REQUIRED_FIELDS, InstitutionInput, check_institution, insert_institution, to_institution
from canteen_watch.workflows.errors import InputError
from canteen_watch.workflows.models import InstitutionRow
from canteen_watch.workflows.spreadsheet import csv_bytes, read_table, xlsx_bytes
from canteen_watch.workflows.states import InstitutionStatus
from canteen_watch.workflows.validation import clean_text

#: Column titles accepted on import, by field (the field name itself is always accepted).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "site_id": ("站点编号", "site"),
    "name": ("机构名称", "名称", "institution"),
    "credit_code": ("统一社会信用代码", "信用代码", "uscc"),
    "licence_no": ("食品经营许可证编号", "许可证编号", "license_no", "licence", "license"),
    "address": ("地址", "经营地址"),
    "district": ("所属区", "辖区", "区"),
    "legal_rep": ("法定代表人", "负责人", "legal_representative"),
    "contact_phone": ("联系电话", "电话", "phone"),
    "capacity": ("容纳人数", "托管人数"),
    "serves_meals": ("是否供餐", "供餐"),
    "opening_hours": ("营业时间", "开放时间"),
}
CHINESE_HEADERS = {name: aliases[0] for name, aliases in HEADER_ALIASES.items()}
#: Export-only columns, accepted and ignored on import so that an export re-imports.
EXPORT_ONLY = ("status", "status_reason", "status_changed_at", "created_at", "updated_at")
CHINESE_EXPORT_ONLY = {"status": "状态", "status_reason": "状态原因", "status_changed_at": "状态变更时间 (UTC)", "created_at": "创建时间 (UTC)", "updated_at": "更新时间 (UTC)"}
EXPORT_FIELDS = ("site_id", *REQUIRED_FIELDS, *EXPORT_ONLY)


@dataclass(frozen=True)
class RowError:
    """One problem in an imported file.

    Attributes:
        row: Row number in the file (the header is row 1).
        column: Field name, or None for the whole row.
        message: What is wrong.
    """

    row: int
    column: str | None
    message: str

    def __str__(self) -> str:
        return f"row {self.row}" + (f", {self.column}" if self.column else "") + f": {self.message}"


@dataclass
class ImportReport:
    """Outcome of an import.

    Attributes:
        total_rows: Data rows in the file (empty rows not counted).
        imported: Site ids of the institutions created.
        errors: Every problem found, by row and column.
        committed: True when institutions were written.
        good_rows_only: Whether good rows were imported despite bad ones.
    """

    total_rows: int = 0
    imported: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    committed: bool = False
    good_rows_only: bool = False

    @property
    def ok(self) -> bool:
        """True when the file had no bad rows."""
        return not self.errors

    @property
    def bad_rows(self) -> list[int]:
        """Row numbers with at least one problem."""
        return sorted({e.row for e in self.errors})


def _header_map(headers: list[str]) -> tuple[dict[int, str], list[RowError]]:
    lookup: dict[str, str] = {}
    for name in INPUT_FIELDS:
        lookup[name.lower()] = name
        for alias in HEADER_ALIASES.get(name, ()):
            lookup[alias.lower()] = name
    for name in EXPORT_ONLY:
        lookup[name] = ""
    for name, title in CHINESE_EXPORT_ONLY.items():
        lookup[title.lower()] = ""
    mapping: dict[int, str] = {}
    problems: list[RowError] = []
    seen: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = header.strip().lower()
        if not key:
            continue
        name = lookup.get(key)
        if name is None:
            problems.append(RowError(1, header[:60], "unknown column"))
            continue
        if not name:
            continue
        if name in seen:
            problems.append(RowError(1, header[:60], f"duplicate column for {name}"))
            continue
        seen[name] = index
        mapping[index] = name
    for name in REQUIRED_FIELDS:
        if name not in seen:
            problems.append(RowError(1, name, "required column is missing"))
    return mapping, problems


def _row_values(mapping: dict[int, str], values: list[Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for index, name in mapping.items():
        value = values[index] if index < len(values) else None
        if name not in ("capacity", "serves_meals") and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if name == "site_id" and (value is None or value == ""):
            continue
        record[name] = "" if value is None else value
    return record


def import_institutions(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    data: bytes,
    *,
    file_format: str | None = None,
    good_rows_only: bool = False,
    initial_status: str = InstitutionStatus.SUBMITTED.value,
    reason: str | None = None,
    now: datetime | None = None,
    salt: str | None = None,
) -> ImportReport:
    """Import institutions from a CSV or .xlsx file, all or nothing unless ``good_rows_only``.

    Args:
        sessions: Session factory.
        sink: Ledger sink (one ``registration.changed`` per institution).
        actor: A registrar (rows outside their districts are errors) or an admin.
        data: File bytes.
        file_format: ``csv`` or ``xlsx``; detected from the bytes when omitted.
        good_rows_only: Import the good rows even when others are bad.
        initial_status: ``submitted`` (default) or ``registered`` (an existing 备案 list).
        reason: Note stored with each created institution (e.g. the source of the list).
        now: Clock.
        salt: ``settings.workflows.salt`` for personal-field commitments in the ledger.

    Returns:
        The report: what was imported and every problem, by row and column.

    Raises:
        InputError: The file itself is unusable (format, size, encoding).
        PermissionDenied: The actor may not write institutions anywhere.
    """
    now = as_utc(now or utcnow())
    if initial_status not in (InstitutionStatus.SUBMITTED.value, InstitutionStatus.REGISTERED.value):
        raise InputError("must be submitted or registered", field="initial_status")
    note = clean_text(reason, "reason", max_length=2000, required=False, multiline=True)
    headers, rows = read_table(data, file_format)
    report = ImportReport(total_rows=len(rows), good_rows_only=good_rows_only)
    mapping, problems = _header_map(headers)
    if problems:
        report.errors.extend(problems)
        return report
    candidates: list[tuple[int, InstitutionInput]] = []
    first_row_of: dict[tuple[str, str], int] = {}
    for number, values in rows:
        clean, errors = check_institution(_row_values(mapping, values))
        for error in errors:
            report.errors.append(RowError(number, error.field, error.reason))
        if errors:
            continue
        checked = InstitutionInput(**clean)
        duplicate = False
        for kind, value in (("credit code", checked.credit_code), ("site id", checked.site_id or f"ci-{checked.credit_code.lower()}")):
            earlier = first_row_of.get((kind, value))
            if earlier is not None:
                report.errors.append(RowError(number, "credit_code" if kind == "credit code" else "site_id", f"duplicate {kind} {value}; also in row {earlier}"))
                duplicate = True
            else:
                first_row_of[(kind, value)] = number
        if not duplicate:
            candidates.append((number, checked))
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.INSTITUTION_WRITE)
        good: list[tuple[int, InstitutionInput]] = []
        for number, checked in candidates:
            problem = _database_problem(session, acting, checked)
            if problem is not None:
                report.errors.append(RowError(number, problem[0], problem[1]))
            else:
                good.append((number, checked))
        report.errors.sort(key=lambda e: (e.row, e.column or ""))
        if report.errors and not good_rows_only:
            return report
        for _number, checked in good:
            row = insert_institution(session, sink, acting, checked, status=initial_status, reason=note or "bulk import", now=now, salt=salt)
            report.imported.append(row.site_id)
        report.committed = bool(report.imported)
        return report


def _database_problem(session: Session, acting: User, checked: InstitutionInput) -> tuple[str, str] | None:
    site_id = checked.site_id or f"ci-{checked.credit_code.lower()}"
    if not can(acting, Action.INSTITUTION_WRITE, SiteRef(district=checked.district, site_id=checked.site_id)):
        return "district", f"district {checked.district!r} is outside your jurisdiction"
    existing = session.scalar(select(InstitutionRow.site_id).where(InstitutionRow.credit_code == checked.credit_code))
    if existing is not None:
        return "credit_code", f"credit code {checked.credit_code} is already registered (institution {existing})"
    site = session.get(SiteRow, site_id)
    if site is not None:
        if site.kind != SiteKind.CARE_INSTITUTION.value:
            return "site_id", f"site {site_id!r} is a {site.kind}, not a care institution"
        if site.district != checked.district:
            return "site_id", f"site {site_id!r} is in district {site.district!r}, not {checked.district!r}"
        if session.get(InstitutionRow, site_id) is not None:
            return "site_id", f"site {site_id!r} already has an institution"
    return None


def institution_rows(session: Session, acting: User, *, district: str | None = None, status: str | None = None) -> list[list[Any]]:
    """Export rows (in :data:`EXPORT_FIELDS` order) of the institutions ``acting`` may read."""
    stmt = select(InstitutionRow).where(scope_filter(acting, Action.INSTITUTION_READ, InstitutionRow.site_id, InstitutionRow.district))
    if district is not None:
        stmt = stmt.where(InstitutionRow.district == district)
    if status is not None:
        stmt = stmt.where(InstitutionRow.status == status)
    rows = []
    for row in session.scalars(stmt.order_by(InstitutionRow.district, InstitutionRow.name, InstitutionRow.site_id)).all():
        item = to_institution(row)
        rows.append([getattr(item, name) for name in EXPORT_FIELDS])
    return rows


def export_headers(language: str) -> list[str]:
    """Column titles: field names (``en``) or Chinese titles (``zh``); both re-import."""
    if language == "en":
        return list(EXPORT_FIELDS)
    if language == "zh":
        return [CHINESE_HEADERS.get(name) or CHINESE_EXPORT_ONLY[name] for name in EXPORT_FIELDS]
    raise InputError("must be en or zh", field="headers")


def export_institutions(
    sessions: sessionmaker[Session],
    actor: User,
    *,
    file_format: str = "xlsx",
    district: str | None = None,
    status: str | None = None,
    headers: str = "en",
) -> bytes:
    """The registry (institutions the user may see) as CSV or .xlsx bytes.

    Args:
        sessions: Session factory.
        actor: Registrars, inspectors and managers get their jurisdiction; auditors and admins all.
        file_format: ``xlsx`` or ``csv``.
        district: Only this district.
        status: Only this status.
        headers: ``en`` (field names) or ``zh`` (Chinese titles).
    """
    if file_format not in ("xlsx", "csv"):
        raise InputError("must be xlsx or csv", field="file_format")
    titles = export_headers(headers)
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.INSTITUTION_READ)
        authorize(acting, Action.REPORT_EXPORT)
        rows = institution_rows(session, acting, district=district, status=status)
    if file_format == "csv":
        return csv_bytes(titles, rows)
    return xlsx_bytes([("Institutions", titles, rows)])
