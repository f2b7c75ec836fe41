"""Deterministic JSON for ledger entries and payloads.

The canonical form is what gets hashed, so it must be byte-for-byte reproducible years later by
any implementation:

* objects with keys sorted by code point, no whitespace (``,`` and ``:`` separators);
* UTF-8, non-ASCII characters written as themselves (not ``\\uXXXX``);
* only ``dict`` (string keys), ``list``, ``str``, ``int`` (signed 64-bit), ``bool`` and ``None``.
  Floats, bytes, dates, tuples, sets, ORM rows and anything else are rejected with the path of
  the offending value, so a ``repr()`` can never leak into a hash.

Payloads carry a version field ``"v"`` (:data:`PAYLOAD_VERSION` unless the caller sets one).

This module imports only the standard library (the offline verifier depends on that).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

PAYLOAD_VERSION = 1
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

#: Payload keys that usually hold personal data; store ``<key>_hash`` = :func:`salted_hash` instead.
PERSONAL_DATA_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "email",
        "phone",
        "phone_number",
        "mobile",
        "id_card",
        "id_number",
        "national_id",
        "address",
        "birthdate",
        "date_of_birth",
        "face",
        "face_image",
    }
)


class CanonicalError(ValueError):
    """A value cannot be represented canonically; the message names its path."""


class PersonalDataError(CanonicalError):
    """A payload key looks like personal data; commit to a salted hash instead."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _normalise(value: Any, path: str, check_personal: bool) -> Any:
    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):  # bool subclasses cannot exist, but keep the order explicit
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        if not INT_MIN <= number <= INT_MAX:
            raise CanonicalError(f"{path}: integer {number} is outside the signed 64-bit range")
        return number
    if isinstance(value, str):
        text = str.__str__(value)  # plain str, also for str-valued enums
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CanonicalError(f"{path}: string is not valid Unicode ({exc.reason})") from None
        return text
    if isinstance(value, list):
        return [_normalise(item, f"{path}[{index}]", check_personal) for index, item in enumerate(value)]
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path}: key {key!r} is not a string")
            key = str.__str__(key)
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise CanonicalError(f"{path}: key is not valid Unicode") from None
            if check_personal and key.lower() in PERSONAL_DATA_KEYS:
                raise PersonalDataError(
                    f"{path}.{key}: looks like personal data; store '{key}_hash': salted_hash(value, salt) instead"
                )
            result[key] = _normalise(item, f"{path}.{key}", check_personal)
        return result
    if isinstance(value, float):
        raise CanonicalError(f"{path}: floats are not allowed (use an int in fixed units or a decimal string)")
    raise CanonicalError(f"{path}: {type(value).__name__} is not allowed (only dict, list, str, int, bool, None)")


def canonical_text(value: Any, *, check_personal: bool = False) -> str:
    """Return the canonical JSON text of ``value`` (see the module docstring)."""
    return _ENCODER.encode(_normalise(value, "$", check_personal))


def canonical_bytes(value: Any, *, check_personal: bool = False) -> bytes:
    """Return the canonical JSON of ``value`` as UTF-8 bytes."""
    return canonical_text(value, check_personal=check_personal).encode("utf-8")


def canonical_payload(payload: dict[str, Any] | None, *, check_personal: bool = True) -> str:
    """Canonical text of an event payload, with ``"v"`` added when missing.

    Raises :class:`CanonicalError` for non-canonical values and :class:`PersonalDataError` for keys
    such as ``email`` or ``phone`` (see :data:`PERSONAL_DATA_KEYS`).
    """
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise CanonicalError(f"$: payload must be a dict, not {type(payload).__name__}")
    if "v" not in payload:
        payload = {"v": PAYLOAD_VERSION, **payload}
    elif isinstance(payload["v"], bool) or not isinstance(payload["v"], int):
        raise CanonicalError("$.v: payload version must be an int")
    return canonical_text(payload, check_personal=check_personal)


def json_string(text: str) -> str:
    """A JSON string literal exactly as :func:`canonical_text` writes it."""
    return _ENCODER.encode(text)


def salted_hash(value: str | bytes, salt: str | bytes) -> str:
    """Commit to a personal value without storing it: ``hmac-sha256:<hex>``.

    HMAC-SHA-256 keyed with ``salt``. Keep the salt outside the database (configuration or key
    folder): with it, an auditor holding the value can confirm it; without it, the hash reveals
    nothing useful even for low-entropy values such as phone numbers.
    """
    key = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    if len(key) < 16:
        raise ValueError("salt must be at least 16 bytes")
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


def new_salt() -> str:
    """A fresh random salt (64 hex characters) for :func:`salted_hash`."""
    return secrets.token_hex(32)
