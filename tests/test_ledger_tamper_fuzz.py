"""1,000 random tampers of a real ledger's rows, each detected by the replay verifier.

The ledger is built once on SQLite through the real append path; its rows are then tampered in
memory and fed to :class:`canteen_watch.ledger.verify.Replay`, the same code
``canteen-watch ledger verify`` runs over database rows.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from canteen_watch.db.base import write_transaction
from canteen_watch.ledger import merkle
from canteen_watch.ledger.checkpoint import NoteSigner, sign_checkpoint
from canteen_watch.ledger.entry import Entry, Evidence
from canteen_watch.ledger.models import checkpoints_table, entries_table, nodes_table
from canteen_watch.ledger.verify import CHECKPOINT_COLUMNS, ENTRY_COLUMNS, Replay
from tests.test_ledger_support import LedgerEnv, ledger_key_dir, make_env  # noqa: F401

SIZE = 300
TAMPERS = 1000
ALPHABET = "abcdefxyz0123456789:_-.{}\"/é"


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory, ledger_key_dir: Path) -> dict[str, Any]:
    env: LedgerEnv = make_env(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'ledger.db'}", ledger_key_dir, checkpoint_every=50)
    rng = random.Random(42)
    events = []
    for i in range(SIZE):
        evidence = {"bucket": "snaps", "key": f"cam-{i % 4}/{i}.jpg", "sha256": "%064x" % rng.getrandbits(256)} if i % 3 == 0 else None
        if evidence and i % 2:
            evidence["version_id"] = f"v{i}"
        events.append(
            dict(
                actor=rng.choice(["system:pipeline", "role:inspector", "model:mnv2-3"]),
                action=rng.choice(["snapshot.stored", "detection.recorded", "violation.opened", "violation.reviewed"]),
                subject=f"violation:{i // 10}",
                payload={"i": i, "label": rng.choice(["no_hat", "no_mask", "pest"]), "score_ppm": rng.randrange(10**6), "note": "食品安全"},
                evidence=evidence,
                corrects=rng.randrange(i) if i > 10 and i % 17 == 0 else None,
            )
        )
    for start in range(0, SIZE, 37):
        with write_transaction(env.factory) as session:
            env.ledger.append_many(session, events[start : start + 37])
    env.checkpoint()
    with env.factory() as session:
        data = {
            "entries": [tuple(r) for r in session.execute(select(*(entries_table.c[c] for c in ENTRY_COLUMNS)).order_by(entries_table.c.seq))],
            "nodes": [tuple(r) for r in session.execute(select(nodes_table.c.level, nodes_table.c.idx, nodes_table.c.hash).order_by(nodes_table.c.level, nodes_table.c.idx))],
            "checkpoints": [tuple(r) for r in session.execute(select(*(checkpoints_table.c[c] for c in CHECKPOINT_COLUMNS)).order_by(checkpoints_table.c.id))],
        }
    env.engine.dispose()
    data["verifier"] = env.verifier
    data["published"] = [c[5] for c in data["checkpoints"]]
    return data


def replay(data: dict[str, Any], entries: list, nodes: list, checkpoints: list, trusted: list[str] | None = None):
    r = Replay(data["verifier"], trusted if trusted is not None else data["published"])
    r.feed_entries(entries)
    r.feed_nodes(nodes)
    r.feed_checkpoints(checkpoints)
    return r.finish()


def _mutate_text(rng: random.Random, value: str) -> str:
    pos = rng.randrange(len(value))
    choices = [c for c in ALPHABET if c != value[pos]]
    return value[:pos] + rng.choice(choices) + value[pos + 1 :]


def _rebuild_nodes(leaves: list[bytes]) -> list[tuple[int, int, bytes]]:
    frontier = merkle.Frontier()
    nodes = [n for leaf in leaves for n in frontier.append(leaf)]
    return sorted(nodes)


def _entry(row: tuple) -> Entry:
    seq, ts, actor, action, subject, payload, bucket, key, version, sha, corrects, prev, h = row
    return Entry(seq, ts, actor, action, subject, payload, Evidence(bucket, key, sha, version) if sha else None, corrects, prev, h)


def tamper(rng: random.Random, data: dict[str, Any]) -> tuple[str, list, list, list, int | None]:
    entries = list(data["entries"])
    nodes = list(data["nodes"])
    checkpoints = list(data["checkpoints"])
    kind = rng.choices(
        ["field", "delete", "swap", "swap_content", "truncate", "truncate_all", "node", "node_delete", "node_extra", "checkpoint", "resign", "rewrite"],
        weights=[40, 6, 5, 4, 5, 5, 6, 3, 2, 10, 4, 10],
    )[0]
    expect: int | None = None
    if kind == "field":
        i = rng.randrange(len(entries))
        column = rng.randrange(len(ENTRY_COLUMNS))
        row = list(entries[i])
        value = row[column]
        if ENTRY_COLUMNS[column] == "seq":
            row[column] = value + rng.choice([-3, -2, -1, 1, 2, 3, 1000])
        elif ENTRY_COLUMNS[column] == "corrects":
            row[column] = (value + 1 if value is not None and value + 1 < i else (0 if value != 0 else None)) if i else 0
        elif value is None:
            row[column] = "x" if ENTRY_COLUMNS[column] != "evidence_sha256" else "0" * 64
        else:
            row[column] = _mutate_text(rng, value)
        entries[i] = tuple(row)
        expect = i
        kind = f"field:{ENTRY_COLUMNS[column]}"
    elif kind == "delete":
        i = rng.randrange(len(entries))
        del entries[i]
        expect = i
    elif kind == "swap":
        i, j = sorted(rng.sample(range(len(entries)), 2))
        entries[i], entries[j] = entries[j], entries[i]
        expect = i
    elif kind == "swap_content":
        i, j = sorted(rng.sample(range(len(entries)), 2))
        a, b = entries[i], entries[j]
        entries[i], entries[j] = (a[0], *b[1:]), (b[0], *a[1:])
        expect = i
    elif kind == "truncate":
        k = rng.randrange(1, 60)
        del entries[-k:]
        expect = len(entries)
    elif kind == "truncate_all":  # entries, nodes and covering checkpoints removed; only published copies remain
        keep = rng.randrange(1, SIZE - 1)
        entries = entries[:keep]
        nodes = _rebuild_nodes([bytes.fromhex(e[12]) for e in entries])
        checkpoints = [c for c in checkpoints if c[1] <= keep]
        expect = keep
    elif kind == "node":
        i = rng.randrange(len(nodes))
        level, idx, value = nodes[i]
        flipped = bytearray(value)
        flipped[rng.randrange(32)] ^= 1 << rng.randrange(8)
        nodes[i] = (level, idx, bytes(flipped))
        expect = idx << level
    elif kind == "node_delete":
        i = rng.randrange(len(nodes))
        level, idx, _ = nodes.pop(i)
        expect = idx << level
    elif kind == "node_extra":
        idx = SIZE // 2 + rng.randrange(3)
        nodes.append((1, idx, b"\x11" * 32))
        nodes.sort()
        expect = idx << 1
    elif kind == "checkpoint":
        i = rng.randrange(len(checkpoints))
        row = list(checkpoints[i])
        column = rng.choice([1, 2, 3, 4, 5])  # tree_size, root_hash, origin, key_id, note
        if column == 1:
            row[1] = row[1] + rng.choice([-1, 1])
        else:
            row[column] = _mutate_text(rng, row[column])
        checkpoints[i] = tuple(row)
        kind = f"checkpoint:{CHECKPOINT_COLUMNS[column]}"
    elif kind == "resign":
        i = rng.randrange(len(checkpoints))
        attacker = NoteSigner(data["verifier"].name, Ed25519PrivateKey.generate())
        row = list(checkpoints[i])
        forged = sign_checkpoint(attacker, row[1], bytes.fromhex(row[2]) if rng.random() < 0.5 else b"\x00" * 32)
        row[5] = forged.note
        checkpoints[i] = tuple(row)
    elif kind == "rewrite":  # change one entry and re-chain everything after it, nodes included
        i = rng.randrange(len(entries))
        rebuilt: list[tuple] = list(entries[:i])
        prev = entries[i][11]
        for j in range(i, len(entries)):
            e = _entry(entries[j])
            payload = e.payload_json.replace('"note":"食品安全"', '"note":"已整改"') if j == i else e.payload_json
            if j == i and payload == e.payload_json:
                payload = payload[:-1] + ',"x":1}'
            e = Entry(e.seq, e.ts, e.actor, e.action, e.subject, payload, e.evidence, e.corrects, prev, "")
            h = merkle.leaf_hash(e.leaf_bytes()).hex()
            rebuilt.append((*entries[j][:5], payload, *entries[j][6:11], prev, h))
            prev = h
        entries = rebuilt
        nodes = _rebuild_nodes([bytes.fromhex(e[12]) for e in entries])
    return kind, entries, nodes, checkpoints, expect


def test_untampered_rows_verify(rows: dict[str, Any]) -> None:
    report = replay(rows, rows["entries"], rows["nodes"], rows["checkpoints"])
    assert report.ok, report.summary()
    assert report.size == SIZE and report.checkpoints_checked == len(rows["checkpoints"]) >= 6


def test_one_thousand_random_tampers_are_all_detected(rows: dict[str, Any]) -> None:
    rng = random.Random(20261204)
    missed: list[str] = []
    wrong_seq: list[str] = []
    kinds: Counter[str] = Counter()
    for n in range(TAMPERS):
        kind, entries, nodes, checkpoints, expect = tamper(rng, rows)
        kinds[kind.split(":")[0]] += 1
        report = replay(rows, entries, nodes, checkpoints)
        if report.ok:
            missed.append(f"#{n} {kind}")
        elif expect is not None and report.first_bad_seq != expect:
            wrong_seq.append(f"#{n} {kind}: expected seq {expect}, got {report.first_bad_seq}: {report.problems[:2]}")
    assert missed == [], missed[:20]
    assert wrong_seq == [], '\n'.join(wrong_seq[:10])
    assert sum(kinds.values()) == TAMPERS and len(kinds) == 12, kinds


def test_a_deleted_row_is_reported_once(rows: dict[str, Any]) -> None:
    entries = list(rows["entries"])
    del entries[120]
    report = replay(rows, entries, rows["nodes"], rows["checkpoints"])
    assert report.first_bad_seq == 120
    assert len(report.problems) < 20, [str(p) for p in report.problems]
    assert report.problems[0].kind == "missing"
