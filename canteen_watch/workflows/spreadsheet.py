"""Reading and writing CSV and Excel (.xlsx) tables safely.

* Text is always written as text: a cell such as ``=HYPERLINK(…)`` or ``+1-2`` is stored as a
  string in .xlsx (never a formula) and prefixed with ``'`` in CSV, which :func:`read_table`
  strips again, so an export re-imports unchanged.
* Characters that XML cannot hold are replaced by U+FFFD in .xlsx (inputs refuse them anyway).
* Times are written as naive UTC (Excel has no time zones); headers say "(UTC)".
* Reading refuses files over :data:`MAX_FILE_BYTES` or with more than :data:`MAX_ROWS` rows.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timezone
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException

from canteen_watch.workflows.errors import InputError
from canteen_watch.workflows.validation import from_spreadsheet, spreadsheet_safe

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
XLSX_MAGIC = b"PK\x03\x04"
Sheet = tuple[str, Sequence[str], Iterable[Sequence[Any]]]


def _xlsx_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    return value


def xlsx_bytes(sheets: Sequence[Sheet]) -> bytes:
    """A workbook with one sheet per ``(title, headers, rows)``; strings are never formulas."""
    workbook = Workbook(write_only=True)
    for title, headers, rows in sheets:
        sheet = workbook.create_sheet(title=title[:31])
        header_cells = []
        for header in headers:
            cell = WriteOnlyCell(sheet, value=header)
            cell.font = Font(bold=True)
            header_cells.append(cell)
        sheet.append(header_cells)
        for row in rows:
            cells = []
            for value in row:
                value = _xlsx_value(value)
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # text, even when it starts with "="
                elif isinstance(value, datetime):
                    cell.number_format = "yyyy-mm-dd hh:mm:ss"
                cells.append(cell)
            sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a byte-order mark (Excel opens it as UTF-8); formula-like text is quoted with ``'``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_value(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return spreadsheet_safe(value)


def detect_format(data: bytes) -> str:
    """``xlsx`` for a zip container, else ``csv``."""
    return "xlsx" if data[:4] == XLSX_MAGIC else "csv"


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        value = from_spreadsheet(value)
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return value


def read_table(data: bytes, file_format: str | None = None) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """Header and data rows of a CSV or .xlsx file (first sheet).

    Returns:
        ``(headers, rows)`` where each row is ``(row number in the file, values)``; the header is
        row 1, and wholly empty rows are skipped.

    Raises:
        InputError: The file is too big, not CSV/UTF-8/GB18030 or not a readable workbook, has no
            header, or too many rows.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise InputError("must be the bytes of a CSV or .xlsx file", field="file")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"is {len(data)} bytes; at most {MAX_FILE_BYTES} are allowed", field="file")
    file_format = file_format or detect_format(bytes(data[:4]))
    if file_format == "xlsx":
        raw = _read_xlsx(bytes(data))
    elif file_format == "csv":
        raw = _read_csv(bytes(data))
    else:
        raise InputError(f"unknown format {file_format!r}; use csv or xlsx", field="file")
    if not raw:
        raise InputError("is empty", field="file")
    header_number, header = raw[0]
    headers = [str(h).strip() if h is not None else "" for h in header]
    while headers and not headers[-1]:
        headers.pop()
    if not any(headers):
        raise InputError("has no header row", field="file")
    rows = []
    for number, values in raw[1:]:
        cleaned = [_cell(v) for v in values]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in cleaned):
            continue
        rows.append((number, cleaned))
        if len(rows) > MAX_ROWS:
            raise InputError(f"has more than {MAX_ROWS} rows; split it", field="file")
    return headers, rows


def _read_csv(data: bytes) -> list[tuple[int, list[Any]]]:
    if b"\x00" in data:
        raise InputError("contains NUL bytes; it is not a text CSV file", field="file")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes nearly anything
        raise InputError("is neither UTF-8 nor GB18030 text", field="file")
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        return [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise InputError(f"is not valid CSV: {exc}", field="file") from None


def _read_xlsx(data: bytes) -> list[tuple[int, list[Any]]]:
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"is not a readable .xlsx workbook: {exc}", field="file") from None
    try:
        sheet = workbook.worksheets[0]
        rows = []
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            rows.append((number, list(row)))
            if number > MAX_ROWS + 1:
                raise InputError(f"has more than {MAX_ROWS} rows; split it", field="file")
        return rows
    finally:
        workbook.close()
