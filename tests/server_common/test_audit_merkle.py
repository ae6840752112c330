"""RFC 6962 Merkle hashing and proofs (server_common.audit.merkle), against the
RFC 6962 reference test data (certificate-transparency's merkle_tree_test, as
transparency-dev/merkle reproduces it) and an independent literal implementation of
RFC 6962 §2.1 written here; Hypothesis for every (m, n) up to 64 leaves."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server_common.audit import merkle
from tests.strategies import merkle_trees

# --- RFC 6962 reference data ---------------------------------------------------------

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (  # tree heads of sizes 0..8
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]


def h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


INCLUSION = [  # (leaf index, tree size, proof)
    (0, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (5, 8, h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 3, h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (0, 1, []),
]
CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]
HASHED = [merkle.leaf_hash(d) for d in LEAVES]


def test_reference_tree_heads() -> None:
    assert merkle.EMPTY_ROOT == ROOTS[0]
    for n in range(len(LEAVES) + 1):
        assert merkle.root_hash(HASHED[:n]) == ROOTS[n], n
    assert merkle.prefix_roots(HASHED, range(9)) == dict(enumerate(ROOTS))


@pytest.mark.parametrize("index, size, proof", INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    assert merkle.inclusion_proof(HASHED[:size], index) == proof
    assert merkle.verify_inclusion(index, size, HASHED[index], proof, ROOTS[size])


@pytest.mark.parametrize("old, new, proof", CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    assert merkle.consistency_proof(HASHED[:new], old) == proof
    assert merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def test_split_point_is_the_largest_power_of_two_below() -> None:
    assert [merkle.split_point(n) for n in (2, 3, 4, 5, 8, 9, 1000)] == [1, 2, 2, 4, 4, 8, 512]


def test_trivial_consistency_cases() -> None:
    root = ROOTS[3]
    assert merkle.verify_consistency(0, 3, ROOTS[0], root, [])  # the empty tree is a prefix
    assert not merkle.verify_consistency(0, 3, ROOTS[0], root, [root])
    assert merkle.verify_consistency(3, 3, root, root, [])
    assert not merkle.verify_consistency(3, 3, root, ROOTS[4], [])
    assert not merkle.verify_consistency(4, 3, ROOTS[4], root, [])  # time travel
    assert not merkle.verify_consistency(2, 3, ROOTS[2], root, [])  # empty proof


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(HASHED[:3], 3)
    with pytest.raises(ValueError):
        merkle.consistency_proof(HASHED[:3], 4)
    assert not merkle.verify_inclusion(3, 3, HASHED[0], [], ROOTS[3])
    assert not merkle.verify_inclusion(0, 0, HASHED[0], [], ROOTS[0])


# --- an independent, literal RFC 6962 §2.1 -------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) over raw leaf data, recursively, exactly as the RFC writes it."""
    n = len(d)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return _sha(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    return [*path(m, d[:k]), mth(d[k:])] if m < k else [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def test_independent_implementation_agrees_with_the_reference_heads() -> None:
    assert [mth(LEAVES[:n]) for n in range(9)] == ROOTS


@given(st.lists(st.binary(max_size=6), min_size=1, max_size=40), st.data())
def test_agrees_with_the_literal_rfc(data: list[bytes], draw: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(x) for x in data]
    n = len(leaves)
    assert merkle.root_hash(leaves) == mth(data)
    m = draw.draw(st.integers(0, n - 1))
    assert merkle.inclusion_proof(leaves, m) == path(m, data)
    old = draw.draw(st.integers(1, n))
    expected = [] if old == n else subproof(old, data, True)
    assert merkle.consistency_proof(leaves, old) == expected


# --- every (m, n) up to 64 leaves ----------------------------------------------------


def test_every_inclusion_and_consistency_proof_up_to_64_leaves_verifies() -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(64)]
    roots = merkle.prefix_roots(leaves, range(65))
    for n in range(1, 65):
        tree = leaves[:n]
        assert roots[n] == merkle.root_hash(tree)
        for m in range(n):
            assert merkle.verify_inclusion(m, n, tree[m], merkle.inclusion_proof(tree, m),
                                           roots[n]), (m, n)
        for m in range(0, n + 1):
            assert merkle.verify_consistency(m, n, roots[m], roots[n],
                                             merkle.consistency_proof(tree, m)), (m, n)


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    bad = list(proof)
    bad[i] = bytes([bad[i][0] ^ 0x10]) + bad[i][1:]
    return bad


@given(merkle_trees(), st.data())
def test_a_tampered_leaf_or_proof_fails_inclusion(leaves: list[bytes],
                                                  draw: st.DataObject) -> None:
    n = len(leaves)
    m = draw.draw(st.integers(0, n - 1))
    root = merkle.root_hash(leaves)
    proof = merkle.inclusion_proof(leaves, m)
    assert merkle.verify_inclusion(m, n, leaves[m], proof, root)
    assert not merkle.verify_inclusion(m, n, merkle.leaf_hash(b"forged"), proof, root)
    for i in range(len(proof)):
        assert not merkle.verify_inclusion(m, n, leaves[m], _flip(proof, i), root)
    if proof:
        assert not merkle.verify_inclusion(m, n, leaves[m], proof[:-1], root)
    assert not merkle.verify_inclusion(m, n, leaves[m], [*proof, root], root)
    if n > 1:
        other = draw.draw(st.integers(0, n - 1).filter(lambda x: x != m))
        assert not merkle.verify_inclusion(other, n, leaves[m], proof, root)
    # A different entry anywhere changes the root the proof must reach.
    changed = list(leaves)
    changed[draw.draw(st.integers(0, n - 1))] = merkle.leaf_hash(b"tampered")
    assert not merkle.verify_inclusion(m, n, leaves[m], proof, merkle.root_hash(changed))


@given(merkle_trees(), st.data())
def test_a_tampered_prefix_or_proof_fails_consistency(leaves: list[bytes],
                                                      draw: st.DataObject) -> None:
    n = len(leaves)
    if n < 2:
        return
    old = draw.draw(st.integers(1, n - 1))
    roots = merkle.prefix_roots(leaves, [old, n])
    proof = merkle.consistency_proof(leaves, old)
    assert merkle.verify_consistency(old, n, roots[old], roots[n], proof)
    for i in range(len(proof)):
        assert not merkle.verify_consistency(old, n, roots[old], roots[n], _flip(proof, i))
    assert not merkle.verify_consistency(old, n, roots[old], roots[n], proof[:-1])
    assert not merkle.verify_consistency(old, n, roots[old], roots[n], [*proof, roots[n]])
    # The history was rewritten below the old size: the old signed root no longer follows.
    rewritten = list(leaves)
    rewritten[draw.draw(st.integers(0, old - 1))] = merkle.leaf_hash(b"tampered")
    new_root = merkle.root_hash(rewritten)
    assert not merkle.verify_consistency(old, n, roots[old], new_root,
                                         merkle.consistency_proof(rewritten, old))


def test_pure_modules_load_no_database_or_web_code() -> None:
    code = ("import sys\n"
            "import server_common.audit.merkle, server_common.audit.entry\n"
            "import server_common.audit.checkpoint\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncpg', 'aiohttp')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
