"""The ledger service on SQLite and PostgreSQL: appends, proofs, checkpoints, guards, tampering."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from canteen_watch.db.base import write_transaction
from canteen_watch.ledger import merkle
from canteen_watch.ledger.canonical import CanonicalError, PersonalDataError
from canteen_watch.ledger.checkpoint import NoteSigner, sign_checkpoint
from canteen_watch.ledger.entry import EntryError
from canteen_watch.ledger.store import Ledger, LedgerError, LedgerInconsistent, correct_entry, record_event
from tests.test_ledger_support import LedgerEnv, env, ledger_key_dir, make_env  # noqa: F401

IMAGE_SHA = "ab" * 32


def _leaves(env: LedgerEnv) -> list[bytes]:
    with env.factory() as session:
        return [bytes.fromhex(e.entry_hash) for e in env.ledger.entries(session)]


def test_appends_chain_and_match_the_reference_tree(env: LedgerEnv) -> None:
    with write_transaction(env.factory) as session:
        first = record_event(
            session,
            env.ledger,
            actor="system:pipeline",
            action="snapshot.stored",
            subject="snapshot:1",
            payload={"camera": "cam-1"},
            evidence={"bucket": "snaps", "key": "a/1.jpg", "sha256": IMAGE_SHA, "version_id": "v1"},
        )
    assert first.seq == 0 and first.prev_hash == "0" * 64
    assert first.entry_hash == merkle.leaf_hash(first.leaf_bytes()).hex()
    env.append_events(20)
    env.append_events(45, batch=7)
    leaves = _leaves(env)
    assert len(leaves) == 66
    with env.factory() as session:
        entries = list(env.ledger.entries(session))
        assert [e.seq for e in entries] == list(range(66))
        assert all(e.prev_hash == p.entry_hash for p, e in zip(entries, entries[1:]))
        assert all(a.ts <= b.ts for a, b in zip(entries, entries[1:]))
        assert env.ledger.root(session) == merkle.root_from_leaves(leaves)
        for size in (1, 2, 7, 8, 33, 66):
            assert env.ledger.root(session, size) == merkle.root_from_leaves(leaves[:size])
            for seq in {0, size // 2, size - 1}:
                proof = env.ledger.inclusion_proof(session, seq, size)
                assert list(proof.path) == merkle.inclusion_proof(seq, size, leaves)
                proof.verify()
            for old in {0, 1, size // 3, size - 1, size}:
                proof = env.ledger.consistency_proof(session, old, size)
                assert list(proof.path) == merkle.consistency_proof(old, size, leaves)
                proof.verify()
        with pytest.raises(LedgerError):
            env.ledger.inclusion_proof(session, 66, 66)
        with pytest.raises(LedgerError):
            env.ledger.consistency_proof(session, 5, 67)
        assert env.ledger.entry(session, 0).evidence.version_id == "v1"  # type: ignore[union-attr]
    assert env.verify().ok


def test_invalid_events_are_rejected_before_writing(env: LedgerEnv) -> None:
    bad = [
        (dict(payload={"score": 0.5}), CanonicalError),
        (dict(payload={"email": "x@y.z"}), PersonalDataError),
        (dict(action="Bad Action"), EntryError),
        (dict(actor=""), EntryError),
        (dict(evidence={"bucket": "b", "key": "k", "sha256": "nothex"}), EntryError),
        (dict(corrects=0), EntryError),  # nothing earlier to correct
    ]
    for override, error in bad:
        event = dict(actor="a", action="x.y", subject="s", payload={}) | override
        with pytest.raises(error):
            with write_transaction(env.factory) as session:
                env.ledger.append(session, **event)
    with env.factory() as session:
        assert env.ledger.size(session) == 0


def test_corrections_are_new_entries(env: LedgerEnv) -> None:
    env.append_events(3)
    with write_transaction(env.factory) as session:
        fix = correct_entry(session, env.ledger, 1, actor="role:inspector", reason="wrong camera")
    assert fix.corrects == 1 and fix.action == "ledger.correction" and fix.subject == "violation:1"
    with write_transaction(env.factory) as session:
        other = env.ledger.append(session, actor="role:inspector", action="x.y", subject="violation:2", corrects=0)
        history = env.ledger.history(session, "violation:1")
    assert [e.seq for e in history] == [0, 1, 2, 3, other.seq]
    with pytest.raises(EntryError):
        with write_transaction(env.factory) as session:
            env.ledger.append(session, actor="a", action="x.y", subject="s", corrects=99)
    assert env.verify().ok


def test_rolled_back_appends_leave_no_trace(env: LedgerEnv) -> None:
    env.append_events(3)
    with pytest.raises(RuntimeError):
        with write_transaction(env.factory) as session:
            env.ledger.append(session, actor="a", action="x.y", subject="s")
            raise RuntimeError("the surrounding change failed")
    env.append_events(2)  # the cached tip must not point past the rollback
    with env.factory() as session:
        assert env.ledger.size(session) == 5
    assert env.verify().ok


def test_guards_reject_update_and_delete(env: LedgerEnv) -> None:
    env.append_events(3)
    env.checkpoint()
    statements = [
        "UPDATE ledger_entries SET actor = 'x' WHERE seq = 1",
        "DELETE FROM ledger_entries WHERE seq = 2",
        "UPDATE ledger_nodes SET idx = 9",
        "DELETE FROM ledger_nodes",
        "UPDATE ledger_checkpoints SET tree_size = 1",
        "DELETE FROM ledger_checkpoints",
    ]
    if env.dialect == "postgresql":
        statements += ["TRUNCATE ledger_entries CASCADE", "TRUNCATE ledger_nodes"]
    for statement in statements:
        with pytest.raises((IntegrityError, DBAPIError)) as info:
            with env.engine.begin() as connection:
                connection.execute(text(statement))
        assert "append-only" in str(info.value)
    assert env.verify().ok


def test_concurrent_appends_are_serialised(env: LedgerEnv) -> None:
    ledgers = [Ledger(signer=env.signer, checkpoint_every=25, checkpoint_interval=None) for _ in range(2)]
    errors: list[BaseException] = []

    def worker(ledger: Ledger, n: int) -> None:
        try:
            for i in range(n):
                with write_transaction(env.factory) as session:
                    if i % 3:
                        ledger.append(session, actor="a", action="x.y", subject="s", payload={"i": i})
                    else:
                        ledger.append_many(session, [dict(actor="a", action="x.y", subject="s", payload={"i": i, "j": j}) for j in range(3)])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ledgers[i % 2], 15)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with env.factory() as session:
        assert env.ledger.size(session) == 4 * (10 + 5 * 3)
        sizes = [c.size for c in env.ledger.checkpoints(session)]
    assert sizes == sorted(sizes) and len(sizes) >= 3
    report = env.verify()
    assert report.ok, report.summary()


def test_checkpoints_every_n_and_on_demand(env: LedgerEnv) -> None:
    env.ledger.checkpoint_every = 10
    env.append_events(9)
    with env.factory() as session:
        assert env.ledger.latest_checkpoint(session) is None
    env.append_events(1)
    env.append_events(25, batch=25)
    with env.factory() as session:
        assert [c.size for c in env.ledger.checkpoints(session)] == [10, 35]
    env.append_events(2)
    assert env.checkpoint().size == 37
    assert env.checkpoint().size == 37  # idempotent: no new checkpoint for the same size
    with env.factory() as session:
        assert [c.size for c in env.ledger.checkpoints(session)] == [10, 35, 37]
        proof = env.ledger.consistency_proof(session, 10, 37)
        cps = env.ledger.checkpoints(session)
        merkle.verify_consistency(10, 37, cps[0].root, cps[2].root, proof.path)
    env.ledger.checkpoint_interval = timedelta(0)
    env.append_events(1)
    with env.factory() as session:
        assert env.ledger.latest_checkpoint(session).size == 38  # type: ignore[union-attr]
    assert env.verify().ok


def test_no_checkpoint_is_signed_over_an_inconsistent_tree(env: LedgerEnv) -> None:
    env.append_events(12)
    env.checkpoint()
    # Rewrite history consistently (entries, chain and nodes) as an attacker without the key would.
    with env.factory() as session:
        entries = list(env.ledger.entries(session))
    forged = Ledger(signer=None)
    tmp = make_env(f"sqlite:///{env.key_dir.parent / ('forge-' + env.dialect + '.db')}", env.key_dir)
    try:
        with write_transaction(tmp.factory) as session:
            forged.append_many(session, [dict(actor=e.actor, action=e.action, subject=e.subject, payload={"forged": e.seq}) for e in entries])
        with tmp.engine.connect() as c:
            rows = [dict(r._mapping) for r in c.execute(text("SELECT * FROM ledger_entries ORDER BY seq"))]
            nodes = [dict(r._mapping) for r in c.execute(text("SELECT * FROM ledger_nodes"))]
    finally:
        tmp.engine.dispose()
    columns = ", ".join(rows[0])
    values = ", ".join(f":{k}" for k in rows[0])
    env.tamper(
        "DELETE FROM ledger_nodes",
        "DELETE FROM ledger_entries",
        *[(f"INSERT INTO ledger_entries ({columns}) VALUES ({values})", r) for r in rows],
        *[("INSERT INTO ledger_nodes (level, idx, hash) VALUES (:level, :idx, :hash)", n) for n in nodes],
    )
    fresh = Ledger(signer=env.signer)
    with write_transaction(env.factory) as session:
        fresh.append(session, actor="a", action="x.y", subject="s")
    with pytest.raises(LedgerInconsistent):
        with write_transaction(env.factory) as session:
            fresh.checkpoint(session)
    with env.factory() as session:
        assert [c.size for c in fresh.checkpoints(session)] == [12]
    report = env.verify()
    assert not report.ok and report.first_bad_seq == 0


# ------------------------------------------------------------------------------- tampering

# Change the first hex digit of a column, whatever it is.
FLIP = "(CASE WHEN substr({0}, 1, 1) = '1' THEN '2' ELSE '1' END || substr({0}, 2))"

TAMPERS = {
    # name: (function(env) -> None, expected first bad seq)
    "actor byte": (lambda e: e.tamper("UPDATE ledger_entries SET actor = 'system:tesT' WHERE seq = 7"), 7),
    "action byte": (lambda e: e.tamper("UPDATE ledger_entries SET action = 'violation.reviewec' WHERE seq = 3"), 3),
    "subject byte": (lambda e: e.tamper("UPDATE ledger_entries SET subject = 'violation:2' WHERE seq = 11"), 11),
    "payload byte": (lambda e: e.tamper(("UPDATE ledger_entries SET payload = :p WHERE seq = 8", {"p": '{"i":9,"v":1}'})), 8),
    "ts byte": (lambda e: e.tamper("UPDATE ledger_entries SET ts = '2000' || substr(ts, 5) WHERE seq = 0"), 0),
    "evidence sha256 byte": (lambda e: e.tamper(f"UPDATE ledger_entries SET evidence_sha256 = '{'cd' * 32}' WHERE seq = 5"), 5),
    "evidence key byte": (lambda e: e.tamper("UPDATE ledger_entries SET evidence_key = 'img/5.jpG' WHERE seq = 5"), 5),
    "evidence version added": (lambda e: e.tamper("UPDATE ledger_entries SET evidence_version_id = 'v2' WHERE seq = 5"), 5),
    "corrects added": (lambda e: e.tamper("UPDATE ledger_entries SET corrects = 1 WHERE seq = 9"), 9),
    "prev_hash byte": (lambda e: e.tamper("UPDATE ledger_entries SET prev_hash = " + FLIP.format("prev_hash") + " WHERE seq = 13"), 13),
    "entry_hash byte": (lambda e: e.tamper("UPDATE ledger_entries SET entry_hash = " + FLIP.format("entry_hash") + " WHERE seq = 4"), 4),
    "deleted row": (lambda e: e.tamper("DELETE FROM ledger_entries WHERE seq = 6"), 6),
    "reordered rows": (
        lambda e: e.tamper(
            "UPDATE ledger_entries SET seq = -1 WHERE seq = 2",
            "UPDATE ledger_entries SET seq = 2 WHERE seq = 3",
            "UPDATE ledger_entries SET seq = 3 WHERE seq = -1",
        ),
        2,
    ),
    "truncated log": (lambda e: e.tamper("DELETE FROM ledger_entries WHERE seq >= 17"), 17),
    "node byte": (lambda e: e.tamper(("UPDATE ledger_nodes SET hash = :h WHERE level = 2 AND idx = 1", {"h": b"\x00" * 32})), 4),
    "node deleted": (lambda e: e.tamper("DELETE FROM ledger_nodes WHERE level = 1 AND idx = 8"), 16),
    "checkpoint note byte": (lambda e: e.tamper("UPDATE ledger_checkpoints SET note = replace(note, '\n20\n', '\n19\n')"), None),
    "checkpoint size column": (lambda e: e.tamper("UPDATE ledger_checkpoints SET tree_size = 19"), None),
}


def _resign(env: LedgerEnv) -> None:
    attacker = NoteSigner(env.signer.name, Ed25519PrivateKey.generate())
    forged = sign_checkpoint(attacker, 20, b"\x00" * 32)
    env.tamper(("UPDATE ledger_checkpoints SET note = :n, key_id = :k", {"n": forged.note, "k": env.signer.key_id.hex()}))


TAMPERS["checkpoint re-signed"] = (_resign, None)


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampering_is_detected(env: LedgerEnv, name: str) -> None:
    for i in range(20):
        with write_transaction(env.factory) as session:
            env.ledger.append(
                session,
                actor="system:test",
                action="violation.reviewed",
                subject="violation:1",
                payload={"i": i},
                evidence={"bucket": "snaps", "key": f"img/{i}.jpg", "sha256": IMAGE_SHA} if i == 5 else None,
            )
    env.checkpoint()
    assert env.verify().ok
    action, first_bad = TAMPERS[name]
    action(env)
    report = env.verify()
    assert not report.ok, name
    assert report.first_bad_seq == first_bad, [str(p) for p in report.problems]
    if first_bad is None:
        assert any(p.kind == "checkpoint" for p in report.problems)


def test_truncation_with_checkpoints_removed_is_caught_by_a_trusted_checkpoint(env: LedgerEnv) -> None:
    env.append_events(20, batch=10)
    published = env.checkpoint().note
    env.tamper("DELETE FROM ledger_checkpoints", "DELETE FROM ledger_nodes WHERE idx >= 0 AND level > 0", "DELETE FROM ledger_entries WHERE seq >= 15")
    with env.factory() as session:
        session.close()
    # Rebuild the nodes for the 15 remaining entries so the database looks self-consistent.
    leaves = _leaves(env)
    frontier = merkle.Frontier()
    nodes = [n for leaf in leaves for n in frontier.append(leaf)]
    env.tamper(*[("INSERT INTO ledger_nodes (level, idx, hash) VALUES (:l, :i, :h)", {"l": l, "i": i, "h": h}) for l, i, h in nodes])
    assert env.verify().ok  # nothing inside the database shows it …
    report = env.verify(trusted=[published])
    assert not report.ok and report.first_bad_seq == 15 and "truncated" in report.problems[0].reason


def test_migration_installs_the_guards(db_url: str) -> None:
    from alembic import command

    from canteen_watch.db.base import make_engine
    from canteen_watch.db.migrate import alembic_config, upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_entries (seq, ts, actor, action, subject, payload, prev_hash, entry_hash) "
                "VALUES (0, 't', 'a', 'x', 's', '{}', 'p', 'h')"
            )
        )
    with pytest.raises((IntegrityError, DBAPIError)):
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM ledger_entries"))
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001_core")
    with engine.connect() as connection:
        from sqlalchemy import inspect

        assert "ledger_entries" not in inspect(connection).get_table_names()
    upgrade(engine)
    engine.dispose()
