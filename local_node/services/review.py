"""The index team's decisions on the local review list.

``accept`` merges the newer child into the older one (the survivor keeps its local
id; the absorbed child is kept, pointing at the survivor, and is withdrawn from the
hub with a delete); ``reject`` records that the two are different children, so the
pair is never asked again. Both happen in one transaction with their outbox entries
and, when the service has an audit log, with their audit entry (``review.accept`` /
``review.reject``, the pair's local ids as its children), as the hub audits its own
review decisions: the audit log fails closed, so an unaudited decision is not made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from local_node.services.identity import apply_rules
from local_node.services.ingest import child_fields
from local_node.services.projection import Projector
from local_node.storage.children import ChildStore
from local_node.storage.review import ReviewStore
from local_node.storage.shielding import ShieldStore
from protocol.disclosure import LOCATION_COMPARISONS, Disclosure, Viewer
from protocol.errors import ConflictError, ErrorCode, NotFoundError, SignpostError
from protocol.matching import blocking_keys
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog

PURPOSE = "identity resolution"
_LOCATION_COLUMNS = ("a_postcode", "b_postcode")


@dataclass(frozen=True, slots=True)
class Pair:
    """An open review item as one viewer may see it (``protocol.disclosure``): a pair
    with a shielded child shows no postcode nor location comparison to whoever may not
    see where it lives (at a node, anyone but this council's index team)."""

    item: dict[str, Any]
    explanation: dict[str, Any]
    shielded: bool
    location_shown: bool


class ReviewService:
    def __init__(self, pool: asyncpg.Pool, children: ChildStore, review: ReviewStore,
                 projector: Projector, audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.children = children
        self.review = review
        self.projector = projector
        self.audit = audit

    async def open_items(self) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await self.review.open_items(conn)

    async def looked_at(self, actor: Actor, viewer: Viewer, council: str,
                        action: str = "review.queue", only: int | None = None) -> list[Pair]:
        """The open items as ``viewer`` may see them (item ``only`` alone, if given),
        audited before they are shown (``action``: the list or one pair, the pairs'
        children as the entry's): the index team's page and ``local-node review list``,
        an operator's view as the hub's (no postcode nor location comparison of a pair
        with a shielded child)."""
        if self.audit is None:
            raise RuntimeError("showing the review items needs the node's audit log")
        pairs = [p for p in await self.pairs(viewer, council)
                 if only is None or p.item["id"] == only]
        await self.audit.record(AuditEntry.by(
            actor, action, "identity resolution review",
            {"items": [p.item["id"] for p in pairs]},
            sorted({p.item[c] for p in pairs for c in ("local_id", "candidate_id")})))
        return pairs

    async def pairs(self, viewer: Viewer, council: str) -> list[Pair]:
        """The open items, most likely first, each as ``viewer`` may see it."""
        async with self.pool.acquire() as conn:
            items = await self.review.open_items(conn)
            shielded = await ShieldStore().shielded_among(
                conn, sorted({i[c] for i in items for c in ("local_id", "candidate_id")}))
        out = []
        for row in items:
            item = dict(row)
            disclosure = Disclosure(
                any(item[c] in shielded for c in ("local_id", "candidate_id")), (council,))
            why = item["explanation"]
            explanation = dict(why if isinstance(why, dict) else json.loads(why or "{}"))
            # the model that sent the pair here, shown with the model's own detail
            explanation["model_version"] = item.get("model_version")
            shown = disclosure.sees_location_comparison(viewer, (council,))
            if not shown:
                item.update(dict.fromkeys(_LOCATION_COLUMNS))
                explanation["location_withheld"] = True
                explanation["fields"] = [f for f in explanation.get("fields", [])
                                         if f.get("field") not in LOCATION_COMPARISONS]
            out.append(Pair(item, explanation, disclosure.shielded, shown))
        return out

    async def status(self, item_id: int) -> str | None:
        """open, accepted, rejected or obsolete; None for no such item."""
        async with self.pool.acquire() as conn:
            return await self.review.status(conn, item_id)

    async def _open_item(self, conn: asyncpg.Connection, item_id: int) -> asyncpg.Record:
        item = await self.review.get_for_update(conn, item_id)
        if item is None:
            raise NotFoundError(f"review item {item_id} does not exist")
        if item["status"] != "open":
            raise SignpostError(f"review item {item_id} is already {item['status']}",
                                code=ErrorCode.INVALID_FIELD, status=409)
        return item

    async def _audit(self, conn: asyncpg.Connection, actor: Actor | None, action: str,
                     item: asyncpg.Record, decided_by: str) -> None:
        if self.audit is None or actor is None:
            return
        await self.audit.append(conn, AuditEntry.by(
            actor, action, PURPOSE,
            {"item": item["id"], "a": item["local_id"], "b": item["candidate_id"],
             "score": float(item["score"]), "decided_by": decided_by},
            child_ids=sorted({item["local_id"], item["candidate_id"]})))

    async def reject(self, item_id: int, decided_by: str, *,
                     actor: Actor | None = None) -> None:
        """Record that the pair are different children (audited as ``actor``)."""
        async with self.pool.acquire() as conn, conn.transaction():
            item = await self._open_item(conn, item_id)
            await self.review.decide(conn, item_id, "rejected", decided_by)
            await self._audit(conn, actor, "review.reject", item, decided_by)

    async def undo_reject(self, item_id: int, decided_by: str, *, actor: Actor) -> None:
        """Put a "different children" decision back on the list (the review page's
        Undo), audited as ``review.undo`` like the decision. A merge is not undone here:
        the absorbed child was withdrawn from the hub when it was made."""
        async with self.pool.acquire() as conn, conn.transaction():
            item = await self.review.get_for_update(conn, item_id)
            if item is None:
                raise NotFoundError(f"review item {item_id} does not exist")
            if item["status"] != "rejected":
                raise ConflictError(f"review item {item_id} is {item['status']}: only a "
                                    "decision that they are different children can be "
                                    "undone here", code=ErrorCode.REVIEW_DECIDED)
            if not await self.review.reopen_rejected(conn, item_id):
                raise ConflictError(f"review item {item_id}: a child of the pair has been "
                                    "merged into another since", code=ErrorCode.REVIEW_DECIDED)
            await self._audit(conn, actor, "review.undo", item, decided_by)

    async def accept(self, item_id: int, decided_by: str, *,
                     actor: Actor | None = None) -> str:
        """Merge the pair (audited as ``actor``); return the surviving local id."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.children.lock_index(conn)
            item = await self._open_item(conn, item_id)
            survivor_id, absorbed_id = item["candidate_id"], item["local_id"]
            rows = {c.local_id: c for c in await self.children.lock(
                conn, [survivor_id, absorbed_id])}
            survivor, absorbed = rows[survivor_id], rows[absorbed_id]
            for name in ("nhs_number", "upn"):
                mine, theirs = getattr(survivor, name), getattr(absorbed, name)
                if mine and theirs and mine != theirs:
                    raise SignpostError(
                        f"cannot merge: {name} differs ({mine} / {theirs})",
                        code=ErrorCode.INVALID_FIELD, status=409)
            moved_ids = {n: getattr(absorbed, n) for n in ("nhs_number", "upn")}
            await self.children.mark_merged(conn, absorbed_id, survivor_id)
            await self.children.move_sources(conn, absorbed_id, survivor_id)
            for name, value in moved_ids.items():
                if value and not getattr(survivor, name):
                    setattr(survivor, name, value)
            apply_rules(survivor, (await self.children.sources_of(conn, [survivor_id]))
                        .get(survivor_id, []))
            await self.children.upsert(conn, [survivor])
            await self.children.replace_blocking_keys(
                conn, {survivor_id: blocking_keys(child_fields(survivor))})
            await self.review.decide(conn, item_id, "accepted", decided_by)
            await self._audit(conn, actor, "review.accept", item, decided_by)
            await self.review.retire_child(conn, absorbed_id)
            await self.projector.publish_changes(conn, [survivor_id, absorbed_id])
        return str(survivor_id)
