"""RFC 6962 / RFC 9162 Merkle tree: hashes, proofs and their verification.

Pure functions over SHA-256 and the standard library only (the offline verifier imports this).

* leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``, the
  empty tree's root is ``SHA-256("")`` (RFC 9162 §2.1.1);
* a *node id* ``(level, index)`` names the complete subtree over leaves
  ``[index * 2**level, (index + 1) * 2**level)``; a ledger stores those for level >= 1, so a
  proof needs only O(log n) stored hashes (:func:`inclusion_ranges`,
  :func:`consistency_ranges`, :func:`range_node_ids`, :func:`assemble_proof`);
* :func:`verify_inclusion` and :func:`verify_consistency` follow the RFC 9162 §2.1.3.2 and
  §2.1.4.2 algorithms step by step and check every path element: a proof with a missing, an
  extra or an altered element, a wrong index or a wrong size is rejected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
Range = tuple[int, int]

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof does not verify, or its parameters are invalid."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash of ``data``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return _sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (``size`` >= 2)."""
    if size < 2:
        raise ValueError("split point needs a size of at least 2")
    return 1 << ((size - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash over a sequence of leaf hashes (iterative, O(n))."""
    frontier = Frontier()
    for value in leaf_hashes:
        frontier.append(value)
    return frontier.root()


def subtree_hash(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) computed from leaf hashes (reference implementation, recursive)."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if size == 1:
        return leaf_hashes[start]
    k = split_point(size)
    return node_hash(subtree_hash(leaf_hashes, start, start + k), subtree_hash(leaf_hashes, start + k, end))


# --------------------------------------------------------------------------------------------
# Which subtrees a proof consists of
# --------------------------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Leaf ranges whose hashes form PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf to root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    top_down: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            top_down.append((start + k, end))
            end = start + k
        else:
            top_down.append((start, start + k))
            start += k
    return top_down[::-1]


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """Leaf ranges whose hashes form PROOF(old, D[new]) (RFC 9162 §2.1.4.1), in proof order."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    top_down: list[Range] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                top_down.append((start, end))
            break
        k = split_point(n)
        if m <= k:
            top_down.append((start + k, end))
            end = start + k
        else:
            top_down.append((start, start + k))
            start += k
            m -= k
            complete = False
    return top_down[::-1]


def range_node_ids(start: int, end: int) -> list[NodeId]:
    """The complete subtrees that tile ``[start, end)``, largest first.

    For the ranges that occur in RFC 6962 proofs and roots (``start`` aligned to the range's
    size rounded up to a power of two) the tiles shrink left to right, so MTH(D[start:end]) is
    the right-to-left fold of their hashes (see :func:`fold_range`).
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or invalid range [{start}, {end})")
    ids: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        ids.append((level, start >> level))
        start += 1 << level
    return ids


def root_node_ids(size: int) -> list[NodeId]:
    """The complete subtrees whose fold is the root of a tree of ``size`` leaves."""
    return range_node_ids(0, size) if size else []


def fold_range(hashes: Sequence[bytes]) -> bytes:
    """Combine the tile hashes of :func:`range_node_ids` (largest first) into one subtree hash."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for value in reversed(hashes[:-1]):
        result = node_hash(value, result)
    return result


def proof_node_ids(ranges: Iterable[Range]) -> set[NodeId]:
    """Every stored node needed to assemble a proof made of ``ranges``."""
    needed: set[NodeId] = set()
    for start, end in ranges:
        needed.update(range_node_ids(start, end))
    return needed


def assemble_proof(ranges: Iterable[Range], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Turn proof ranges into hashes, given the stored hashes of :func:`proof_node_ids`."""
    return [fold_range([nodes[node] for node in range_node_ids(start, end)]) for start, end in ranges]


def _leaf_lookup(leaf_hashes: Sequence[bytes]) -> Callable[[Range], bytes]:
    return lambda r: subtree_hash(leaf_hashes, r[0], r[1])


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof computed from in-memory leaf hashes (for tests and small trees)."""
    if size > len(leaf_hashes):
        raise ProofError(f"tree size {size} exceeds the {len(leaf_hashes)} leaves given")
    lookup = _leaf_lookup(leaf_hashes)
    return [lookup(r) for r in inclusion_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof computed from in-memory leaf hashes (for tests and small trees)."""
    if new_size > len(leaf_hashes):
        raise ProofError(f"tree size {new_size} exceeds the {len(leaf_hashes)} leaves given")
    lookup = _leaf_lookup(leaf_hashes)
    return [lookup(r) for r in consistency_ranges(old_size, new_size)]


# --------------------------------------------------------------------------------------------
# Incremental tree (compact range over [0, size))
# --------------------------------------------------------------------------------------------


class Frontier:
    """The right edge of a growing tree: the roots of its complete subtrees, largest first.

    ``append`` returns the interior nodes that the new leaf completes, so a store can persist
    every complete subtree hash as it appears.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} needs {bin(size).count('1')} hashes, got {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    @staticmethod
    def node_ids(size: int) -> list[NodeId]:
        """Node ids of the frontier of a tree with ``size`` leaves (largest first)."""
        return root_node_ids(size)

    def copy(self) -> "Frontier":
        return Frontier(self.size, self.hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; return ``(level, index, hash)`` of each interior node it completes."""
        n = self.size
        hashes = self.hashes
        hashes.append(leaf)
        completed: list[tuple[int, int, bytes]] = []
        level = 0
        while (n >> level) & 1:
            right = hashes.pop()
            left = hashes.pop()
            level += 1
            value = _sha256(b"\x01" + left + right).digest()
            hashes.append(value)
            completed.append((level, n >> level, value))
        self.size = n + 1
        return completed

    def root(self) -> bytes:
        """Root hash of the tree so far."""
        return fold_range(self.hashes)


# --------------------------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2 and §2.1.4.2)
# --------------------------------------------------------------------------------------------


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")
    return bytes(value)


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer")
    return value


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Run RFC 9162 §2.1.3.2 and return the root it implies; raises on a malformed proof."""
    index = _check_size(index, "leaf index")
    size = _check_size(size, "tree size")
    leaf = _check_hash(leaf, "leaf hash")
    path = [_check_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]
    # 1. leaf_index must be < tree_size.
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    # 2.-3.
    fn, sn, r = index, size - 1, leaf
    # 4.
    for p in path:
        if sn == 0:
            raise ProofError("proof has more elements than the tree size allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # 5.
    if sn != 0:
        raise ProofError("proof has fewer elements than the tree size requires")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows leaf ``index`` is in the tree ``(size, root)``."""
    root = _check_hash(root, "root hash")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows tree ``old`` is a prefix of tree ``new``."""
    old_size = _check_size(old_size, "old tree size")
    new_size = _check_size(new_size, "new tree size")
    path = [_check_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if path:
            raise ProofError("proof between equal sizes must be empty")
        if _check_hash(old_root, "old root") != _check_hash(new_root, "new root"):
            raise ProofError("roots differ for the same tree size")
        return
    if old_size == 0:
        # Every tree is consistent with the empty tree; the proof must be empty (RFC 9162 §2.1.4).
        if path:
            raise ProofError("proof from the empty tree must be empty")
        _check_hash(new_root, "new root")
        return
    old_root = _check_hash(old_root, "old root")
    new_root = _check_hash(new_root, "new root")
    # 1. An empty path for 0 < first < second is invalid.
    if not path:
        raise ProofError("consistency proof is empty")
    # 2. If first is an exact power of two, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        path = [old_root, *path]
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof has more elements than the sizes allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise ProofError("proof has fewer elements than the sizes require")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
