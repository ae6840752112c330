"""The review queue and why a link is what it is (docs/design.md §5).

A person decides each grey-zone pair. **link** merges the two national children: the
older id survives, the other redirects to it and is never used again. **separate**
keeps them apart, splitting them first if they share a child; the resolver never
links a separated pair again, through later updates or re-resolution. A link that
would make one child of two whose records hold different NHS numbers or UPNs (the
resolver's rule: ``protocol.matching.child_identifiers``) needs the person to confirm it; without
that it is refused, 409 ``identifier_conflict``, nothing changed. Each decision
is audited in its own transaction (the audit log fails closed), with every child id
it touched (both records' national ids before and after).

Who decides (:func:`authorise`): the index team of a council whose record is in the
pair, and, to separate a pair with a shielded record, the shielding council's. The
same councils may reverse a decision by deciding the pair the other way. Shielding
follows every merge and split (``ShieldingStore.refresh``) and is never lifted by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from national_hub.services.linking import (
    Linker,
    explain,
    identity_of,
    new_national_id,
    withhold_location,
    without_location,
)
from national_hub.storage.councils import CouncilStore
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import RecordKey, ResolutionStore
from national_hub.storage.resolution_queue import ResolutionQueueStore
from national_hub.storage.review_queue import ReviewQueueStore, ReviewRow
from national_hub.storage.shielding import ShieldingStore
from protocol.disclosure import Disclosure, Viewer
from protocol.errors import AuthError, ConflictError, ErrorCode, NotFoundError
from protocol.matching import IdentityFields
from protocol.matching.child_identifiers import differing_identifiers
from protocol.matching.words import DIFFERING_WORDS
from server_common.audit.entry import Actor, AuditEntry
from server_common.audit.service import AuditLog

# Handlers take RecordKey and ReviewRow from here (they are storage's), never from storage.


@dataclass(frozen=True, slots=True)
class Shown:
    """What a viewer may name of the records of some review pairs (``shown_of``)."""

    local_ids: frozenset[RecordKey]  # which record it is at its council
    councils: frozenset[RecordKey]   # which council holds it


@dataclass(frozen=True, slots=True)
class Decided:
    review: ReviewRow
    national_ids: tuple[str, str]  # the pair's national ids after the decision


class ReviewService:
    def __init__(self, pool: asyncpg.Pool, linker: Linker, *, councils: CouncilStore,
                 queue: ResolutionQueueStore, shielding: ShieldingStore,
                 audit: AuditLog | None = None) -> None:
        self.pool = pool
        self.linker = linker
        self.store: ResolutionStore = linker.resolution
        self.reviews: ReviewQueueStore = linker.reviews
        self.records: RecordStore = linker.records
        self.councils = councils
        self.queue = queue
        self.shielding = shielding
        self.audit = audit

    async def list(self, status: str | None = "open", limit: int = 100) -> list[ReviewRow]:
        async with self.pool.acquire() as conn:
            return await self.reviews.list_reviews(conn, status, limit)

    async def queue_for(self, council: str, viewer: Viewer, limit: int = 50
                        ) -> Sequence[tuple[ReviewRow, dict[RecordKey, asyncpg.Record],
                                            dict[str, Any]]]:
        """The open pairs with a record of ``council``, each with both records' identity
        columns (a record deleted since it was queued is missing from the map) and the
        explanation as ``viewer`` may see it."""
        async with self.pool.acquire() as conn:
            await self.linker.refresh_model(conn)
            reviews = await self.reviews.list_reviews(conn, "open", limit, council=council)
            keys = sorted({k for r in reviews for k in (r.a, r.b)})
            rows = await self.store.identities(conn, keys, with_shielded=True)
            await self.linker.load_frequencies(conn, map(identity_of, rows))
            shielding = await self.shielding.shielding(conn, keys)
        held = {(r["council_code"], r["local_id"]): r for r in rows}
        out = []
        for r in reviews:
            pair = {k: held[k] for k in (r.a, r.b) if k in held}
            out.append((r, pair, self.shown_explanation(r, shielding, pair, viewer)))
        return out

    async def shown_of(self, reviews: Sequence[ReviewRow], viewer: Viewer) -> Shown:
        """Which records of these pairs ``viewer`` may name: a pair with a shielded record
        shows another council's local id only to whoever may see the councils that know
        the child (``Disclosure.sees_local_id``), and which council holds it only to them
        or when that council shields the child (``Disclosure.sees_council``)."""
        keys = sorted({k for r in reviews for k in (r.a, r.b)})
        async with self.pool.acquire() as conn:
            shielding = await self.shielding.shielding(conn, keys)
        pairs = [(r, _pair_disclosure(shielding, r.a, r.b)) for r in reviews]
        return Shown(
            local_ids=frozenset(k for r, d in pairs for k in (r.a, r.b)
                                if d.sees_local_id(viewer, k[0])),
            councils=frozenset(k for r, d in pairs for k in (r.a, r.b)
                               if d.sees_council(viewer, k[0])))

    async def waiting(self, council: str) -> int:
        """How many pairs wait for ``council``'s index team (the queue shows 50 at most)."""
        async with self.pool.acquire() as conn:
            return await self.reviews.open_review_count(conn, council)

    async def decided_for(self, council: str, limit: int = 50) -> Sequence[ReviewRow]:
        """The decided pairs with a record of ``council``, newest first: its index team
        may reverse them."""
        async with self.pool.acquire() as conn:
            return await self.reviews.decided_reviews(conn, council, limit)

    async def listed(self, viewer: Viewer, status: str | None = "open", limit: int = 100
                     ) -> Sequence[tuple[ReviewRow, dict[str, Any]]]:
        """The queue for the command line: each pair with its explanation as ``viewer``
        may see it (no location comparison of a pair with a shielded record)."""
        async with self.pool.acquire() as conn:
            await self.linker.refresh_model(conn)
            reviews = await self.reviews.list_reviews(conn, status, limit)
            keys = sorted({k for r in reviews for k in (r.a, r.b)})
            rows = {(r["council_code"], r["local_id"]): r
                    for r in await self.store.identities(conn, keys)}
            await self.linker.load_frequencies(conn, map(identity_of, rows.values()))
            shielding = await self.shielding.shielding(conn, keys)
        return [(r, self.shown_explanation(r, shielding, rows, viewer)) for r in reviews]

    async def get(self, review_id: int) -> ReviewRow:
        async with self.pool.acquire() as conn:
            review = await self.reviews.get_review(conn, review_id)
        if review is None:
            raise NotFoundError(f"no review {review_id}")
        return review

    async def conflicts(self, reviews: Sequence[ReviewRow]) -> dict[int, tuple[str, ...]]:
        """For each pair whose link would make one child of two whose records hold
        different NHS numbers or UPNs: which (``"nhs_number"``, ``"upn"``). What the
        review screen warns of; the decision asks again under its locks."""
        keys = sorted({k for r in reviews for k in (r.a, r.b)})
        async with self.pool.acquire() as conn:
            ids = {(r["council_code"], r["local_id"]): r["national_id"]
                   for r in await self.store.identities(conn, keys)}
            apart = [(r.id, ids[r.a], ids[r.b]) for r in reviews
                     if r.a in ids and r.b in ids and ids[r.a] != ids[r.b]]
            differ = await self._differing(conn, [(a, b) for _, a, b in apart])
        return {review_id: d for (review_id, _, _), d in zip(apart, differ, strict=True) if d}

    async def _differing(self, conn: asyncpg.Connection, children: Sequence[tuple[str, str]]
                         ) -> Sequence[tuple[str, ...]]:
        """For each pair of national children, the identifiers their records hold
        differently (:func:`~protocol.matching.child_identifiers.differing_identifiers`)."""
        held: dict[str, list[IdentityFields]] = {}
        # a record not resolved yet holds no child (None): it conflicts with none
        for r in await self.store.holders(conn, sorted({n for pair in children for n in pair
                                                        if n})):
            held.setdefault(r["national_id"], []).append(identity_of(r))
        return [differing_identifiers(held.get(a, []), held.get(b, [])) for a, b in children]

    async def link(self, review_id: int, actor: Actor, decider: Viewer, *,
                   identifier_conflict_confirmed: bool = False) -> Decided:
        """Link the pair: refused with 409 ``identifier_conflict`` if it would make one
        child of two holding different NHS numbers or UPNs, unless the person confirmed
        it (``identifier_conflict_confirmed``; the audit entry then says which)."""
        return await self._decide(review_id, actor, decider, "linked",
                                  identifier_conflict_confirmed)

    async def separate(self, review_id: int, actor: Actor, decider: Viewer) -> Decided:
        return await self._decide(review_id, actor, decider, "separated")

    async def _decide(self, review_id: int, actor: Actor, decider: Viewer,
                      status: str, identifier_conflict_confirmed: bool = False) -> Decided:
        conflict: tuple[str, ...] = ()
        async with self.pool.acquire() as conn, conn.transaction():
            # The resolver's lock first (it writes the review queue under it), then,
            # like the resolver, the row locks of the councils whose records change.
            await self.queue.lock(conn, wait=True)
            review = await self.reviews.get_review(conn, review_id, for_update=True)
            if review is None:
                raise NotFoundError(f"no review {review_id}")
            shielding = await self.shielding.shielding(conn, [review.a, review.b])
            authorise(review, decider, status, {c for v in shielding.values() for c in v})
            if review.status == status:
                # not by whom: the decider may be of a council this team may not be told
                # knows a shielded child (the review screen withholds it: Shown.councils)
                raise ConflictError(f"review {review_id} was already decided: {review.status}",
                                    code=ErrorCode.REVIEW_DECIDED)
            ids = {(r["council_code"], r["local_id"]): r["national_id"]
                   for r in await self.store.identities(conn, [review.a, review.b])}
            if len(ids) != 2:
                raise ConflictError(f"review {review_id}: a record of the pair was deleted",
                                    code=ErrorCode.REVIEW_DECIDED)
            before = (ids[review.a], ids[review.b])
            a_id, b_id = before
            await self.councils.lock(conn, [review.a[0], review.b[0],
                                            *await self.store.councils_holding(
                                                conn, [i for i in (a_id, b_id) if i])])
            # decided first: a decision reversed no longer counts as a separation below
            await self.reviews.decide_review(conn, review_id, status, actor.who)
            if status == "linked" and a_id != b_id:
                if await self.reviews.separated_between(conn, a_id, b_id):
                    raise ConflictError(
                        f"review {review_id}: a person separated a record of one of these "
                        "children from one of the other, and that decision stands",
                        code=ErrorCode.REVIEW_DECIDED)
                (conflict,) = await self._differing(conn, [(a_id, b_id)])
                if conflict and not identifier_conflict_confirmed:
                    raise ConflictError(
                        f"review {review_id}: the two children's records hold different "
                        f"{' and '.join(DIFFERING_WORDS[c] for c in conflict)}; link them "
                        "only with the confirmation that someone checked",
                        code=ErrorCode.IDENTIFIER_CONFLICT,
                        detail={"identifiers": list(conflict)})
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
            await self.store.refresh_status(conn, touched)
            # a merge or a split changes who is related to whom: shielding follows it
            await self.shielding.refresh(conn, [review.a, review.b], touched)
            if self.audit is not None:
                await self.audit.append(conn, AuditEntry.by(
                    actor, f"review.{'link' if status == 'linked' else 'separate'}",
                    "identity resolution",
                    {"review": review_id, "a": "/".join(review.a), "b": "/".join(review.b),
                     "score": review.score, "for_council": decider.council,
                     "previous": review.status,
                     "before": {"a": before[0], "b": before[1]},
                     "after": {"a": a_id, "b": b_id},
                     # the kinds only: the values are the records', not the decision's
                     **({"identifier_conflict_confirmed": list(conflict)} if conflict
                        else {})},
                    # every child the decision touched: both records' ids before and after
                    child_ids=sorted({i for i in (*before, a_id, b_id) if i})))
            decided = await self.reviews.get_review(conn, review_id)
            assert decided is not None
            return Decided(decided, (a_id, b_id))

    async def undo(self, review_id: int, actor: Actor, decider: Viewer) -> ReviewRow:
        """Put a decided pair back in the queue, apart, as it was before anyone decided
        it (the review screen's "Undo"): a link is split (the second record takes a new
        national id, as a separation would), a separation simply reopened. Who may undo
        is who may decide the pair the other way (:func:`authorise`); audited as
        ``review.undo`` in the same transaction, with every child id it touched."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.queue.lock(conn, wait=True)
            review = await self.reviews.get_review(conn, review_id, for_update=True)
            if review is None:
                raise NotFoundError(f"no review {review_id}")
            shielding = await self.shielding.shielding(conn, [review.a, review.b])
            # undoing a link separates the records: the shielding council's call. Who may
            # act on the pair is settled before its state is told: a third council learns
            # nothing of any pair, open or decided
            authorise(review, decider, "separated" if review.status == "linked" else "linked",
                      {c for v in shielding.values() for c in v})
            if review.status not in ("linked", "separated"):
                raise ConflictError(f"review {review_id} is {review.status}: nothing to undo",
                                    code=ErrorCode.REVIEW_DECIDED)
            ids = {(r["council_code"], r["local_id"]): r["national_id"]
                   for r in await self.store.identities(conn, [review.a, review.b])}
            if len(ids) != 2:
                raise ConflictError(f"review {review_id}: a record of the pair was deleted",
                                    code=ErrorCode.REVIEW_DECIDED)
            a_id, b_id = before = (ids[review.a], ids[review.b])
            await self.councils.lock(conn, [review.a[0], review.b[0],
                                            *await self.store.councils_holding(
                                                conn, [i for i in before if i])])
            await self.reviews.reopen_review(conn, review_id)
            if review.status == "linked" and a_id == b_id:
                b_id = new_national_id()
                await self.records.create_national_ids(conn, [b_id])
                await self.store.move(conn, review.b, b_id)
            touched = sorted({a_id, b_id, *before})
            await self.store.refresh_status(conn, touched)
            await self.shielding.refresh(conn, [review.a, review.b], touched)
            if self.audit is not None:
                await self.audit.append(conn, AuditEntry.by(
                    actor, "review.undo", "identity resolution",
                    {"review": review_id, "a": "/".join(review.a), "b": "/".join(review.b),
                     "for_council": decider.council, "previous": review.status,
                     "before": {"a": before[0], "b": before[1]},
                     "after": {"a": a_id, "b": b_id}},
                    child_ids=[i for i in touched if i]))
            reopened = await self.reviews.get_review(conn, review_id)
            assert reopened is not None
            return reopened

    async def explain(self, council: str, local_id: str, viewer: Viewer) -> dict[str, Any]:
        """Why the record is linked (or queued, or alone): each partner record scored
        again with the current model, field by field, with the thresholds. A pair with a
        shielded record is scored without location, and shows no location comparison,
        to whoever may not see where both records' child lives."""
        me: RecordKey = (council, local_id)
        async with self.pool.acquire() as conn:
            await self.linker.refresh_model(conn)  # a model trained since the last batch
            rows = await self.store.identities(conn, [me])
            if not rows:
                raise NotFoundError(f"no live record {council}/{local_id}")
            row = rows[0]
            status = await self.records.link_status(conn, council, local_id)
            partners: dict[RecordKey, tuple[asyncpg.Record, str, ReviewRow | None]] = {}
            for h in await self.store.holders(conn, [row["national_id"]]):
                rk = (h["council_code"], h["local_id"])
                if rk != me:
                    partners[rk] = (h, "linked", None)
            reviews = await self.reviews.reviews_involving(conn, council, [local_id])
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
            await self.linker.load_frequencies(
                conn, [identity_of(row), *(identity_of(p) for p, _, _ in partners.values())])
            shielding = await self.shielding.shielding(conn, [me, *partners])
        mine = identity_of(row)
        out = []
        for rk, (p, relation, review) in sorted(partners.items()):
            disclosure = _pair_disclosure(shielding, me, rk)
            shown = disclosure.sees_location_comparison(viewer, (council, rk[0]))
            theirs = identity_of(p)
            explanation = (self.linker.score(me, mine, rk, theirs) if shown else
                           self.linker.score(me, without_location(mine), rk,
                                             without_location(theirs)))
            model = self.linker.model if rk[0] == council else self.linker.across
            explained = explain(explanation, model)
            # which council holds the partner, and which record of it: only for whoever
            # may see the councils that know a shielded child, and the council to
            # contact about it (protocol.disclosure); who decided the pair may name it too
            named = disclosure.sees_council(viewer, rk[0])
            out.append({
                "partner": {"council": rk[0] if named else None,
                            "national_id": p["national_id"],
                            "local_id": rk[1] if disclosure.sees_local_id(viewer, rk[0])
                            else None},
                "relation": relation,
                "review": None if review is None else {
                    "id": review.id, "status": review.status,
                    "decided_by": review.decided_by if named else None},
                **(explained if shown else withhold_location(explained)),
            })
        out.sort(key=lambda e: (e["relation"] != "linked", -e["total"]))
        return {"council": council, "local_id": local_id, "national_id": row["national_id"],
                "status": status, "partners": out}

    def shown_explanation(self, review: ReviewRow, shielding: Shielding,
                          rows: dict[RecordKey, asyncpg.Record], viewer: Viewer
                          ) -> dict[str, Any]:
        """The explanation of a review pair as ``viewer`` may see it: as queued, or, for
        a pair with a shielded record whose location the viewer may not see, scored
        again without location (the queued total includes the postcode's weight)."""
        disclosure = _pair_disclosure(shielding, review.a, review.b)
        if disclosure.sees_location_comparison(viewer, (review.a[0], review.b[0])):
            return review.explanation
        if review.a in rows and review.b in rows:
            model = self.linker.model if review.a[0] == review.b[0] else self.linker.across
            again = explain(self.linker.score(
                review.a, without_location(identity_of(rows[review.a])),
                review.b, without_location(identity_of(rows[review.b]))), model)
        else:  # a record deleted since: nothing to score, nothing of the total to show
            again = {"fields": [], "total": 0.0, "thresholds": review.explanation.get(
                "thresholds", {}), "model_version": review.explanation.get("model_version")}
        return withhold_location(again)


Shielding = dict[RecordKey, tuple[str, ...]]  # record → the councils shielding it


def _pair_disclosure(shielding: Shielding, a: RecordKey, b: RecordKey) -> Disclosure:
    by = tuple(sorted({*shielding.get(a, ()), *shielding.get(b, ())}))
    return Disclosure(bool(by), by)


def authorise(review: ReviewRow, decider: Viewer, status: str, shielders: set[str]) -> None:
    """Who may decide a pair (pure). Only the index team of a council whose record is in
    the pair, to link, to separate, or to reverse an earlier decision either way. A
    separation of a pair with a shielded record: only the index team of a council that
    shields it, when one of those holds a record of the pair (shielding that comes from
    a third council's record stays with both records, whoever separates them).

        >>> r = ReviewRow(1, ("E1", "A"), ("E2", "B"), 1.0, {}, "open", None)
        >>> def who(council, status, shielders):
        ...     try:
        ...         authorise(r, Viewer("index_team", council), status, shielders)
        ...     except AuthError as exc:
        ...         return str(exc.code)
        ...     return "allowed"
        >>> who("E1", "separated", {"E1"}), who("E2", "separated", {"E1"})
        ('allowed', 'forbidden')
        >>> who("E2", "linked", {"E1"}), who("E3", "linked", set())
        ('allowed', 'forbidden')
    """
    owners = sorted({review.a[0], review.b[0]})
    if not any(decider.index_team_of(c) for c in owners):
        # not which councils they are: any pair number may be asked, and who holds a
        # shielded child's pairs says where it went
        raise AuthError(f"pair {review.id} is decided by the index teams of the councils "
                        "whose records it holds only", code=ErrorCode.FORBIDDEN, status=403)
    shielding_owners = sorted(shielders & set(owners))
    if status == "separated" and shielding_owners and decider.council not in shielding_owners:
        raise AuthError(f"pair {review.id} involves a shielded child: only the index team "
                        f"of {' and '.join(shielding_owners)} may separate it",
                        code=ErrorCode.FORBIDDEN, status=403)
