"""Judging a log's new checkpoint against the one a witness kept (docs/audit.md
"Witnesses"): pure, the same rule wherever it runs. A council's node judges the hub's
log with it; the hub judges each node's own log with it (docs/PROTOCOL.md §18).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from server_common.audit import merkle
from server_common.audit.checkpoint import Checkpoint, CheckpointError, open_note


class Held(Protocol):
    """The checkpoint a witness kept: its log's name, size and root."""

    @property
    def origin(self) -> str: ...

    @property
    def tree_size(self) -> int: ...

    @property
    def root_hash(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with an offered checkpoint: ``cosign`` it (``same``: it is the one
    kept already), or refuse it for ``reason`` (then ``checkpoint`` may be None)."""

    checkpoint: Checkpoint | None
    reason: str | None = None
    same: bool = False

    @property
    def cosign(self) -> bool:
        return self.reason is None


def _proof(value: object) -> list[bytes] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, bytes) and len(p) == 32
                                              for p in value):
        raise ValueError("proof")
    return list(value)


def judge(kept: Held | None, offer: dict[str, Any], keys: Sequence[Ed25519PublicKey], *,
          log: str = "the hub", kept_by: str = "this council cosigned") -> Verdict:
    """Decide, on plain data, whether ``log``'s offer (a signed checkpoint ``note``, the
    size ``first`` its proof starts from, the consistency ``proof``) extends the kept
    checkpoint; ``keys`` are the log's signing keys; ``kept_by`` says who kept the
    checkpoint and how, for the reasons."""
    try:
        checkpoint = open_note(str(offer.get("note", "")), list(keys))
    except CheckpointError as exc:
        return Verdict(None, f"{log}'s checkpoint is not validly signed by {log}: {exc}")
    try:
        proof = _proof(offer.get("proof"))
    except ValueError:
        return Verdict(checkpoint, f"{log} sent a malformed consistency proof")
    if kept is None:
        return Verdict(checkpoint)  # trust on first use
    if checkpoint.origin != kept.origin:
        return Verdict(checkpoint, f"{log}'s log is now named {checkpoint.origin!r}, not "
                                   f"{kept.origin!r} as {kept_by.split()[-1]}")
    if checkpoint.size < kept.tree_size:
        return Verdict(checkpoint, (
            f"truncation: {log}'s latest checkpoint covers {checkpoint.size} entries, fewer "
            f"than the {kept.tree_size} {kept_by}"))
    if proof is None:
        return Verdict(checkpoint, (
            f"truncation: {log} cannot prove its checkpoint of {checkpoint.size} entries "
            f"extends the {kept.tree_size} {kept_by} (its log holds fewer entries "
            f"than that)"))
    if offer.get("first") != kept.tree_size:
        return Verdict(checkpoint, f"{log}'s proof starts from another size than asked")
    if checkpoint.size == kept.tree_size:
        if checkpoint.root != kept.root_hash:
            return Verdict(checkpoint, (
                f"rewrite or fork: {log} signed another root for the {kept.tree_size} "
                f"entries {kept_by}"))
        return Verdict(checkpoint, same=True)
    if not merkle.verify_consistency(kept.tree_size, checkpoint.size, kept.root_hash,
                                     checkpoint.root, proof):
        return Verdict(checkpoint, (
            f"rewrite or fork: {log}'s checkpoint of {checkpoint.size} entries does not "
            f"extend the {kept.tree_size} entries {kept_by}"))
    return Verdict(checkpoint)


def node_log_origin(council: str) -> str:
    """The name of a council node's own audit log, in its checkpoints."""
    return f"signpost-node-{council}/audit"
