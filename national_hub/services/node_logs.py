"""The hub witnesses each council node's own audit log (docs/PROTOCOL.md §18,
docs/audit.md "The hub keeps each node's log honest").

A node's log is checkpointed with the council key, which catches a rewrite under a
checkpoint; but someone who can write the node's database could remove the newest
entries *and* the checkpoints over them, and nothing at the node would know. So after
every heartbeat the node offers the hub its latest checkpoint with a consistency proof
from the one the hub kept; the hub checks it (the council's key, the log's name, the
proof: :func:`server_common.audit.witnessing.judge`, the rule the nodes apply to the
hub's log) and keeps it, or refuses it: a refusal is evidence, stored, and federation
health shows the council's node log BAD until a person accepts a new baseline
(``national-hub audit accept-node``), audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from national_hub.storage.councils import CouncilStore
from national_hub.storage.node_logs import HeldCheckpoint, NodeLogStore
from protocol import keys
from protocol.errors import NotFoundError, ValidationError
from server_common.audit.checkpoint import CheckpointError, open_note
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog
from server_common.audit.witnessing import judge, node_log_origin

log = logging.getLogger(__name__)
MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class Judged:
    """The hub's answer to an offered node checkpoint."""

    accepted: bool
    tree_size: int | None
    reason: str | None = None

    def to_wire(self) -> dict[str, object]:
        return {"ok": True, "accepted": self.accepted, "tree_size": self.tree_size,
                "reason": self.reason}


class NodeLogWitness:
    def __init__(self, pool: asyncpg.Pool, councils: CouncilStore, store: NodeLogStore,
                 audit: AuditLog) -> None:
        self.pool = pool
        self.councils = councils
        self.store = store
        self.audit = audit

    async def _council_keys(self, conn: asyncpg.Connection, council: str) -> list[Any]:
        """Every key of the council not revoked: a checkpoint signed before a rotation
        is still the council's."""
        return [keys.public_from_raw(k.public_key)
                for k in await self.councils.keys_of(conn, council) if k.revoked_at is None]

    async def held(self, council: str) -> HeldCheckpoint:
        async with self.pool.acquire() as conn:
            held = await self.store.latest(conn, node_log_origin(council))
        if held is None:
            raise NotFoundError(f"the hub holds no checkpoint of {council}'s node log yet")
        return held

    async def offered(self, council: str, offer: dict[str, Any]) -> Judged:
        """Judge the node's offered checkpoint against the one kept; keep or refuse it."""
        origin = node_log_origin(council)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.store.lock(conn, origin)
            kept = await self.store.latest(conn, origin)
            verdict = judge(kept, offer, await self._council_keys(conn, council),
                            log=f"council {council}'s node", kept_by="the hub kept")
            checkpoint = verdict.checkpoint
            reason = verdict.reason
            if reason is None and checkpoint is not None and checkpoint.origin != origin:
                reason = f"the checkpoint names the log {checkpoint.origin!r}, not {origin!r}"
            if reason is not None:
                await self.store.refuse(conn, origin, reason[:MAX_REASON],
                                        kept.tree_size if kept else None,
                                        checkpoint.size if checkpoint else None,
                                        checkpoint.note if checkpoint else None)
            elif not verdict.same:
                assert checkpoint is not None
                await self.store.keep(conn, origin, checkpoint.size, checkpoint.root,
                                      checkpoint.note)
        if reason is not None:
            log.error("refused a node's audit checkpoint: %s", reason,
                      extra={"council": council,
                             "kept_size": kept.tree_size if kept else None,
                             "offered_size": checkpoint.size if checkpoint else None})
            return Judged(False, checkpoint.size if checkpoint else None, reason)
        assert checkpoint is not None
        return Judged(True, checkpoint.size)

    async def accept(self, council: str, reason: str, actor: Actor) -> HeldCheckpoint:
        """A person accepts the checkpoint the hub last refused as the node log's new
        baseline (after an incident the council reported, e.g. its database restored
        from a backup): audited first, with the reason and both sizes and roots."""
        if len(reason.strip()) < 10:
            raise ValidationError("reason", "say why in at least 10 characters (it is audited)")
        origin = node_log_origin(council)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.store.lock(conn, origin)
            refusal = await self.store.open_refusal(conn, origin)
            if refusal is None or refusal.offered_note is None:
                raise NotFoundError(f"no refused checkpoint of {council}'s node log to accept")
            try:
                checkpoint = open_note(refusal.offered_note,
                                       await self._council_keys(conn, council))
            except CheckpointError as exc:
                raise ValidationError("council", f"the refused checkpoint is not signed by "
                                                 f"{council}'s key: {exc}") from exc
            kept = await self.store.latest(conn, origin)
            await self.audit.append(conn, AuditEntry.by(
                actor, "audit.node_log_accept", reason.strip(), {
                    "council": council,
                    "kept_size": kept.tree_size if kept else None,
                    "kept_root": kept.root_hash.hex() if kept else None,
                    "accepted_size": checkpoint.size,
                    "accepted_root": checkpoint.root.hex()}))
            await self.store.keep(conn, origin, checkpoint.size, checkpoint.root,
                                  checkpoint.note, accepted_reason=reason.strip())
            held = await self.store.latest(conn, origin)
        assert held is not None
        log.warning("accepted a node's audit checkpoint as a new baseline",
                    extra={"council": council, "tree_size": checkpoint.size})
        return held
