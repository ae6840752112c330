"""The node witnesses the hub's audit log (docs/design.md §6, docs/audit.md "Witnesses").

Regularly: fetch the hub's latest signed checkpoint and a consistency proof from the
last checkpoint this node cosigned (kept in the node's own database, out of reach of
anyone who can write the hub's); check the hub's signature and the proof
(:func:`judge`, pure); then either countersign with the council key, keep it and send
the cosignature, or refuse, keep the refusal, log an error and tell the hub, so its
federation health shows the council's witness BAD. A refusal stands (and is sent again
every run) until the hub offers a checkpoint consistent with the kept one.

The first checkpoint is trusted on first use: a node that never cosigned has nothing
to compare with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from local_node.keyfile import KeySource
from local_node.storage.witness import Kept, WitnessState, WitnessStore
from local_node.transport import HubClient
from protocol.errors import ErrorCode, SignpostError
from server_common.audit import merkle
from server_common.audit.checkpoint import Checkpoint, CheckpointError, open_note
from server_common.audit.cosignature import cosign
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog

log = logging.getLogger(__name__)


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


def judge(kept: Kept | None, offer: dict[str, Any],
          hub_keys: Sequence[Ed25519PublicKey]) -> Verdict:
    """Decide, on plain data, whether the hub's offer extends the kept checkpoint."""
    try:
        checkpoint = open_note(str(offer.get("note", "")), list(hub_keys))
    except CheckpointError as exc:
        return Verdict(None, f"the hub's checkpoint is not validly signed by the hub: {exc}")
    try:
        proof = _proof(offer.get("proof"))
    except ValueError:
        return Verdict(checkpoint, "the hub sent a malformed consistency proof")
    if kept is None:
        return Verdict(checkpoint)  # trust on first use
    if checkpoint.origin != kept.origin:
        return Verdict(checkpoint, f"the hub's log is now named {checkpoint.origin!r}, not "
                                   f"{kept.origin!r} as cosigned")
    if checkpoint.size < kept.tree_size:
        return Verdict(checkpoint, (
            f"truncation: the hub's latest checkpoint covers {checkpoint.size} entries, fewer "
            f"than the {kept.tree_size} this council cosigned"))
    if proof is None:
        return Verdict(checkpoint, (
            f"truncation: the hub cannot prove its checkpoint of {checkpoint.size} entries "
            f"extends the {kept.tree_size} this council cosigned (its log holds fewer "
            f"entries than it signed)"))
    if offer.get("first") != kept.tree_size:
        return Verdict(checkpoint, "the hub's proof starts from another size than asked")
    if checkpoint.size == kept.tree_size:
        if checkpoint.root != kept.root_hash:
            return Verdict(checkpoint, (
                f"rewrite or fork: the hub signed another root for the {kept.tree_size} "
                f"entries this council cosigned"))
        return Verdict(checkpoint, same=True)
    if not merkle.verify_consistency(kept.tree_size, checkpoint.size, kept.root_hash,
                                     checkpoint.root, proof):
        return Verdict(checkpoint, (
            f"rewrite or fork: the hub's checkpoint of {checkpoint.size} entries does not "
            f"extend the {kept.tree_size} entries this council cosigned"))
    return Verdict(checkpoint)


@dataclass(frozen=True, slots=True)
class Outcome:
    cosigned: bool
    tree_size: int | None
    reason: str | None = None


class Witness:
    def __init__(self, pool: asyncpg.Pool, client: HubClient, council: str, key: KeySource,
                 hub_keys: Sequence[Ed25519PublicKey], store: WitnessStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.pool = pool
        self.client = client
        self.council = council
        self.key = key
        self.hub_keys = list(hub_keys)
        self.store = store
        self.clock = clock

    async def state(self) -> WitnessState:
        async with self.pool.acquire() as conn:
            return await self.store.state(conn)

    async def run_once(self) -> Outcome:
        async with self.pool.acquire() as conn:
            kept = await self.store.latest(conn)
        first = kept.tree_size if kept else 0
        try:
            offer = await self.client.get_audit_checkpoint(first)
        except SignpostError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            if kept is not None:  # it had one: its checkpoints were removed
                return await self._refuse(kept, None, (
                    f"truncation: the hub holds no signed checkpoint, but this council "
                    f"cosigned {kept.tree_size} entries"))
            # A new hub signs its first checkpoint within audit.checkpoint_interval.
            log.info("the hub has signed no audit checkpoint yet")
            return Outcome(False, None, "the hub has signed no checkpoint yet")
        verdict = judge(kept, offer, self.hub_keys)
        checkpoint = verdict.checkpoint
        if verdict.reason is not None:
            return await self._refuse(kept, checkpoint, verdict.reason)
        assert checkpoint is not None
        if verdict.same and kept is not None:
            # Sent again each run: a cosignature lost or deleted at the hub comes back.
            await self.client.post_cosignature(kept.tree_size, kept.cosignature)
            return Outcome(True, kept.tree_size)
        line = cosign(self.key(), self.council, checkpoint, self.clock())
        # Kept before it is sent: a lost answer is sent again next run (as "same").
        async with self.pool.acquire() as conn:
            await self.store.keep(conn, Kept(checkpoint.origin, checkpoint.size,
                                             checkpoint.root, checkpoint.note, line,
                                             self.clock()))
        await self.client.post_cosignature(checkpoint.size, line)
        log.info("cosigned the hub's audit checkpoint", extra={"tree_size": checkpoint.size})
        return Outcome(True, checkpoint.size)

    async def _refuse(self, kept: Kept | None, offered: Checkpoint | None,
                      reason: str) -> Outcome:
        log.error("refused to cosign the hub's audit checkpoint: %s", reason,
                  extra={"kept_size": kept.tree_size if kept else None,
                         "offered_size": offered.size if offered else None})
        async with self.pool.acquire() as conn:
            await self.store.refuse(conn, kept.origin if kept else "", reason,
                                    kept.tree_size if kept else None,
                                    offered.size if offered else None,
                                    offered.note if offered else None)
        await self.client.post_witness_refusal(reason, kept.tree_size if kept else None,
                                               offered.size if offered else None)
        return Outcome(False, offered.size if offered else None, reason)

    async def accept(self, reason: str, actor: Actor, own_log: AuditLog) -> Outcome:
        """A person accepts the hub's current checkpoint although it may not extend the
        kept one (after an incident the council was told of, e.g. a hub restored from
        a backup that lost entries): cosign it, keep it as the new baseline with the
        reason, and record who accepted what in the node's own audit log first."""
        if len(reason.strip()) < 10:
            raise ValueError("say why in at least 10 characters (it is audited)")
        async with self.pool.acquire() as conn:
            kept = await self.store.latest(conn)
        offer = await self.client.get_audit_checkpoint(0)
        verdict = judge(None, offer, self.hub_keys)  # the hub's signature, nothing more
        if verdict.checkpoint is None:
            return Outcome(False, None, verdict.reason)
        checkpoint = verdict.checkpoint
        line = cosign(self.key(), self.council, checkpoint, self.clock())
        async with self.pool.acquire() as conn, conn.transaction():
            await own_log.append(conn, AuditEntry.by(
                actor, "audit.witness_accept", purpose=reason.strip(), parameters={
                    "kept_size": kept.tree_size if kept else None,
                    "kept_root": kept.root_hash.hex() if kept else None,
                    "accepted_size": checkpoint.size,
                    "accepted_root": checkpoint.root.hex()}))
            await self.store.keep(conn, Kept(checkpoint.origin, checkpoint.size,
                                             checkpoint.root, checkpoint.note, line,
                                             self.clock()), accepted_reason=reason.strip())
        await self.client.post_cosignature(checkpoint.size, line)
        log.warning("accepted the hub's audit checkpoint as a new baseline",
                    extra={"tree_size": checkpoint.size, "reason": reason})
        return Outcome(True, checkpoint.size)
