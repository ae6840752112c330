"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs; pure Python.

No database, no I/O: every function works on a sequence of *leaf hashes* (already
``leaf_hash(entry)``), so the same code serves the hub, ``audit verify`` and an
auditor checking a proof offline.

Definitions (RFC 6962 §2.1, RFC 9162 §2.1)::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH([])         = SHA-256("")
    MTH([d0])       = leaf_hash(d0)
    MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of 2 < n

Proof generation follows RFC 6962 §2.1.1 (``PATH``) and §2.1.2 (``PROOF`` /
``SUBPROOF``) literally; verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.

    >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
    >>> root = root_hash(leaves)
    >>> verify_inclusion(3, 5, leaves[3], inclusion_proof(leaves, 3), root)
    True
    >>> verify_consistency(2, 5, root_hash(leaves[:2]), root, consistency_proof(leaves, 2))
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (n ≥ 2): RFC 6962's ``k``."""
    if n < 2:
        raise ValueError(f"no split point for a tree of {n} leaves")
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH over the leaf hashes: the tree head for ``len(leaves)`` entries.

    Computed bottom-up (O(n) hashes, no recursion): at each level adjacent pairs
    combine and an odd last node is carried up unchanged, which gives exactly the
    RFC's left-heavy power-of-two split.
    """
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 §2.1.1 ``PATH(m, D[n])`` for leaf ``index`` of the tree of ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    return _path(index, leaves, 0, len(leaves))


def _path(m: int, leaves: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*_path(m, leaves, lo, lo + k), root_hash(leaves[lo + k:hi])]
    return [*_path(m - k, leaves, lo + k, hi), root_hash(leaves[lo:lo + k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """RFC 6962 §2.1.2 ``PROOF(m, D[n])`` that the first ``old_size`` leaves are a
    prefix of ``leaves``. Empty when ``old_size`` is 0 or ``len(leaves)``."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"cannot prove size {old_size} against a tree of {n}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaves, 0, n, True)


def _subproof(m: int, leaves: Sequence[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if whole else [root_hash(leaves[lo:hi])]
    k = split_point(n)
    if m <= k:
        return [*_subproof(m, leaves, lo, lo + k, whole), root_hash(leaves[lo + k:hi])]
    return [*_subproof(m - k, leaves, lo + k, hi, False), root_hash(leaves[lo:lo + k])]


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root the proof leads to, or None if it cannot be a proof."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root`` of ``size``."""
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: whether ``proof`` shows the tree ``old_root`` of ``old_size``
    is a prefix of the tree ``new_root`` of ``new_size``."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof  # every tree extends the empty one
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def prefix_roots(leaves: Sequence[bytes], sizes: Sequence[int]) -> dict[int, bytes]:
    """The tree head of every prefix size in ``sizes``, in one pass over the leaves.

    Keeps the compact range of the prefix read so far (one perfect subtree per 1-bit
    of its size, largest first); folding it from the right gives MTH of that prefix.
    O(n + len(sizes)·log n) hashes, against O(n) per size for :func:`root_hash`.
    """
    wanted = set(sizes)
    if any(not 0 <= s <= len(leaves) for s in wanted):
        raise ValueError("a prefix size is beyond the leaves given")
    roots = {0: EMPTY_ROOT} if 0 in wanted else {}
    stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees
    for count, leaf in enumerate(leaves, start=1):
        height, node = 0, leaf
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        if count in wanted:
            root = stack[-1][1]
            for _, left in reversed(stack[:-1]):
                root = node_hash(left, root)
            roots[count] = root
    return roots
