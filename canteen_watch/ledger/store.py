"""The ledger service: serialised appends, roots, proofs and checkpoints over SQLAlchemy.

Usage (SQLite or PostgreSQL)::

    ledger = Ledger(signer=load_signer(key_dir))
    with write_transaction(factory) as session:          # BEGIN IMMEDIATE on SQLite
        entry = ledger.append(session, actor="system:pipeline", action="snapshot.stored",
                              subject="snapshot:cam-1@20261204T101500Z",
                              payload={"camera": "cam-1"}, evidence=stored_object)
    ledger.publish_pending(factory)                       # after commit

Appends are serialised: on PostgreSQL by ``pg_advisory_xact_lock`` taken in the caller's
transaction, on SQLite by the caller's ``BEGIN IMMEDIATE`` (:func:`canteen_watch.db.write_transaction`);
the primary key on ``seq`` is the backstop either way. All writes happen in the caller's
transaction, so an entry commits or rolls back together with the change it records.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.ledger import merkle
from canteen_watch.ledger.canonical import canonical_payload
from canteen_watch.ledger.checkpoint import (
    CheckpointPublisher,
    NoteError,
    NoteSigner,
    NoteVerifier,
    SignedCheckpoint,
    open_checkpoint,
    parse_checkpoint,
    parse_note,
    sign_checkpoint,
)
from canteen_watch.ledger.entry import (
    GENESIS_PREV_HASH,
    Entry,
    EntryError,
    Evidence,
    check_action,
    check_text_field,
    entry_hash_of,
    entry_text,
    evidence_json,
    format_ts,
)
from canteen_watch.ledger.models import checkpoints_table, entries_table, nodes_table

log = logging.getLogger(__name__)

#: Key of the PostgreSQL advisory lock that serialises appends ("cwledger" in ASCII).
PG_LOCK_KEY = 0x63776C6564676572


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (missing rows, bad parameters)."""


class LedgerInconsistent(LedgerError):
    """The stored tree disagrees with a signed checkpoint: nothing is signed."""


class Actions:
    """Action names used by canteen-watch (any ``[a-z][a-z0-9_.:-]*`` name is accepted)."""

    SNAPSHOT_STORED = "snapshot.stored"
    DETECTION = "detection.recorded"
    VIOLATION_OPENED = "violation.opened"
    VIOLATION_REVIEWED = "violation.reviewed"
    VIOLATION_RECTIFIED = "violation.rectified"
    VIOLATION_ESCALATED = "violation.escalated"
    VIOLATION_CLOSED = "violation.closed"
    CAMERA_OFFLINE = "camera.offline"
    CAMERA_ONLINE = "camera.online"
    REGISTRATION_CHANGED = "registration.changed"
    MODEL_PROMOTED = "model.promoted"
    CONFIG_CHANGED = "config.changed"
    USER_CHANGED = "user.changed"
    CORRECTION = "ledger.correction"


@dataclass(frozen=True)
class Event:
    """One event to append (for :meth:`Ledger.append_many`)."""

    actor: str
    action: str
    subject: str
    payload: Mapping[str, Any] | None = None
    evidence: Any = None
    corrects: int | None = None


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``seq`` is in the tree of ``tree_size`` leaves with root ``root``."""

    seq: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def verify(self) -> None:
        merkle.verify_inclusion(self.seq, self.tree_size, self.leaf_hash, self.path, self.root)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leaf_index": self.seq,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "root": self.root.hex(),
            "path": [p.hex() for p in self.path],
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``old_size`` leaves is a prefix of the tree of ``new_size`` leaves."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    path: tuple[bytes, ...]

    def verify(self) -> None:
        merkle.verify_consistency(self.old_size, self.new_size, self.old_root, self.new_root, self.path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": self.old_root.hex(),
            "new_root": self.new_root.hex(),
            "path": [p.hex() for p in self.path],
        }


@dataclass
class _Tip:
    size: int
    last_hash: str
    last_ts: str
    frontier: merkle.Frontier
    last_checkpoint_size: int = 0
    last_checkpoint_time: datetime | None = None


@dataclass
class _Prepared:
    row: dict[str, Any]
    entry: Entry


def _now() -> datetime:
    return datetime.now(timezone.utc)


def entry_from_row(row: Any) -> Entry:
    """Build an :class:`Entry` from a ``ledger_entries`` row (ORM object or Core row)."""
    m = row._mapping if hasattr(row, "_mapping") else row.__dict__
    evidence = None
    if m["evidence_sha256"] is not None or m["evidence_bucket"] is not None or m["evidence_key"] is not None:
        evidence = Evidence(
            bucket=m["evidence_bucket"], key=m["evidence_key"], sha256=m["evidence_sha256"], version_id=m["evidence_version_id"]
        )
    return Entry(
        seq=m["seq"],
        ts=m["ts"],
        actor=m["actor"],
        action=m["action"],
        subject=m["subject"],
        payload_json=m["payload"],
        evidence=evidence,
        corrects=m["corrects"],
        prev_hash=m["prev_hash"],
        entry_hash=m["entry_hash"],
    )


def checkpoint_from_row(row: Any) -> SignedCheckpoint:
    """The signed checkpoint of a ``ledger_checkpoints`` row, parsed from its note (unverified)."""
    m = row._mapping if hasattr(row, "_mapping") else row.__dict__
    body = parse_checkpoint(parse_note(m["note"])[0])
    return SignedCheckpoint(origin=body.origin, size=body.size, root=body.root, extensions=body.extensions, note=m["note"])


class Ledger:
    """Append-only, hash-chained, Merkle-tree ledger stored in SQL.

    Args:
        signer: Signs checkpoints; without one no checkpoint is made (verification still works).
        verifier: The trusted public key; defaults to the signer's.
        checkpoint_every: Make a checkpoint whenever the size crosses a multiple of this.
        checkpoint_interval: ...or when the last checkpoint is older than this and entries were added.
        publisher: Publishes checkpoints (day files / webhook) from :meth:`publish_pending`.
    """

    def __init__(
        self,
        *,
        signer: NoteSigner | None = None,
        verifier: NoteVerifier | None = None,
        checkpoint_every: int | None = 1000,
        checkpoint_interval: timedelta | None = timedelta(minutes=10),
        publisher: CheckpointPublisher | None = None,
    ) -> None:
        self.signer = signer
        self.verifier = verifier or (signer.verifier if signer else None)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.publisher = publisher
        self._tip: _Tip | None = None
        self._lock = threading.Lock()
        self._pending: list[SignedCheckpoint] = []

    # ------------------------------------------------------------------ locking and the tip

    @staticmethod
    def lock(session: Session) -> None:
        """Serialise appends: PostgreSQL advisory transaction lock (no-op elsewhere)."""
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})

    def _load_tip(self, session: Session) -> _Tip:
        last = session.execute(
            select(entries_table.c.seq, entries_table.c.entry_hash, entries_table.c.ts).order_by(entries_table.c.seq.desc()).limit(1)
        ).first()
        with self._lock:
            cached = self._tip
        if last is None:
            size, last_hash, last_ts = 0, GENESIS_PREV_HASH, ""
        else:
            size, last_hash, last_ts = last.seq + 1, last.entry_hash, last.ts
        if cached is not None and cached.size == size and cached.last_hash == last_hash:
            return _Tip(
                size=size,
                last_hash=last_hash,
                last_ts=last_ts,
                frontier=cached.frontier.copy(),
                last_checkpoint_size=cached.last_checkpoint_size,
                last_checkpoint_time=cached.last_checkpoint_time,
            )
        ids = merkle.Frontier.node_ids(size)
        nodes = self._fetch_nodes(session, ids)
        frontier = merkle.Frontier(size, [nodes[i] for i in ids])
        cp = session.execute(
            select(checkpoints_table.c.tree_size, checkpoints_table.c.created_at).order_by(checkpoints_table.c.tree_size.desc()).limit(1)
        ).first()
        cp_time = None
        if cp is not None:
            try:
                cp_time = datetime.strptime(cp.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            except ValueError:
                cp_time = None
        return _Tip(size, last_hash, last_ts, frontier, cp.tree_size if cp else 0, cp_time)

    def _fetch_nodes(self, session: Session, ids: Iterable[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        ids = set(ids)
        found: dict[merkle.NodeId, bytes] = {}
        leaves = [idx for level, idx in ids if level == 0]
        inner = [(level, idx) for level, idx in ids if level > 0]
        if leaves:
            for seq, value in session.execute(
                select(entries_table.c.seq, entries_table.c.entry_hash).where(entries_table.c.seq.in_(leaves))
            ):
                try:
                    found[(0, seq)] = bytes.fromhex(value)
                except ValueError:
                    raise LedgerError(f"entry {seq} has a malformed entry_hash") from None
        if inner:
            # One "level = ? AND idx IN (…)" term per level: both SQLite and PostgreSQL use the
            # primary key for it (SQLite scans the table for a row-value IN over VALUES).
            by_level: dict[int, list[int]] = {}
            for level, idx in inner:
                by_level.setdefault(level, []).append(idx)
            condition = or_(*(and_(nodes_table.c.level == level, nodes_table.c.idx.in_(idxs)) for level, idxs in sorted(by_level.items())))
            for level, idx, value in session.execute(select(nodes_table.c.level, nodes_table.c.idx, nodes_table.c.hash).where(condition)):
                found[(level, idx)] = bytes(value)
        missing = ids - found.keys()
        if missing:
            level, idx = min(missing, key=lambda n: (n[1] << n[0], n[0]))
            raise LedgerError(f"stored tree is missing node (level {level}, index {idx}) covering seq {idx << level}")
        return found

    # ------------------------------------------------------------------ appends

    def _prepare(self, event: Event, seq: int, ts: str, prev_hash: str) -> _Prepared:
        actor = check_text_field("actor", event.actor, 200)
        if "@" in actor:
            raise EntryError("actor looks like an e-mail address: use a role, an id or salted_hash(...)")
        action = check_action(event.action)
        subject = check_text_field("subject", event.subject, 200)
        payload_json = canonical_payload(dict(event.payload) if event.payload is not None else None)
        evidence = Evidence.coerce(event.evidence)
        corrects = event.corrects
        if corrects is not None:
            if isinstance(corrects, bool) or not isinstance(corrects, int) or not 0 <= corrects < seq:
                raise EntryError(f"corrects={corrects!r} must name an earlier entry (0 <= corrects < {seq})")
        ev_text = "null" if evidence is None else evidence_json(evidence.bucket, evidence.key, evidence.sha256, evidence.version_id)
        leaf = entry_text(
            seq=seq,
            ts=ts,
            actor=actor,
            action=action,
            subject=subject,
            payload_json=payload_json,
            evidence=ev_text,
            corrects=corrects,
            prev_hash=prev_hash,
        ).encode("utf-8")
        digest = entry_hash_of(leaf)
        entry = Entry(
            seq=seq,
            ts=ts,
            actor=actor,
            action=action,
            subject=subject,
            payload_json=payload_json,
            evidence=evidence,
            corrects=corrects,
            prev_hash=prev_hash,
            entry_hash=digest,
        )
        row = {
            "seq": seq,
            "ts": ts,
            "actor": actor,
            "action": action,
            "subject": subject,
            "payload": payload_json,
            "evidence_bucket": evidence.bucket if evidence else None,
            "evidence_key": evidence.key if evidence else None,
            "evidence_version_id": evidence.version_id if evidence else None,
            "evidence_sha256": evidence.sha256 if evidence else None,
            "corrects": corrects,
            "prev_hash": prev_hash,
            "entry_hash": digest,
        }
        return _Prepared(row=row, entry=entry)

    def append(
        self,
        session: Session,
        *,
        actor: str,
        action: str,
        subject: str,
        payload: Mapping[str, Any] | None = None,
        evidence: Any = None,
        corrects: int | None = None,
    ) -> Entry:
        """Append one entry in the caller's transaction and return it.

        ``evidence`` is an :class:`Evidence`, a ``StoredObject`` or a dict with bucket, key,
        sha256 and optional version_id. ``corrects`` is the seq of an earlier entry this one
        corrects (entries are never changed; a correction is a new entry).
        """
        return self.append_many(
            session, [Event(actor=actor, action=action, subject=subject, payload=payload, evidence=evidence, corrects=corrects)]
        )[0]

    def append_many(self, session: Session, events: Iterable[Event | Mapping[str, Any]]) -> list[Entry]:
        """Append several entries in one go (one lock, one multi-row insert); returns them in order."""
        items = [e if isinstance(e, Event) else Event(**e) for e in events]
        if not items:
            return []
        self.lock(session)
        tip = self._load_tip(session)
        frontier = tip.frontier  # already a private copy
        now = format_ts(_now())
        ts = max(now, tip.last_ts)  # never earlier than the previous entry
        prev_hash = tip.last_hash
        rows: list[dict[str, Any]] = []
        node_rows: list[dict[str, Any]] = []
        entries: list[Entry] = []
        seq = tip.size
        for item in items:
            prepared = self._prepare(item, seq, ts, prev_hash)
            rows.append(prepared.row)
            entries.append(prepared.entry)
            for level, idx, value in frontier.append(bytes.fromhex(prepared.entry.entry_hash)):
                node_rows.append({"level": level, "idx": idx, "hash": value})
            prev_hash = prepared.entry.entry_hash
            seq += 1
        session.execute(insert(entries_table), rows)
        if node_rows:
            session.execute(insert(nodes_table), node_rows)
        new_tip = _Tip(
            size=seq,
            last_hash=prev_hash,
            last_ts=ts,
            frontier=frontier,
            last_checkpoint_size=tip.last_checkpoint_size,
            last_checkpoint_time=tip.last_checkpoint_time,
        )
        if self._checkpoint_due(tip.size, new_tip):
            try:
                checkpoint = self._make_checkpoint(session, new_tip)
            except LedgerInconsistent as exc:
                # Keep recording evidence, but never sign over an inconsistent tree.
                log.error("ledger checkpoint refused: %s (run `canteen-watch ledger verify`)", exc)
                checkpoint = None
            if checkpoint is not None:
                new_tip.last_checkpoint_size = checkpoint.size
                new_tip.last_checkpoint_time = _now()
        with self._lock:
            self._tip = _Tip(
                new_tip.size,
                new_tip.last_hash,
                new_tip.last_ts,
                new_tip.frontier.copy(),
                new_tip.last_checkpoint_size,
                new_tip.last_checkpoint_time,
            )
        return entries

    def _checkpoint_due(self, old_size: int, tip: _Tip) -> bool:
        if self.signer is None or tip.size == tip.last_checkpoint_size:
            return False
        every = self.checkpoint_every
        if every and tip.size // every > old_size // every:
            return True
        if self.checkpoint_interval is not None:
            if tip.last_checkpoint_time is None or _now() - tip.last_checkpoint_time >= self.checkpoint_interval:
                return True
        return False

    # ------------------------------------------------------------------ reads

    def size(self, session: Session) -> int:
        """Number of entries."""
        last = session.execute(select(func.max(entries_table.c.seq))).scalar()
        return 0 if last is None else last + 1

    def entry(self, session: Session, seq: int) -> Entry:
        row = session.execute(select(entries_table).where(entries_table.c.seq == seq)).first()
        if row is None:
            raise LedgerError(f"no entry with seq {seq}")
        return entry_from_row(row)

    def entries(self, session: Session, start: int = 0, end: int | None = None, *, batch: int = 5000) -> Iterator[Entry]:
        """Entries with ``start <= seq < end`` in order."""
        query = select(entries_table).where(entries_table.c.seq >= start).order_by(entries_table.c.seq)
        if end is not None:
            query = query.where(entries_table.c.seq < end)
        for row in session.execute(query.execution_options(yield_per=batch)):
            yield entry_from_row(row)

    def history(self, session: Session, *subjects: str) -> list[Entry]:
        """Entries about ``subjects`` (e.g. ``"violation:17"``) and their corrections, in seq order."""
        rows = {r.seq: r for r in session.execute(select(entries_table).where(entries_table.c.subject.in_(subjects)))}
        if rows:
            for r in session.execute(select(entries_table).where(entries_table.c.corrects.in_(list(rows)))):
                rows.setdefault(r.seq, r)
        return [entry_from_row(rows[seq]) for seq in sorted(rows)]

    def root(self, session: Session, size: int | None = None) -> bytes:
        """Merkle root of the first ``size`` entries (default: all), from O(log n) stored nodes."""
        if size is None:
            size = self.size(session)
        if size == 0:
            return merkle.EMPTY_ROOT
        current = self.size(session)
        if not 0 < size <= current:
            raise LedgerError(f"tree size {size} is outside 0..{current}")
        ids = merkle.root_node_ids(size)
        nodes = self._fetch_nodes(session, ids)
        return merkle.fold_range([nodes[i] for i in ids])

    def inclusion_proof(self, session: Session, seq: int, size: int | None = None) -> InclusionProof:
        """Inclusion proof of entry ``seq`` in the tree of ``size`` entries (default: all)."""
        current = self.size(session)
        if size is None:
            size = current
        if not 0 < size <= current:
            raise LedgerError(f"tree size {size} is outside 1..{current}")
        if not 0 <= seq < size:
            raise LedgerError(f"seq {seq} is not in a tree of size {size}")
        ranges = merkle.inclusion_ranges(seq, size)
        root_ids = merkle.root_node_ids(size)
        nodes = self._fetch_nodes(session, merkle.proof_node_ids(ranges) | set(root_ids) | {(0, seq)})
        path = merkle.assemble_proof(ranges, nodes)
        root = merkle.fold_range([nodes[i] for i in root_ids])
        return InclusionProof(seq=seq, tree_size=size, leaf_hash=nodes[(0, seq)], path=tuple(path), root=root)

    def consistency_proof(self, session: Session, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Consistency proof from tree size ``old_size`` to ``new_size`` (default: all)."""
        current = self.size(session)
        if new_size is None:
            new_size = current
        if not 0 <= old_size <= new_size <= current:
            raise LedgerError(f"need 0 <= old ({old_size}) <= new ({new_size}) <= size ({current})")
        ranges = merkle.consistency_ranges(old_size, new_size)
        old_ids = merkle.root_node_ids(old_size)
        new_ids = merkle.root_node_ids(new_size)
        nodes = self._fetch_nodes(session, merkle.proof_node_ids(ranges) | set(old_ids) | set(new_ids))
        return ConsistencyProof(
            old_size=old_size,
            new_size=new_size,
            old_root=merkle.fold_range([nodes[i] for i in old_ids]),
            new_root=merkle.fold_range([nodes[i] for i in new_ids]),
            path=tuple(merkle.assemble_proof(ranges, nodes)),
        )

    # ------------------------------------------------------------------ checkpoints

    def latest_checkpoint(self, session: Session, *, verify: bool = True) -> SignedCheckpoint | None:
        """The checkpoint with the largest tree size (signature checked when a verifier is set)."""
        row = session.execute(select(checkpoints_table).order_by(checkpoints_table.c.tree_size.desc()).limit(1)).first()
        if row is None:
            return None
        if verify and self.verifier is not None:
            return open_checkpoint(row.note, self.verifier)
        return checkpoint_from_row(row)

    def checkpoints(self, session: Session) -> list[SignedCheckpoint]:
        """All stored checkpoints, oldest first (parsed, not verified)."""
        return [checkpoint_from_row(r) for r in session.execute(select(checkpoints_table).order_by(checkpoints_table.c.tree_size))]

    def checkpoint(self, session: Session) -> SignedCheckpoint | None:
        """Make a checkpoint now (on demand) unless the latest one already covers every entry.

        Returns the new or the existing up-to-date checkpoint (None for an empty ledger). Raises
        :class:`LedgerInconsistent` (and signs nothing) if the stored tree does not extend the
        previous checkpoint.
        """
        if self.signer is None:
            raise LedgerError("no signing key: cannot make a checkpoint")
        self.lock(session)
        tip = self._load_tip(session)
        made = self._make_checkpoint(session, tip)
        if made is None and tip.size:
            return self.latest_checkpoint(session)
        return made

    def maybe_checkpoint(self, session: Session) -> SignedCheckpoint | None:
        """Make a checkpoint if the interval has passed and entries were added (for a scheduler)."""
        if self.signer is None:
            return None
        self.lock(session)
        tip = self._load_tip(session)
        if tip.size == tip.last_checkpoint_size:
            return None
        if self.checkpoint_interval is not None and tip.last_checkpoint_time is not None:
            if _now() - tip.last_checkpoint_time < self.checkpoint_interval:
                return None
        return self._make_checkpoint(session, tip)

    def _make_checkpoint(self, session: Session, tip: _Tip) -> SignedCheckpoint | None:
        assert self.signer is not None
        size = tip.size
        if size == 0:
            return None
        root = self.root(session, size)  # from the stored nodes, not the cached frontier
        if root != tip.frontier.root():
            raise LedgerInconsistent(f"stored tree root at size {size} differs from the appended frontier")
        previous = session.execute(select(checkpoints_table).order_by(checkpoints_table.c.tree_size.desc()).limit(1)).first()
        if previous is not None:
            try:
                if self.verifier is not None and previous.key_id == self.verifier.key_id.hex():
                    prev = open_checkpoint(previous.note, self.verifier)
                else:  # signed by an earlier key: its body still binds the earlier tree
                    prev = checkpoint_from_row(previous)
            except NoteError as exc:
                raise LedgerInconsistent(f"previous checkpoint #{previous.id} does not verify: {exc}") from None
            if prev.size > size:
                raise LedgerInconsistent(f"previous checkpoint has size {prev.size} but the log has only {size} entries")
            if prev.size == size:
                if prev.root != root:
                    raise LedgerInconsistent(f"root at size {size} differs from the signed checkpoint #{previous.id}")
                return None
            proof = self.consistency_proof(session, prev.size, size)
            try:
                merkle.verify_consistency(prev.size, size, prev.root, root, proof.path)
            except merkle.ProofError as exc:
                raise LedgerInconsistent(
                    f"log at size {size} is not consistent with checkpoint #{previous.id} (size {prev.size}): {exc}"
                ) from None
        signed = sign_checkpoint(self.signer, size, root)
        open_checkpoint(signed.note, self.signer.verifier)  # self-check before storing
        session.execute(
            insert(checkpoints_table),
            {
                "tree_size": size,
                "root_hash": root.hex(),
                "origin": signed.origin,
                "key_id": self.signer.key_id.hex(),
                "note": signed.note,
                "created_at": max(format_ts(_now()), tip.last_ts),
            },
        )
        if self.publisher is not None:
            with self._lock:
                self._pending.append(signed)
        log.info("ledger checkpoint signed: size %d root %s", size, base64.b64encode(root).decode())
        return signed

    # ------------------------------------------------------------------ publication

    def publish_pending(self, factory: sessionmaker[Session] | None = None) -> list[dict[str, object]]:
        """Publish checkpoints made since the last call; call after the transaction committed.

        With ``factory``, each checkpoint is first looked up in the database and skipped if its
        transaction was rolled back (a published checkpoint that is not in the log would look
        like a fork).
        """
        with self._lock:
            pending, self._pending = self._pending, []
        results: list[dict[str, object]] = []
        if self.publisher is None:
            return results
        for checkpoint in pending:
            if factory is not None:
                with factory() as session:
                    stored = session.execute(
                        select(checkpoints_table.c.note).where(checkpoints_table.c.tree_size == checkpoint.size)
                    ).scalar()
                if stored != checkpoint.note:
                    log.warning("checkpoint at size %d was rolled back; not published", checkpoint.size)
                    continue
            results.append(self.publisher.publish(checkpoint))
        return results

    def discard_pending(self) -> None:
        """Forget unpublished checkpoints (after a rollback)."""
        with self._lock:
            self._pending = []


def record_event(
    session: Session,
    ledger: Ledger,
    *,
    actor: str,
    action: str,
    subject: str,
    payload: Mapping[str, Any] | None = None,
    evidence: Any = None,
) -> Entry:
    """Append one pipeline event to the ledger in the caller's transaction.

    ``subject`` names what the event is about (``violation:17``, ``camera:cam-1``,
    ``snapshot:cam-1@20261204T101500Z``; ``ledger export --violation 17`` selects subject
    ``violation:17``). Keep personal data out: use ids, roles or :func:`salted_hash` values.
    """
    return ledger.append(session, actor=actor, action=action, subject=subject, payload=payload, evidence=evidence)


def correct_entry(
    session: Session,
    ledger: Ledger,
    seq: int,
    *,
    actor: str,
    reason: str,
    payload: Mapping[str, Any] | None = None,
    evidence: Any = None,
) -> Entry:
    """Append a correction of entry ``seq`` (same subject, action ``ledger.correction``)."""
    original = ledger.entry(session, seq)
    body = {"reason": reason, "corrected_action": original.action, **(dict(payload) if payload else {})}
    return ledger.append(
        session, actor=actor, action=Actions.CORRECTION, subject=original.subject, payload=body, evidence=evidence, corrects=seq
    )


__all__ = [
    "Actions",
    "ConsistencyProof",
    "Event",
    "InclusionProof",
    "Ledger",
    "LedgerError",
    "LedgerInconsistent",
    "checkpoint_from_row",
    "correct_entry",
    "entry_from_row",
    "record_event",
]

