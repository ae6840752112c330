"""The hub's side of witnessing (docs/audit.md "Witnesses"): offer a council's node the
latest signed checkpoint with a consistency proof from the last one it cosigned, and
take its cosignature (checked against the council's own key) or its refusal.

A refusal is evidence, not an error: it is stored as an alarm, and federation health
shows the council's witness BAD until the witness cosigns again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from protocol import keys
from protocol.errors import ErrorCode, NotFoundError, SignpostError, ValidationError
from server_common.audit.checkpoint import Checkpoint, CheckpointError
from server_common.audit.cosignature import open_cosignature
from server_common.audit.service import AuditLog
from server_common.audit.witness_store import WitnessStore

log = logging.getLogger(__name__)
MAX_REASON = 1000


class CosignatureError(SignpostError):
    status = 400
    code = ErrorCode.COSIGNATURE_INVALID


@dataclass(frozen=True, slots=True)
class Offer:
    """The latest checkpoint and the proof that it extends the witness's ``first``
    (empty when ``first`` is 0 or the checkpoint itself; None when the hub holds no
    checkpoint of ``first`` entries' worth: the log is shorter than the witness knows)."""

    checkpoint: Checkpoint
    first: int
    proof: tuple[bytes, ...] | None

    def to_wire(self) -> dict[str, object]:
        return {"note": self.checkpoint.note, "first": self.first,
                "proof": None if self.proof is None else list(self.proof)}


class Witnesses:
    def __init__(self, pool: asyncpg.Pool, audit: AuditLog, store: WitnessStore) -> None:
        self.pool = pool
        self.audit = audit
        self.store = store

    async def offer(self, first: int) -> Offer:
        latest = await self.audit.latest_checkpoint()
        if latest is None:
            raise NotFoundError("no checkpoint has been signed yet")
        if first > latest.size:
            # The witness cosigned a longer log than the hub's latest checkpoint: say so
            # plainly and let the witness judge (it will call it a truncation).
            return Offer(latest, first, None)
        try:
            proof = await self.audit.consistency_proof(first, latest.size)
        except ValidationError:
            # The log holds fewer entries than its own latest checkpoint signs: no proof
            # can be made, and the witness must hear that rather than an error.
            log.error("the audit log is shorter than its latest checkpoint",
                      extra={"tree_size": latest.size})
            return Offer(latest, first, None)
        return Offer(latest, first, proof.proof)

    async def cosigned(self, council: str, key_raw: bytes, kid: str, tree_size: int,
                       line: str) -> bool:
        """Check and store ``council``'s cosignature of the checkpoint of ``tree_size``
        entries; True when it is new."""
        checkpoint = await self.audit.checkpoint_at(tree_size)
        if checkpoint is None:
            raise SignpostError(f"the hub never signed a checkpoint of {tree_size} entries",
                                code=ErrorCode.UNKNOWN_CHECKPOINT, status=404)
        try:
            when = open_cosignature(line, council, keys.public_from_raw(key_raw), checkpoint)
        except CheckpointError as exc:
            raise CosignatureError(f"cosignature refused: {exc}") from exc
        async with self.pool.acquire() as conn:
            return await self.store.add_cosignature(conn, council, tree_size, checkpoint.root,
                                                    kid, line, when)

    async def refused(self, council: str, reason: str, cosigned_size: int | None,
                      offered_size: int | None) -> None:
        log.error("audit witness refused to cosign the hub's checkpoint",
                  extra={"council": council, "reason": reason,
                         "cosigned_size": cosigned_size, "offered_size": offered_size})
        async with self.pool.acquire() as conn:
            await self.store.add_alarm(conn, council, reason[:MAX_REASON], cosigned_size,
                                       offered_size)
