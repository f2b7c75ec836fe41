"""The ledger entry: its fields and the exact bytes that are hashed.

An entry's leaf data is the canonical JSON object (keys sorted, no whitespace, UTF-8)::

    {"action":…,"actor":…,"corrects":<seq>|null,
     "evidence":{"bucket":…,"key":…,"sha256":…,"version_id":…|null}|null,
     "payload":{…,"v":1},"prev_hash":"<hex>","seq":<n>,"subject":…,"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ","v":1}

* ``seq`` is the 0-based leaf index in the Merkle tree;
* ``prev_hash`` is the ``entry_hash`` of entry ``seq - 1`` (64 zeros for the first entry), so the
  entries also form a hash chain;
* ``entry_hash`` = RFC 6962 leaf hash = SHA-256(0x00 || leaf data).

Standard library only (the offline verifier imports it).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from canteen_watch.ledger.canonical import json_string

ENTRY_VERSION = 1
GENESIS_PREV_HASH = "0" * 64
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_ACTION = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")


class EntryError(ValueError):
    """An entry field is invalid."""


def format_ts(moment: datetime) -> str:
    """UTC timestamp text with microseconds, e.g. ``2026-12-04T10:15:00.000000Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TS_FORMAT)


def parse_ts(text: str) -> datetime:
    """Inverse of :func:`format_ts`."""
    return datetime.strptime(text, TS_FORMAT).replace(tzinfo=timezone.utc)


def is_hex64(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def check_text_field(name: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise EntryError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise EntryError(f"{name} is longer than {max_length} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise EntryError(f"{name} contains a control character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError(f"{name} is not valid Unicode") from None
    return value


def check_action(action: object) -> str:
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise EntryError(f"action {action!r} must match {_ACTION.pattern}")
    return action


@dataclass(frozen=True)
class Evidence:
    """Where the image an entry refers to lives, and its SHA-256 (lower-case hex)."""

    bucket: str
    key: str
    sha256: str
    version_id: str | None = None

    def __post_init__(self) -> None:
        check_text_field("evidence bucket", self.bucket, 255)
        check_text_field("evidence key", self.key, 1024)
        if not is_hex64(self.sha256):
            raise EntryError("evidence sha256 must be 64 lower-case hex characters")
        if self.version_id is not None:
            check_text_field("evidence version_id", self.version_id, 255)

    @classmethod
    def coerce(cls, value: Any) -> "Evidence | None":
        """Accept an :class:`Evidence`, a ``StoredObject``-like object or a dict."""
        if value is None or isinstance(value, Evidence):
            return value
        if isinstance(value, dict):
            return cls(bucket=value["bucket"], key=value["key"], sha256=value["sha256"], version_id=value.get("version_id"))
        return cls(bucket=value.bucket, key=value.key, sha256=value.sha256, version_id=getattr(value, "version_id", None))

    def as_dict(self) -> dict[str, str | None]:
        return {"bucket": self.bucket, "key": self.key, "sha256": self.sha256, "version_id": self.version_id}


def evidence_json(bucket: str | None, key: str | None, sha256: str | None, version_id: str | None) -> str:
    """Canonical JSON of an evidence reference (``null`` when there is none)."""
    if bucket is None and key is None and sha256 is None and version_id is None:
        return "null"
    return (
        '{"bucket":' + _opt(bucket) + ',"key":' + _opt(key) + ',"sha256":' + _opt(sha256) + ',"version_id":' + _opt(version_id) + "}"
    )


def _opt(value: str | None) -> str:
    return "null" if value is None else json_string(value)


def entry_text(
    *,
    seq: int,
    ts: str,
    actor: str,
    action: str,
    subject: str,
    payload_json: str,
    evidence: str,
    corrects: int | None,
    prev_hash: str,
) -> str:
    """The canonical leaf text of an entry, built directly (equal to ``canonical_text`` of the dict).

    ``payload_json`` is inserted verbatim: it is the canonical text stored at append time, and
    any later change to it changes the hash. ``evidence`` is :func:`evidence_json` output.
    """
    return (
        '{"action":'
        + json_string(action)
        + ',"actor":'
        + json_string(actor)
        + ',"corrects":'
        + ("null" if corrects is None else str(int(corrects)))
        + ',"evidence":'
        + evidence
        + ',"payload":'
        + payload_json
        + ',"prev_hash":'
        + json_string(prev_hash)
        + ',"seq":'
        + str(int(seq))
        + ',"subject":'
        + json_string(subject)
        + ',"ts":'
        + json_string(ts)
        + ',"v":'
        + str(ENTRY_VERSION)
        + "}"
    )


def entry_hash_of(data: bytes) -> str:
    """Hex RFC 6962 leaf hash of an entry's leaf data."""
    return hashlib.sha256(b"\x00" + data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One ledger entry as stored (plain data; ORM rows stay in the store)."""

    seq: int
    ts: str
    actor: str
    action: str
    subject: str
    payload_json: str
    evidence: Evidence | None
    corrects: int | None
    prev_hash: str
    entry_hash: str

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.payload_json)

    @property
    def time(self) -> datetime:
        return parse_ts(self.ts)

    def leaf_text(self) -> str:
        ev = self.evidence
        evidence = "null" if ev is None else evidence_json(ev.bucket, ev.key, ev.sha256, ev.version_id)
        return entry_text(
            seq=self.seq,
            ts=self.ts,
            actor=self.actor,
            action=self.action,
            subject=self.subject,
            payload_json=self.payload_json,
            evidence=evidence,
            corrects=self.corrects,
            prev_hash=self.prev_hash,
        )

    def leaf_bytes(self) -> bytes:
        """The exact bytes hashed into the Merkle tree."""
        return self.leaf_text().encode("utf-8")

    def as_dict(self) -> dict[str, Any]:
        return json.loads(self.leaf_text()) | {"entry_hash": self.entry_hash}
