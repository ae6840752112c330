"""The review queue and why a link is what it is (DESIGN §5).

A person decides each grey-zone pair. **link** merges the two national children: the
older id survives, the other redirects to it and is never used again. **separate**
keeps them apart, splitting them first if they share a child; the resolver never
links a separated pair again, through later updates or re-resolution. Each decision
is audited in its own transaction (the audit log fails closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from national_hub.services.linking import Linker, explain, identity_of, new_national_id
from national_hub.storage.councils import CouncilStore
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import RecordKey, ResolutionStore, ReviewRow
from national_hub.storage.resolution_queue import ResolutionQueueStore
from protocol.errors import ConflictError, ErrorCode, NotFoundError
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog


@dataclass(frozen=True, slots=True)
class Decided:
    review: ReviewRow
    national_ids: tuple[str, str]  # the pair's national ids after the decision


class ReviewService:
    def __init__(self, pool: asyncpg.Pool, linker: Linker, *,
                 audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.linker = linker
        self.store: ResolutionStore = linker.resolution
        self.records: RecordStore = linker.records
        self.councils = CouncilStore()
        self.queue = ResolutionQueueStore()
        self.audit = audit

    async def list(self, status: str | None = "open", limit: int = 100) -> list[ReviewRow]:
        async with self.pool.acquire() as conn:
            return await self.store.list_reviews(conn, status, limit)

    async def queue_for(self, council: str, limit: int = 50
                        ) -> Sequence[tuple[ReviewRow, dict[RecordKey, asyncpg.Record]]]:
        """The open pairs with a record of ``council``, each with both records' identity
        columns (a record deleted since it was queued is missing from the map)."""
        async with self.pool.acquire() as conn:
            reviews = await self.store.list_reviews(conn, "open", limit, council=council)
            rows = await self.store.identities(
                conn, sorted({k for r in reviews for k in (r.a, r.b)}), with_shielded=True)
        held = {(r["council_code"], r["local_id"]): r for r in rows}
        return [(r, {k: held[k] for k in (r.a, r.b) if k in held}) for r in reviews]

    async def get(self, review_id: int) -> ReviewRow:
        async with self.pool.acquire() as conn:
            review = await self.store.get_review(conn, review_id)
        if review is None:
            raise NotFoundError(f"no review {review_id}")
        return review

    async def link(self, review_id: int, actor: Actor) -> Decided:
        return await self._decide(review_id, actor, "linked")

    async def separate(self, review_id: int, actor: Actor) -> Decided:
        return await self._decide(review_id, actor, "separated")

    async def _decide(self, review_id: int, actor: Actor, status: str) -> Decided:
        async with self.pool.acquire() as conn, conn.transaction():
            # The resolver's lock first (it writes the review queue under it), then,
            # like the resolver, the row locks of the councils whose records change.
            await self.queue.lock(conn, wait=True)
            review = await self.store.get_review(conn, review_id, for_update=True)
            if review is None:
                raise NotFoundError(f"no review {review_id}")
            if review.status != "open":
                raise ConflictError(f"review {review_id} was already decided: {review.status}"
                                    f" by {review.decided_by}", code=ErrorCode.REVIEW_DECIDED)
            ids = {(r["council_code"], r["local_id"]): r["national_id"]
                   for r in await self.store.identities(conn, [review.a, review.b])}
            if len(ids) != 2:
                raise ConflictError(f"review {review_id}: a record of the pair was deleted",
                                    code=ErrorCode.REVIEW_DECIDED)
            a_id, b_id = ids[review.a], ids[review.b]
            await self.councils.lock(conn, [review.a[0], review.b[0],
                                            *await self.store.councils_holding(
                                                conn, [i for i in (a_id, b_id) if i])])
            if status == "linked" and a_id != b_id:
                if await self.store.separated_between(conn, a_id, b_id):
                    raise ConflictError(
                        f"review {review_id}: a person separated a record of one of these "
                        "children from one of the other, and that decision stands",
                        code=ErrorCode.REVIEW_DECIDED)
                created = await self.store.created(conn, [a_id, b_id])
                survivor, retired = sorted((a_id, b_id), key=lambda n: (created[n], n))
                await self.store.merge(conn, retired, survivor)
                a_id = b_id = survivor
                touched = [survivor, retired]
            elif status == "separated" and a_id == b_id:
                b_id = new_national_id()
                await self.records.create_national_ids(conn, [b_id])
                await self.store.move(conn, review.b, b_id)
                touched = [a_id, b_id]
            else:
                touched = [a_id, b_id]
            await self.store.decide_review(conn, review_id, status, actor.who)
            await self.store.refresh_status(conn, touched)
            if self.audit is not None:
                await self.audit.append(conn, AuditEntry.by(
                    actor, f"review.{'link' if status == 'linked' else 'separate'}",
                    "identity resolution",
                    {"review": review_id, "a": "/".join(review.a), "b": "/".join(review.b),
                     "score": review.score},
                    child_ids=sorted({a_id, b_id})))
            decided = await self.store.get_review(conn, review_id)
            assert decided is not None
            return Decided(decided, (a_id, b_id))

    async def explain(self, council: str, local_id: str) -> dict[str, Any]:
        """Why the record is linked (or queued, or alone): each partner record scored
        again with the current model, field by field, with the thresholds."""
        me: RecordKey = (council, local_id)
        async with self.pool.acquire() as conn:
            await self.linker.refresh_model(conn)  # a model trained since the last batch
            rows = await self.store.identities(conn, [me])
            if not rows:
                raise NotFoundError(f"no live record {council}/{local_id}")
            row = rows[0]
            status = await conn.fetchval("SELECT link_status FROM records WHERE"
                                         " council_code = $1 AND local_id = $2",
                                         council, local_id)
            partners: dict[RecordKey, tuple[asyncpg.Record, str, ReviewRow | None]] = {}
            for h in await self.store.holders(conn, [row["national_id"]]):
                rk = (h["council_code"], h["local_id"])
                if rk != me:
                    partners[rk] = (h, "linked", None)
            reviews = await self.store.reviews_involving(conn, council, [local_id])
            reviews = [r for r in reviews if me in (r.a, r.b)]
            others = [r.b if r.a == me else r.a for r in reviews]
            found = {(p["council_code"], p["local_id"]): p
                     for p in await self.store.identities(conn, others)}
            for r, rk in zip(reviews, others, strict=True):
                if rk in found:
                    relation = {"open": "review"}.get(r.status, r.status)
                    if rk in partners and relation == "linked":
                        partners[rk] = (found[rk], "linked", r)
                    elif rk not in partners:
                        partners[rk] = (found[rk], relation, r)
        mine = identity_of(row)
        out = []
        for rk, (p, relation, review) in sorted(partners.items()):
            explanation = self.linker.score(me, mine, rk, identity_of(p))
            model = self.linker.model if rk[0] == council else self.linker.across
            out.append({
                "partner": {"council": rk[0], "local_id": rk[1], "national_id": p["national_id"]},
                "relation": relation,
                "review": None if review is None else {
                    "id": review.id, "status": review.status, "decided_by": review.decided_by},
                **explain(explanation, model),
            })
        out.sort(key=lambda e: (e["relation"] != "linked", -e["total"]))
        return {"council": council, "local_id": local_id, "national_id": row["national_id"],
                "status": status, "partners": out}
