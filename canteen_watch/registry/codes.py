"""Identifiers of care institutions: unified social credit code, food business licence, phone.

Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters from
``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z). Character 1 is the registration
authority, 2 the institution category, 3-8 the administrative division code (digits), 9-17 the
organisation code, and 18 the check character: with each character's index ``c_i`` in the
charset and weights ``1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28``
(``3**i mod 31``), ``check = 31 - (sum(c_i * w_i) mod 31)``, where 31 becomes 0.

Food business licence number (食品经营许可证编号): ``JY`` followed by 14 digits (main business
type, province, city, county, sequence, check digit).

Contact phone: a mainland mobile number ``1[3-9]`` + 9 digits, or a landline with its area code
(``010`` and ``020``-``029`` are three digits, every other area code four: ``0`` + three
digits), then 7-8 digits and an optional extension, e.g. ``010-12345678``, ``0755-88888888``.
"""

from __future__ import annotations

import re

from canteen_watch.workflows.errors import InputError

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT_INDEX = {ch: i for i, ch in enumerate(CREDIT_CHARSET)}

LICENCE_PATTERN = re.compile(r"JY\d{14}")
MOBILE_PATTERN = re.compile(r"1[3-9]\d{9}")
LANDLINE_PATTERN = re.compile(r"(0(?:10|2\d|[3-9]\d{2}))-?([1-9]\d{6,7})(?:-(\d{1,6}))?")
_SEPARATORS = re.compile(r"[\s\u3000]+")


def credit_check_character(first17: str) -> str:
    """The check character for the first 17 characters of a credit code.

    Raises:
        InputError: Wrong length or a character outside the charset.
    """
    if len(first17) != 17:
        raise InputError(f"needs 17 characters before the check character, not {len(first17)}", field="credit_code")
    total = 0
    for position, (char, weight) in enumerate(zip(first17, CREDIT_WEIGHTS), start=1):
        index = _CREDIT_INDEX.get(char)
        if index is None:
            raise InputError(f"character {position} ({char!r}) is not allowed; use 0-9 and A-Y without I, O, S, V, Z", field="credit_code")
        total += index * weight
    check = 31 - total % 31
    return CREDIT_CHARSET[0 if check == 31 else check]


def normalise_credit_code(value: object) -> str:
    """Upper-case, strip spaces, and check a credit code; returns the 18-character code.

    Raises:
        InputError: Not 18 characters, characters outside the charset, a non-digit
            administrative division code, or a wrong check character (the message names the
            expected one).
    """
    if not isinstance(value, str):
        raise InputError("must be text", field="credit_code")
    code = _SEPARATORS.sub("", value).upper()
    if not code:
        raise InputError("is required", field="credit_code")
    if len(code) != 18:
        raise InputError(f"must be 18 characters, not {len(code)}", field="credit_code")
    expected = credit_check_character(code[:17])
    if code[17] not in _CREDIT_INDEX:
        raise InputError(f"check character {code[17]!r} is not allowed", field="credit_code")
    if not code[2:8].isdigit():
        raise InputError("characters 3-8 (administrative division code) must be digits", field="credit_code")
    if code[17] != expected:
        raise InputError(f"check character is {code[17]!r} but should be {expected!r}; the code is mistyped", field="credit_code")
    return code


def is_valid_credit_code(value: object) -> bool:
    """True when ``value`` is a well-formed credit code with the right check character."""
    try:
        normalise_credit_code(value)
    except InputError:
        return False
    return True


def normalise_licence(value: object) -> str:
    """Upper-case and check a food business licence number (``JY`` + 14 digits)."""
    if not isinstance(value, str):
        raise InputError("must be text", field="licence_no")
    licence = _SEPARATORS.sub("", value).upper()
    if not licence:
        raise InputError("is required", field="licence_no")
    if not LICENCE_PATTERN.fullmatch(licence):
        raise InputError("must be JY followed by 14 digits, e.g. JY13501020012345", field="licence_no")
    return licence


def normalise_phone(value: object) -> str:
    """Check a contact phone and return it normalised (mobile: 11 digits; landline: ``0AA-NNNNNNNN[-EXT]``).

    Spaces are ignored; a ``+86`` / ``86`` prefix is accepted for mobile numbers.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError("must be text", field="contact_phone")
    phone = _SEPARATORS.sub("", value)
    if not phone:
        raise InputError("is required", field="contact_phone")
    mobile = phone.replace("-", "")
    for prefix in ("+86", "0086", "86"):
        if mobile.startswith(prefix) and len(mobile) == 11 + len(prefix):
            mobile = mobile[len(prefix):]
            break
    if MOBILE_PATTERN.fullmatch(mobile):
        return mobile
    match = LANDLINE_PATTERN.fullmatch(phone)
    if match:
        area, number, extension = match.groups()
        return f"{area}-{number}" + (f"-{extension}" if extension else "")
    raise InputError("must be a mainland mobile number (1[3-9] + 9 digits) or a landline with area code, e.g. 010-12345678", field="contact_phone")
