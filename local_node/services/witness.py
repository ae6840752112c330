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

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from local_node.keyfile import KeySource
from local_node.storage.witness import Kept, WitnessState, WitnessStore
from local_node.transport import HubClient
from protocol.errors import ErrorCode, SignpostError, ValidationError
from server_common.audit.checkpoint import Checkpoint, CheckpointError, open_note, read_note
from server_common.audit.cosignature import cosign
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog
from server_common.audit.witnessing import judge

log = logging.getLogger(__name__)


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

    async def report_own_log(self, own_log: AuditLog) -> Outcome:
        """Offer the hub this node's latest checkpoint of its own log, with a consistency
        proof from the one the hub kept (docs/PROTOCOL.md §18), so a truncation or a
        rewrite made in the node's database is seen outside it. The node proves what its
        database holds: when that no longer extends what the hub kept, there is no proof
        to send, and the hub records why."""
        latest = await own_log.latest_checkpoint()
        if latest is None:  # checkpoints are signed every audit.checkpoint_interval
            return Outcome(False, None, "this node has signed no checkpoint of its log yet")
        held = await self.client.get_node_log()
        try:
            first = read_note(held).size if held is not None else 0
        except CheckpointError:
            first = 0  # the hub judges against what it holds, whatever it sent
        proof: list[bytes] | None = []
        if 0 < first < latest.size:
            try:
                proof = list((await own_log.consistency_proof(first, latest.size)).proof)
            except ValidationError:
                proof = None  # the log holds fewer entries than its own checkpoint
        elif first > latest.size:
            proof = None
        try:
            answer = await self.client.post_node_log(latest.note, first, proof)
        except SignpostError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            log.warning("the hub does not witness node logs (a hub older than §18)")
            return Outcome(False, latest.size, "the hub does not witness node logs")
        if not answer["accepted"]:
            log.error("the hub refused this node's audit checkpoint: %s", answer.get("reason"),
                      extra={"tree_size": latest.size, "hub_kept": first})
            return Outcome(False, latest.size, str(answer.get("reason")))
        return Outcome(True, latest.size)

    async def own_log_at_hub(self, own_log: AuditLog,
                             council_keys: Sequence[Ed25519PublicKey]) -> tuple[int | None,
                                                                                 str | None]:
        """Compare this node's log with the checkpoint of it the hub kept: (that
        checkpoint's size, None when none is kept; the problem, None when the log still
        extends it). What a superuser who removed the newest entries *and* their
        checkpoints here cannot hide: the hub's copy is out of their reach."""
        note = await self.client.get_node_log()
        if note is None:
            return None, None
        try:
            held = open_note(note, list(council_keys))
        except CheckpointError as exc:
            return None, ("the hub's copy of this log's checkpoint does not verify with the "
                          f"council's keys: {exc}")
        size = await own_log.size()
        if held.size > size:
            return held.size, (f"truncation: the hub kept a checkpoint of {held.size} entries "
                               f"of this log, which now holds {size}")
        if (await own_log.consistency_proof(held.size, size)).first_root != held.root:
            return held.size, (f"rewrite or fork: the first {held.size} entries are not those "
                               "the hub kept a checkpoint of")
        return held.size, None

    async def run_both(self, own_log: AuditLog) -> None:
        """One round of witnessing: the hub's log by this node, then this node's log by
        the hub (each fails on its own; the loop logs and goes on)."""
        try:
            await self.run_once()
        finally:
            await self.report_own_log(own_log)

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
