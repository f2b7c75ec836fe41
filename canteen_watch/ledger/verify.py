"""Full replay of a ledger: hash chain, Merkle tree, every checkpoint.

:class:`Replay` is the database-free core: feed it entry rows in seq order, the stored node rows
ordered by ``(level, idx)`` and the checkpoint rows, and it names the first bad seq and why.
:func:`verify_ledger` streams those rows from the database.

What is checked:

* seq numbers are contiguous from 0 (a deleted row shows as missing seq);
* each entry's content hashes to its stored ``entry_hash`` (one changed byte in any field);
* each ``prev_hash`` is the ``entry_hash`` of the entry before (reordered or re-linked rows);
* evidence references and corrections are well formed;
* every stored Merkle node equals the one recomputed from the entries; none is missing or extra;
* every checkpoint is signed by the trusted key, its columns match its note, its size does not
  exceed the log (a truncated log) and its root equals the recomputed root at its size; sizes
  grow with checkpoint order;
* every externally trusted checkpoint (e.g. the regulator's published day files) likewise.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _jstr  # type: ignore[attr-defined]
from typing import Any

from canteen_watch.ledger import merkle
from canteen_watch.ledger.checkpoint import NoteError, NoteVerifier, SignedCheckpoint, open_checkpoint
from canteen_watch.ledger.entry import ENTRY_VERSION, GENESIS_PREV_HASH, TS_FORMAT, is_hex64

_sha256 = hashlib.sha256

# Column order of entry rows fed to Replay.feed_entries.
ENTRY_COLUMNS = (
    "seq",
    "ts",
    "actor",
    "action",
    "subject",
    "payload",
    "evidence_bucket",
    "evidence_key",
    "evidence_version_id",
    "evidence_sha256",
    "corrects",
    "prev_hash",
    "entry_hash",
)
NODE_COLUMNS = ("level", "idx", "hash")
CHECKPOINT_COLUMNS = ("id", "tree_size", "root_hash", "origin", "key_id", "note", "created_at")


@dataclass(frozen=True)
class Problem:
    """One failed check. ``seq`` is the first entry it concerns (None if none in particular)."""

    seq: int | None
    kind: str
    reason: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "ledger"
        return f"{where}: [{self.kind}] {self.reason}"


@dataclass
class VerifyReport:
    """Outcome of a replay."""

    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoints_checked: int = 0
    trusted_checked: int = 0
    latest_checkpoint_size: int | None = None
    elapsed_s: float = 0.0
    truncated_problems: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    @property
    def first_problem(self) -> Problem | None:
        if not self.problems:
            return None
        with_seq = [p for p in self.problems if p.seq is not None]
        return min(with_seq, key=lambda p: p.seq) if with_seq else self.problems[0]  # type: ignore[arg-type,return-value]

    def summary(self) -> str:
        if self.ok:
            cp = f", latest checkpoint at size {self.latest_checkpoint_size}" if self.latest_checkpoint_size is not None else ""
            return (
                f"OK: {self.size} entries, chain and Merkle tree intact, {self.checkpoints_checked} checkpoints"
                f" and {self.trusted_checked} trusted checkpoints verified{cp}; root {self.root.hex()}"
            )
        first = self.first_problem
        head = f"FAIL: first bad seq {self.first_bad_seq}" if self.first_bad_seq is not None else "FAIL"
        return f"{head}: {first.reason if first else ''} ({len(self.problems)} problem(s))"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "first_bad_seq": self.first_bad_seq,
            "problems": [{"seq": p.seq, "kind": p.kind, "reason": p.reason} for p in self.problems],
            "warnings": self.warnings,
            "checkpoints_checked": self.checkpoints_checked,
            "trusted_checked": self.trusted_checked,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _opt(value: str | None) -> str:
    return "null" if value is None else _jstr(value)


class Replay:
    """Streaming replay of entries, nodes and checkpoints (no database needed).

    Args:
        verifier: Trusted checkpoint key; None means checkpoint signatures cannot be checked,
            which is itself reported as a problem when there are checkpoints.
        trusted: Checkpoints obtained outside the database (notes), checked like stored ones.
        max_problems: Stop recording after this many problems.
    """

    def __init__(self, verifier: NoteVerifier | None, trusted: Sequence[str] = (), max_problems: int = 1000) -> None:
        self.verifier = verifier
        self.trusted = list(trusted)
        self.max_problems = max_problems
        self.report = VerifyReport()
        self._levels: list[bytearray] = [bytearray()]
        self._ts: list[str] = []
        self._flagged_seqs: list[int] = []
        self._misaligned_from: int | None = None
        self._started = time.perf_counter()

    # -------------------------------------------------------------- problems

    def problem(self, seq: int | None, kind: str, reason: str) -> None:
        if len(self.report.problems) >= self.max_problems:
            self.report.truncated_problems = True
            return
        self.report.problems.append(Problem(seq, kind, reason))
        if seq is not None and kind in ("entry", "chain", "missing", "order"):
            bisect.insort(self._flagged_seqs, seq)

    def _flagged_in(self, start: int, end: int) -> bool:
        if self._misaligned_from is not None and end > self._misaligned_from:
            return True  # a consequence of rows missing or out of place, already reported
        i = bisect.bisect_left(self._flagged_seqs, start)
        return i < len(self._flagged_seqs) and self._flagged_seqs[i] < end

    # -------------------------------------------------------------- entries

    def feed_entries(self, rows: Iterable[Sequence[Any]]) -> None:
        """Feed entry rows (columns :data:`ENTRY_COLUMNS`) in seq order."""
        leaves = self._levels[0]
        position = len(leaves) // 32  # leaf index in the tree: rows are positional
        expected = getattr(self, "_next_seq", position)  # the seq the next row should carry
        prev_stored = GENESIS_PREV_HASH if position == 0 else getattr(self, "_prev_stored", GENESIS_PREV_HASH)
        prev_ts = self._ts[-1] if self._ts else ""
        ts_list = self._ts
        problem = self.problem
        version = str(ENTRY_VERSION)
        for row in rows:
            try:
                seq, ts, actor, action, subject, payload, bucket, key, version_id, sha, corrects, prev_hash, entry_hash = row
            except (TypeError, ValueError):
                problem(position, "entry", "row does not have the entry columns")
                continue
            if not isinstance(seq, int) or isinstance(seq, bool):
                problem(position, "entry", f"seq {seq!r} is not an integer")
                where = position
            else:
                if seq != position and self._misaligned_from is None:
                    self._misaligned_from = position  # later leaves sit at shifted positions
                if seq > expected:
                    problem(expected, "missing", f"entries {expected}..{seq - 1} are missing (deleted rows?)")
                    where = seq
                elif seq < expected:
                    problem(position, "order", f"row with seq {seq} found where seq {expected} was expected (reordered rows?)")
                    where = position
                else:
                    where = seq
                expected = max(expected, seq + 1)
            # The tree is positional: leaf `position` is this row, whatever its seq says.
            try:
                if bucket is None and key is None and sha is None and version_id is None:
                    ev = "null"
                else:
                    ev = '{"bucket":' + _opt(bucket) + ',"key":' + _opt(key) + ',"sha256":' + _opt(sha) + ',"version_id":' + _opt(version_id) + "}"
                    if bucket is None or key is None or not is_hex64(sha):
                        problem(where, "entry", "evidence reference is incomplete or its sha256 is malformed")
                data = (
                    '{"action":' + _jstr(action)
                    + ',"actor":' + _jstr(actor)
                    + ',"corrects":' + ("null" if corrects is None else str(int(corrects)))
                    + ',"evidence":' + ev
                    + ',"payload":' + payload
                    + ',"prev_hash":' + _jstr(prev_hash)
                    + ',"seq":' + str(int(seq))
                    + ',"subject":' + _jstr(subject)
                    + ',"ts":' + _jstr(ts)
                    + ',"v":' + version + "}"
                ).encode("utf-8")
            except (TypeError, ValueError, UnicodeEncodeError) as exc:
                problem(where, "entry", f"entry cannot be serialised ({type(exc).__name__}: {exc})")
                data = repr(row).encode("utf-8", "replace")
            digest = _sha256(b"\x00" + data).digest()
            hexdigest = digest.hex()
            if hexdigest != entry_hash:
                problem(where, "entry", f"content does not match its entry_hash (stored {str(entry_hash)[:16]}…, recomputed {hexdigest[:16]}…)")
            if prev_hash != prev_stored:
                problem(where, "chain", "prev_hash is not the entry_hash of the entry before (chain broken: row changed, reordered or removed)")
            if isinstance(corrects, int) and not 0 <= corrects < position:
                problem(where, "entry", f"corrects={corrects} does not name an earlier entry")
            if isinstance(ts, str):
                if len(ts) != 27 or ts < prev_ts:
                    problem(where, "order", f"timestamp {ts!r} is malformed or earlier than the previous entry's {prev_ts!r}")
                prev_ts = ts
            leaves += digest
            ts_list.append(ts if isinstance(ts, str) else "")
            prev_stored = entry_hash
            position += 1
        self._prev_stored = prev_stored
        self._next_seq = expected

    # -------------------------------------------------------------- tree

    def _build_levels(self) -> None:
        levels = self._levels
        del levels[1:]
        current = levels[0]
        while len(current) >= 64:
            count = len(current) // 64
            view = memoryview(current)
            parts = [_sha256(b"\x01" + view[64 * j : 64 * j + 64].tobytes()).digest() for j in range(count)]
            current = bytearray(b"".join(parts))
            levels.append(current)

    def node(self, level: int, idx: int) -> bytes:
        return bytes(self._levels[level][32 * idx : 32 * idx + 32])

    def root_at(self, size: int) -> bytes:
        return merkle.fold_range([self.node(level, idx) for level, idx in merkle.root_node_ids(size)])

    def feed_nodes(self, rows: Iterable[Sequence[Any]]) -> None:
        """Compare stored nodes (columns :data:`NODE_COLUMNS`, ordered by level, idx) with the replay."""
        self._build_levels()
        levels = self._levels
        counts = [len(level) // 32 for level in levels]
        seen_level, seen_next = 1, 0  # next expected (level, idx)

        def report_missing(upto_level: int, upto_idx: int) -> None:
            nonlocal seen_level, seen_next
            while (seen_level, seen_next) < (upto_level, upto_idx):
                if seen_level >= len(counts):
                    return
                if seen_next < counts[seen_level]:
                    start = seen_next << seen_level
                    if not self._flagged_in(start, start + (1 << seen_level)):
                        self.problem(start, "tree", f"stored Merkle node (level {seen_level}, index {seen_next}) is missing")
                    if seen_level == upto_level:
                        # report one missing run per level, then jump
                        seen_next = upto_idx
                        continue
                    seen_level, seen_next = seen_level + 1, 0
                else:
                    seen_level, seen_next = seen_level + 1, 0

        for row in rows:
            try:
                level, idx, value = row
                level, idx, value = int(level), int(idx), bytes(value)
            except (TypeError, ValueError):
                self.problem(None, "tree", f"malformed node row {row!r}")
                continue
            if level < 1 or idx < 0:
                self.problem(None, "tree", f"unexpected node (level {level}, index {idx})")
                continue
            report_missing(level, idx)
            start = idx << level
            if level >= len(counts) or idx >= counts[level]:
                if self._flagged_in(start, start + (1 << level)):
                    seen_level, seen_next = level, idx + 1
                    continue
                self.problem(max(start, counts[0]), "tree", f"stored Merkle node (level {level}, index {idx}) covers seq {start}..{start + (1 << level) - 1} beyond the log's {counts[0]} entries (truncated log?)")
            elif value != levels[level][32 * idx : 32 * idx + 32]:
                if not self._flagged_in(start, start + (1 << level)):
                    self.problem(start, "tree", f"stored Merkle node (level {level}, index {idx}) over seq {start}..{start + (1 << level) - 1} differs from the recomputed one")
            seen_level, seen_next = level, idx + 1
        report_missing(len(counts), 0)

    # -------------------------------------------------------------- checkpoints

    def feed_checkpoints(self, rows: Iterable[Sequence[Any]]) -> None:
        """Check stored checkpoints (columns :data:`CHECKPOINT_COLUMNS`, ordered by id)."""
        size = len(self._levels[0]) // 32
        if len(self._levels) == 1 and size >= 2:
            self._build_levels()
        previous_size = -1
        previous_time = ""
        good_sizes: list[int] = [0]
        rows = list(rows)
        for row in rows:
            try:
                cp_id, tree_size, root_hash, origin, key_id, note, created_at = row
            except (TypeError, ValueError):
                self.problem(None, "checkpoint", "malformed checkpoint row")
                continue
            label = f"checkpoint #{cp_id}"
            if self.verifier is None:
                self.problem(None, "checkpoint", f"{label}: no trusted public key given; cannot check its signature")
                continue
            try:
                cp = open_checkpoint(note, self.verifier)
            except NoteError as exc:
                self.problem(None, "checkpoint", f"{label} (size {tree_size}): {exc} (forged or re-signed?)")
                continue
            self.report.checkpoints_checked += 1
            if (tree_size, root_hash, origin, key_id) != (cp.size, cp.root.hex(), cp.origin, self.verifier.key_id.hex()):
                self.problem(None, "checkpoint", f"{label}: stored columns (size {tree_size}) differ from its signed note (size {cp.size})")
            if cp.size < previous_size:
                self.problem(None, "checkpoint", f"{label}: size {cp.size} is smaller than the previous checkpoint's {previous_size}")
            if isinstance(created_at, str) and created_at < previous_time:
                self.problem(None, "checkpoint", f"{label}: created_at {created_at} is earlier than the previous checkpoint's")
            if isinstance(created_at, str) and 0 < cp.size <= size and created_at < self._ts[cp.size - 1]:
                self.problem(None, "checkpoint", f"{label}: created_at {created_at} is earlier than the entries it covers")
            previous_size = max(previous_size, cp.size)
            previous_time = max(previous_time, created_at) if isinstance(created_at, str) else previous_time
            if self._check_root(cp, label, good_sizes):
                bisect.insort(good_sizes, cp.size)
            self.report.latest_checkpoint_size = max(self.report.latest_checkpoint_size or 0, cp.size)
        if not rows and not self.trusted:
            self.report.warnings.append("no checkpoints: a truncated log could not be detected")
        elif self.report.latest_checkpoint_size is not None and self.report.latest_checkpoint_size < size:
            self.report.warnings.append(
                f"entries {self.report.latest_checkpoint_size}..{size - 1} are not yet covered by a signed checkpoint"
            )
        for index, note in enumerate(self.trusted):
            label = f"trusted checkpoint {index + 1}"
            if self.verifier is None:
                self.problem(None, "checkpoint", f"{label}: no trusted public key given")
                continue
            try:
                cp = open_checkpoint(note, self.verifier)
            except NoteError as exc:
                self.problem(None, "checkpoint", f"{label}: {exc}")
                continue
            self.report.trusted_checked += 1
            self._check_root(cp, label, good_sizes)

    def _check_root(self, cp: SignedCheckpoint, label: str, good_sizes: list[int]) -> bool:
        size = len(self._levels[0]) // 32
        if cp.size > size:
            self.problem(size, "truncated", f"{label} signs {cp.size} entries but the log has only {size}: entries {size}..{cp.size - 1} were removed (truncated log)")
            return False
        if cp.size == 0:
            if cp.root != merkle.EMPTY_ROOT:
                self.problem(None, "checkpoint", f"{label}: empty tree with a non-empty root")
                return False
            return True
        if self.root_at(cp.size) != cp.root:
            lower = good_sizes[bisect.bisect_right(good_sizes, cp.size) - 1] if good_sizes else 0
            i = bisect.bisect_left(self._flagged_seqs, lower)
            first = self._flagged_seqs[i] if i < len(self._flagged_seqs) and self._flagged_seqs[i] < cp.size else lower
            self.problem(
                first,
                "checkpoint",
                f"{label} (size {cp.size}): recomputed root differs from the signed root; entries in {lower}..{cp.size - 1} were changed after signing",
            )
            return False
        return True

    # -------------------------------------------------------------- result

    def finish(self) -> VerifyReport:
        size = len(self._levels[0]) // 32
        if len(self._levels) == 1 and size >= 2:
            self._build_levels()
        self.report.size = size
        self.report.root = self.root_at(size) if size else merkle.EMPTY_ROOT
        self.report.problems.sort(key=lambda p: (p.seq is None, p.seq if p.seq is not None else 0))
        self.report.elapsed_s = time.perf_counter() - self._started
        return self.report


def verify_ledger(
    session: Any,
    verifier: NoteVerifier | None,
    *,
    trusted: Sequence[str] = (),
    max_problems: int = 1000,
    batch: int = 20000,
) -> VerifyReport:
    """Replay the whole ledger stored in the database of ``session`` (SQLAlchemy Session)."""
    from sqlalchemy import select

    from canteen_watch.ledger.models import checkpoints_table, entries_table, nodes_table

    replay = Replay(verifier, trusted, max_problems)
    e = entries_table.c
    query = select(*(getattr(e, name) for name in ENTRY_COLUMNS)).order_by(e.seq).execution_options(yield_per=batch)
    replay.feed_entries(session.execute(query))
    n = nodes_table.c
    replay.feed_nodes(session.execute(select(n.level, n.idx, n.hash).order_by(n.level, n.idx).execution_options(yield_per=batch)))
    c = checkpoints_table.c
    replay.feed_checkpoints(session.execute(select(*(getattr(c, name) for name in CHECKPOINT_COLUMNS)).order_by(c.id)))
    return replay.finish()


__all__ = ["Problem", "Replay", "VerifyReport", "verify_ledger", "TS_FORMAT"]
