"""Checks for text that people and files hand to the service layer.

Hostile input is refused with an :class:`~canteen_watch.workflows.errors.InputError` naming the
field, never silently changed: control and invisible formatting characters (NUL, ESC, bidi
overrides, zero-width spaces), text longer than the field allows, and numbers out of range.
HTML, script and SQL fragments are ordinary text: they are stored verbatim (every query is
parametrised; escaping for display is the dashboard's job) and written to spreadsheets as text,
never as formulas.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime

from canteen_watch.core import as_utc
from canteen_watch.workflows.errors import InputError

_MULTILINE_ALLOWED = {"\n", "\t"}


def clean_text(value: object, field: str, *, max_length: int, required: bool = True, multiline: bool = False) -> str | None:
    """Return ``value`` stripped and NFC-normalised, or refuse it.

    Args:
        value: What was given (``None`` and ``""`` mean "absent").
        field: Field name used in the error message.
        max_length: Most characters allowed after normalisation.
        required: Refuse an absent value.
        multiline: Allow line feeds and tabs (notes, findings); never other control characters.

    Returns:
        The cleaned text, or None when absent and not required.

    Raises:
        InputError: Not a string, absent but required, too long, or with control or invisible
            formatting characters.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError("is required", field=field)
        return None
    if not isinstance(value, str):
        raise InputError(f"must be text, not {type(value).__name__}", field=field)
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").strip())
    for index, char in enumerate(text):
        if multiline and char in _MULTILINE_ALLOWED:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            raise InputError(f"contains a control or invisible formatting character (U+{ord(char):04X}) at position {index + 1}", field=field)
    if len(text) > max_length:
        raise InputError(f"is {len(text)} characters long; at most {max_length} are allowed", field=field)
    return text


def clean_int(value: object, field: str, *, minimum: int, maximum: int) -> int:
    """Return ``value`` as an int within ``minimum..maximum`` (text such as ``"40"`` is accepted)."""
    if isinstance(value, bool):
        raise InputError("must be a whole number", field=field)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped.lstrip("+").isdigit() or not stripped.isascii():
            raise InputError(f"must be a whole number, not {stripped[:20]!r}", field=field)
        value = int(stripped)
    if not isinstance(value, int):
        raise InputError("must be a whole number", field=field)
    if not minimum <= value <= maximum:
        raise InputError(f"must be between {minimum} and {maximum}, not {value}", field=field)
    return value


TRUE_WORDS = {"1", "true", "yes", "y", "是", "有", "供餐", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "否", "无", "不供餐", "f"}


def clean_bool(value: object, field: str) -> bool:
    """Return ``value`` as a bool; accepts booleans, 1/0 and yes/no words in English and Chinese."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise InputError(f"must be yes or no (是/否), not {str(value)[:20]!r}", field=field)


def clean_moment(value: datetime | None, field: str) -> datetime | None:
    """An aware UTC datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InputError("must be a date and time", field=field)
    return as_utc(value)


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern that matches ``text`` literally anywhere (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """Text that a spreadsheet will not run as a formula (CSV export): a leading ``'`` is added."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def from_spreadsheet(value: object) -> object:
    """Inverse of :func:`spreadsheet_safe` for imported cells."""
    if isinstance(value, str) and value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value
