"""The node's witness decision (local_node.services.witness.judge), on plain data: a
checkpoint is cosigned only when it is the hub's and extends the kept one."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from local_node.services.witness import judge
from local_node.storage.witness import Kept
from protocol import keys
from server_common.audit import merkle
from server_common.audit.checkpoint import Checkpoint, sign

HUB = keys.generate()
ORIGIN = "signpost-hub/audit"
WHEN = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
LEAVES = [merkle.leaf_hash(bytes([i])) for i in range(12)]


def checkpoint(size: int, leaves: list[bytes] = LEAVES, key: Ed25519PrivateKey = HUB,
               origin: str = ORIGIN
               ) -> Checkpoint:
    return sign(key, origin, size, merkle.root_hash(leaves[:size]), WHEN)


def kept(size: int, leaves: list[bytes] = LEAVES) -> Kept:
    cp = checkpoint(size, leaves)
    return Kept(ORIGIN, size, cp.root, cp.note, "— E10000011 x\n", WHEN)


def offer(cp: Checkpoint, first: int, proof: list[bytes] | None) -> dict[str, object]:
    return {"note": cp.note, "first": first, "proof": proof}


def test_first_use_then_extensions_are_cosigned() -> None:
    first = judge(None, offer(checkpoint(5), 0, []), [HUB.public_key()])
    assert first.cosign and first.checkpoint is not None and first.checkpoint.size == 5
    grown = judge(kept(5), offer(checkpoint(9), 5, merkle.consistency_proof(LEAVES[:9], 5)),
                  [HUB.public_key()])
    assert grown.cosign and not grown.same
    same = judge(kept(9), offer(checkpoint(9), 9, []), [HUB.public_key()])
    assert same.cosign and same.same


def test_truncation_is_refused() -> None:
    shorter = judge(kept(9), offer(checkpoint(6), 9, None), [HUB.public_key()])
    assert shorter.reason is not None and shorter.reason.startswith("truncation")
    assert "fewer than the 9 this council cosigned" in shorter.reason
    # the hub's own checkpoint is larger, but its log no longer holds what it signed
    unproved = judge(kept(9), offer(checkpoint(12), 9, None), [HUB.public_key()])
    assert unproved.reason is not None and unproved.reason.startswith("truncation")
    assert "cannot prove its checkpoint of 12 entries" in unproved.reason


def test_rewrite_and_fork_are_refused() -> None:
    rewritten = list(LEAVES)
    rewritten[2] = merkle.leaf_hash(b"forged")
    # same size, another root
    fork = judge(kept(9), offer(checkpoint(9, rewritten), 9, []), [HUB.public_key()])
    assert fork.reason is not None and fork.reason.startswith("rewrite or fork")
    # larger, with the forged log's own (honestly computed) proof
    grown = judge(kept(9), offer(checkpoint(12, rewritten), 9,
                                 merkle.consistency_proof(rewritten, 9)), [HUB.public_key()])
    assert grown.reason is not None and grown.reason.startswith("rewrite or fork")
    # an append-only extension whose proof was tampered with
    proof = merkle.consistency_proof(LEAVES, 9)
    proof[0] = bytes(32)
    bad = judge(kept(9), offer(checkpoint(12), 9, proof), [HUB.public_key()])
    assert bad.reason is not None and bad.reason.startswith("rewrite or fork")


def test_only_the_hubs_signature_and_well_formed_offers_count() -> None:
    forged = judge(kept(5), offer(checkpoint(9, key=keys.generate()), 5,
                                  merkle.consistency_proof(LEAVES[:9], 5)), [HUB.public_key()])
    assert forged.reason is not None and "not validly signed by the hub" in forged.reason
    assert forged.checkpoint is None
    renamed = judge(kept(5), offer(checkpoint(9, origin="other/log"), 5,
                                   merkle.consistency_proof(LEAVES[:9], 5)),
                    [HUB.public_key()])
    assert renamed.reason is not None and "now named 'other/log'" in renamed.reason
    for proof in ([b"short"], "text", [1, 2]):
        odd = judge(kept(5), {"note": checkpoint(9).note, "first": 5, "proof": proof},
                    [HUB.public_key()])
        assert odd.reason == "the hub sent a malformed consistency proof"
    elsewhere = judge(kept(5), offer(checkpoint(9), 4, merkle.consistency_proof(LEAVES[:9], 4)),
                      [HUB.public_key()])
    assert elsewhere.reason == "the hub's proof starts from another size than asked"
    assert judge(None, {"note": 7}, [HUB.public_key()]).reason is not None
