"""RFC 6962 / RFC 9162 Merkle tree: published test vectors, proof shapes, malformed proofs."""

from __future__ import annotations

import hashlib
import random

import pytest

from canteen_watch.ledger import merkle
from canteen_watch.ledger.merkle import ProofError

# Test vectors of the Certificate Transparency / transparency-dev Merkle implementation:
# github.com/transparency-dev/merkle proof/verify_test.go (Apache-2.0), the same data as
# certificate-transparency-go merkletree tests and the RFC 6962 reference tests.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, proof); the Go file numbers leaves from 1, these from 0.
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
EMPTY_TREE = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAF_HASHES = [merkle.leaf_hash(x) for x in LEAVES]


def root(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size - 1])


def test_hashes_and_empty_root() -> None:
    assert merkle.EMPTY_ROOT == EMPTY_TREE
    assert merkle.root_from_leaves([]) == EMPTY_TREE
    assert merkle.leaf_hash(b"") == bytes.fromhex(ROOTS[0])
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_published_vectors(size: int) -> None:
    assert merkle.root_from_leaves(LEAF_HASHES[:size]) == root(size)
    assert merkle.subtree_hash(LEAF_HASHES, 0, size) == root(size)
    assert merkle.fold_range([merkle.subtree_hash(LEAF_HASHES, *r) for r in _range_tiles(0, size)]) == root(size)


def _range_tiles(start: int, end: int) -> list[tuple[int, int]]:
    return [(idx << level, (idx + 1) << level) for level, idx in merkle.range_node_ids(start, end)]


@pytest.mark.parametrize("index,size,proof", INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(p) for p in proof]
    assert merkle.inclusion_proof(index, size, LEAF_HASHES) == expected
    merkle.verify_inclusion(index, size, LEAF_HASHES[index], expected, root(size))
    assert merkle.root_from_inclusion_proof(index, size, LEAF_HASHES[index], expected) == root(size)


@pytest.mark.parametrize("old,new,proof", CONSISTENCY)
def test_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    expected = [bytes.fromhex(p) for p in proof]
    assert merkle.consistency_proof(old, new, LEAF_HASHES) == expected
    merkle.verify_consistency(old, new, root(old), root(new), expected)


def _inclusion_probes(index: int, size: int, proof: list[bytes], root_hash: bytes, leaf: bytes):
    """The corruptions of transparency-dev's corruptInclusionProof, plus element-length errors."""
    probes = [
        (index - 1, size, root_hash, leaf, proof, "index - 1"),
        (index + 1, size, root_hash, leaf, proof, "index + 1"),
        (index ^ 2, size, root_hash, leaf, proof, "index ^ 2"),
        (index, size * 2, root_hash, leaf, proof, "size * 2"),
        (index, size // 2, root_hash, leaf, proof, "size / 2"),
        (index, size, root_hash, b"WrongLeaf", proof, "wrong leaf"),
        (index, size, root_hash, merkle.leaf_hash(b"other"), proof, "other leaf"),
        (index, size, EMPTY_TREE, leaf, proof, "empty root"),
        (index, size, SOME_HASH, leaf, proof, "random root"),
        (index, size, root_hash, leaf, [*proof, b""], "trailing garbage"),
        (index, size, root_hash, leaf, [*proof, root_hash], "trailing root"),
        (index, size, root_hash, leaf, [b"", *proof], "preceding garbage"),
        (index, size, root_hash, leaf, [root_hash, *proof], "preceding root"),
        (index, size, root_hash, leaf, [*proof, SOME_HASH], "extra hash"),
    ]
    for i in range(len(proof)):
        for bit in (0, 3, 7):
            wrong = [bytearray(p) for p in proof]
            wrong[i][i % 32] ^= 1 << bit
            probes.append((index, size, root_hash, leaf, [bytes(p) for p in wrong], f"proof[{i}] bit {bit}"))
        probes.append((index, size, root_hash, leaf, proof[:i] + proof[i + 1 :], f"removed proof[{i}]"))
        probes.append((index, size, root_hash, leaf, [*proof[:i], proof[i][:31], *proof[i + 1 :]], f"short proof[{i}]"))
    if len(proof) > 1:
        probes.append((index, size, root_hash, leaf, [proof[0], SOME_HASH, *proof[1:]], "inserted component"))
        probes.append((index, size, root_hash, leaf, [proof[1], proof[0], *proof[2:]], "swapped components"))
    return probes


@pytest.mark.parametrize("index,size,proof", INCLUSION)
def test_malformed_inclusion_proofs_are_rejected(index: int, size: int, proof: list[str]) -> None:
    good = [bytes.fromhex(p) for p in proof]
    accepted = []
    for i, n, r, leaf, p, desc in _inclusion_probes(index, size, good, root(size), LEAF_HASHES[index]):
        try:
            merkle.verify_inclusion(i, n, leaf, p, r)
        except ProofError:
            continue
        accepted.append(desc)
    assert accepted == []


@pytest.mark.parametrize("index,size", [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_degenerate_parameters(index: int, size: int) -> None:
    for leaf, r in ((SOME_HASH, b""), (b"", EMPTY_TREE), (SOME_HASH, EMPTY_TREE)):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, leaf, [], r)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(-1, 4, SOME_HASH, [], SOME_HASH)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(True, 4, SOME_HASH, [], SOME_HASH)  # type: ignore[arg-type]


def test_single_entry_inclusion() -> None:
    leaf = merkle.leaf_hash(b"data")
    merkle.verify_inclusion(0, 1, leaf, [], leaf)
    for good_leaf, good_root in ((leaf, b""), (b"", leaf), (b"", b"")):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(0, 1, good_leaf, [], good_root)


def _consistency_probes(old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]):
    """The corruptions of transparency-dev's corruptConsistencyProof."""
    probes = [
        (old - 1, new, r1, r2, proof, "old - 1"),
        (old + 1, new, r1, r2, proof, "old + 1"),
        (old ^ 2, new, r1, r2, proof, "old ^ 2"),
        (old, new * 2, r1, r2, proof, "new * 2"),
        (old, new // 2, r1, r2, proof, "new / 2"),
        (old, new, b"WrongRoot", r2, proof, "wrong root1"),
        (old, new, r1, b"WrongRoot", proof, "wrong root2"),
        (old, new, SOME_HASH, r2, proof, "other root1"),
        (old, new, r1, SOME_HASH, proof, "other root2"),
        (old, new, r2, r1, proof, "swapped roots"),
        (old, new, r1, r2, [], "empty proof"),
        (old, new, r1, r2, [*proof, b""], "trailing garbage"),
        (old, new, r1, r2, [*proof, r1], "trailing root1"),
        (old, new, r1, r2, [*proof, r2], "trailing root2"),
        (old, new, r1, r2, [b"", *proof], "preceding garbage"),
        (old, new, r1, r2, [r1, *proof], "preceding root1"),
        (old, new, r1, r2, [r2, *proof], "preceding root2"),
        (old, new, r1, r2, [proof[0], *proof], "preceding proof[0]"),
        (old, new, r1, r2, proof[:-1], "truncated proof"),
    ]
    for i in range(len(proof)):
        wrong = [bytearray(p) for p in proof]
        wrong[i][0] ^= 16
        probes.append((old, new, r1, r2, [bytes(p) for p in wrong], f"proof[{i}] bit 4"))
        probes.append((old, new, r1, r2, proof[:i] + proof[i + 1 :], f"removed proof[{i}]"))
    return probes


@pytest.mark.parametrize("old,new,proof", [c for c in CONSISTENCY if c[2]])
def test_malformed_consistency_proofs_are_rejected(old: int, new: int, proof: list[str]) -> None:
    good = [bytes.fromhex(p) for p in proof]
    accepted = []
    for o, n, r1, r2, p, desc in _consistency_probes(old, new, root(old), root(new), good):
        try:
            merkle.verify_consistency(o, n, r1, r2, p)
        except ProofError:
            continue
        accepted.append(desc)
    assert accepted == []


def test_consistency_edge_cases() -> None:
    a, b = SOME_HASH, EMPTY_TREE
    merkle.verify_consistency(0, 0, a, a, [])
    merkle.verify_consistency(0, 1, a, b, [])
    merkle.verify_consistency(1, 1, b, b, [])
    for old, new, r1, r2, proof in (
        (0, 0, a, b, []),  # same size, different roots
        (1, 1, a, b, []),
        (1, 0, a, b, []),  # time travel
        (2, 1, a, b, []),
        (1, 2, a, b, []),  # empty proof
        (0, 0, b, b, [b]),  # equal roots but a non-empty proof
        (0, 1, b, b, [b]),
        (1, 1, b, b, [b]),
    ):
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, new, r1, r2, proof)


# Which stored subtrees each proof element consists of, from transparency-dev proof/proof_test.go
# (TestInclusion, TestConsistency): groups are folded into one element ("rehash").
NODE_SHAPES_INCLUSION = {
    (7, 0): [{(0, 1)}, {(1, 1)}, {(0, 6), (1, 2)}],
    (7, 2): [{(0, 3)}, {(1, 0)}, {(0, 6), (1, 2)}],
    (7, 4): [{(0, 5)}, {(0, 6)}, {(2, 0)}],
    (7, 6): [{(1, 2)}, {(2, 0)}],
    (5, 3): [{(0, 2)}, {(1, 0)}, {(0, 4)}],
    (6, 4): [{(0, 5)}, {(2, 0)}],
    (15, 10): [{(0, 11)}, {(1, 4)}, {(0, 14), (1, 6)}, {(3, 0)}],
    (31, 24): [{(0, 25)}, {(1, 13)}, {(0, 30), (1, 14)}, {(3, 2)}, {(4, 0)}],
    (95, 81): [{(0, 80)}, {(1, 41)}, {(2, 21)}, {(0, 94), (1, 46), (2, 22)}, {(4, 4)}, {(6, 0)}],
}
NODE_SHAPES_CONSISTENCY = {
    (1, 2): [{(0, 1)}],
    (1, 4): [{(0, 1)}, {(1, 1)}],
    (2, 8): [{(1, 1)}, {(2, 1)}],
    (3, 7): [{(0, 2)}, {(0, 3)}, {(1, 0)}, {(0, 6), (1, 2)}],
    (4, 7): [{(0, 6), (1, 2)}],
    (5, 7): [{(0, 4)}, {(0, 5)}, {(0, 6)}, {(2, 0)}],
    (6, 7): [{(1, 2)}, {(0, 6)}, {(2, 0)}],
    (7, 8): [{(0, 6)}, {(0, 7)}, {(1, 2)}, {(2, 0)}],
    (10, 15): [{(1, 4)}, {(1, 5)}, {(0, 14), (1, 6)}, {(3, 0)}],
    (24, 31): [{(3, 2)}, {(0, 30), (1, 14), (2, 6)}, {(4, 0)}],
    (81, 95): [{(0, 80)}, {(0, 81)}, {(1, 41)}, {(2, 21)}, {(0, 94), (1, 46), (2, 22)}, {(4, 4)}, {(6, 0)}],
}


@pytest.mark.parametrize("key", NODE_SHAPES_INCLUSION)
def test_inclusion_uses_olog_n_stored_nodes(key: tuple[int, int]) -> None:
    size, index = key
    shape = [set(merkle.range_node_ids(*r)) for r in merkle.inclusion_ranges(index, size)]
    assert shape == NODE_SHAPES_INCLUSION[key]


@pytest.mark.parametrize("key", NODE_SHAPES_CONSISTENCY)
def test_consistency_uses_olog_n_stored_nodes(key: tuple[int, int]) -> None:
    shape = [set(merkle.range_node_ids(*r)) for r in merkle.consistency_ranges(*key)]
    assert shape == NODE_SHAPES_CONSISTENCY[key]


def test_all_small_trees_against_the_reference_definition() -> None:
    rng = random.Random(6962)
    leaves = [merkle.leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(70)]
    roots = [merkle.root_from_leaves(leaves[:n]) for n in range(71)]
    for n in range(1, 71):
        assert roots[n] == merkle.subtree_hash(leaves, 0, n)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, leaves)
            assert len(proof) <= (n - 1).bit_length()
            merkle.verify_inclusion(i, n, leaves[i], proof, roots[n])
            if proof:
                bad = list(proof)
                bad[rng.randrange(len(bad))] = SOME_HASH
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(i, n, leaves[i], bad, roots[n])
        for m in range(0, n + 1):
            proof = merkle.consistency_proof(m, n, leaves)
            merkle.verify_consistency(m, n, roots[m], roots[n], proof)
            if 0 < m < n:
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, roots[m], roots[n], proof[:-1])
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, roots[m], roots[n], [*proof, proof[-1]])
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, roots[m - 1] if m > 1 else SOME_HASH, roots[n], proof)


def test_frontier_reports_every_complete_subtree() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(37)]
    frontier = merkle.Frontier()
    stored: dict[tuple[int, int], bytes] = {}
    for i, leaf in enumerate(leaves):
        for level, idx, value in frontier.append(leaf):
            stored[(level, idx)] = value
        assert frontier.root() == merkle.root_from_leaves(leaves[: i + 1])
    for (level, idx), value in stored.items():
        assert value == merkle.subtree_hash(leaves, idx << level, (idx + 1) << level)
    assert len(stored) == sum(37 >> level for level in range(1, 7))
    nodes = {**stored, **{(0, i): h for i, h in enumerate(leaves)}}
    ids = merkle.Frontier.node_ids(37)
    resumed = merkle.Frontier(37, [nodes[i] for i in ids])
    assert resumed.root() == frontier.root()
    with pytest.raises(ValueError):
        merkle.Frontier(37, [])
