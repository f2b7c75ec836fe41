"""Canonical JSON, the entry format, personal-data guards and salted hashes."""

from __future__ import annotations

import enum
import json
import random
from datetime import datetime, timezone

import pytest

from canteen_watch.ledger.canonical import (
    CanonicalError,
    PersonalDataError,
    canonical_bytes,
    canonical_payload,
    canonical_text,
    new_salt,
    salted_hash,
)
from canteen_watch.ledger.entry import Entry, EntryError, Evidence, evidence_json, format_ts, parse_ts
from canteen_watch.ledger.sink import ledger_safe


class Kind(str, enum.Enum):
    SCHOOL = "school_canteen"


def test_sorted_keys_no_whitespace_utf8() -> None:
    assert canonical_text({"b": 1, "a": [True, None, "x"], "é": "食品"}) == '{"a":[true,null,"x"],"b":1,"é":"食品"}'
    assert canonical_bytes({"k": "食"}) == '{"k":"食"}'.encode("utf-8")
    assert canonical_text({"z": {"y": 1, "x": 2}}) == '{"z":{"x":2,"y":1}}'
    assert canonical_text("a\"b\\c\n\u0001") == '"a\\"b\\\\c\\n\\u0001"'
    assert canonical_text({"kind": Kind.SCHOOL}) == '{"kind":"school_canteen"}'


@pytest.mark.parametrize(
    "value",
    [1.5, float("nan"), b"bytes", (1, 2), {1, 2}, datetime(2026, 1, 1), object(), {1: "x"}, 2**63, -(2**63) - 1, "\ud800", {"a": [1.0]}],
)
def test_non_canonical_values_are_rejected_with_a_path(value: object) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_text({"outer": value})
    assert "$" in str(info.value)


def test_payload_gets_a_version_and_rejects_personal_data() -> None:
    assert canonical_payload({"camera": "c1"}) == '{"camera":"c1","v":1}'
    assert canonical_payload(None) == '{"v":1}'
    assert canonical_payload({"v": 2, "x": 1}) == '{"v":2,"x":1}'
    with pytest.raises(CanonicalError):
        canonical_payload({"v": "1"})
    with pytest.raises(CanonicalError):
        canonical_payload([1])  # type: ignore[arg-type]
    for key in ("email", "Phone", "password", "id_card"):
        with pytest.raises(PersonalDataError):
            canonical_payload({"user": {key: "x"}})
    assert canonical_payload({"email_hash": salted_hash("a@b.c", "s" * 16)}).startswith('{"email_hash":"hmac-sha256:')


def test_salted_hash() -> None:
    salt = new_salt()
    assert len(salt) == 64 and salt != new_salt()
    assert salted_hash("13800000000", salt) == salted_hash(b"13800000000", salt.encode())
    assert salted_hash("13800000000", salt) != salted_hash("13800000001", salt)
    assert salted_hash("13800000000", salt) != salted_hash("13800000000", new_salt())
    with pytest.raises(ValueError):
        salted_hash("x", "short")


def test_entry_text_is_the_canonical_json_of_the_entry() -> None:
    rng = random.Random(1)
    alphabet = 'aZ09 "\\\n\t/é食\u2028\U0001F600'
    for i in range(300):
        word = lambda: "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))  # noqa: E731
        payload = {word(): rng.choice([word(), rng.randrange(-10**12, 10**12), None, True, [word(), 1]]) for _ in range(rng.randrange(0, 4))}
        evidence = Evidence("bkt", f"k/{i}.jpg", "%064x" % rng.getrandbits(256), rng.choice([None, "v1"])) if i % 2 else None
        entry = Entry(
            seq=i,
            ts=format_ts(datetime(2026, 12, 4, 10, 15, i % 60, tzinfo=timezone.utc)),
            actor=word(),
            action="x.y",
            subject=word(),
            payload_json=canonical_payload(payload, check_personal=False),
            evidence=evidence,
            corrects=rng.choice([None, 0]),
            prev_hash="%064x" % rng.getrandbits(256),
            entry_hash="0" * 64,
        )
        as_dict = {
            "action": entry.action,
            "actor": entry.actor,
            "corrects": entry.corrects,
            "evidence": evidence.as_dict() if evidence else None,
            "payload": json.loads(entry.payload_json),
            "prev_hash": entry.prev_hash,
            "seq": entry.seq,
            "subject": entry.subject,
            "ts": entry.ts,
            "v": 1,
        }
        assert entry.leaf_text() == canonical_text(as_dict)


def test_timestamps_and_evidence() -> None:
    moment = datetime(2026, 12, 4, 10, 15, 0, 123, tzinfo=timezone.utc)
    assert format_ts(moment) == "2026-12-04T10:15:00.000123Z"
    assert parse_ts(format_ts(moment)) == moment
    assert format_ts(datetime(2026, 12, 4, 10, 15)) == "2026-12-04T10:15:00.000000Z"
    assert evidence_json(None, None, None, None) == "null"
    with pytest.raises(EntryError):
        Evidence("b", "k", "ABC")
    with pytest.raises(EntryError):
        Evidence("b", "", "0" * 64)
    assert Evidence.coerce({"bucket": "b", "key": "k", "sha256": "0" * 64}) == Evidence("b", "k", "0" * 64, None)


def test_sink_makes_pipeline_payloads_canonical() -> None:
    payload = {"score": 0.912345, "box": (1.5, 2.25, 3.0, 4.0), "ok": True, "n": 3}
    safe = ledger_safe(payload)
    assert safe == {"score": "0.912345", "box": ["1.5", "2.25", "3.0", "4.0"], "ok": True, "n": 3}
    canonical_payload(safe)
    with pytest.raises(ValueError):
        ledger_safe({"x": float("inf")})
