"""Loading a source feed into the local index.

Rows are taken in chunks; each chunk is one transaction that updates children,
their source rows, their involvements, their blocking keys, the review list and
the outbox together. A row finds its child by, in order: its own (source,
source_ref) seen before; its NHS number; its UPN; exactly the same given name,
family name and date of birth with no conflicting identifier, a sex that does not
differ and something else recorded on both (``same_name_places``); or probabilistic
matching (``protocol.matching``) against the children sharing a blocking key:
a confident match links, an uncertain one becomes a new child *and* an item on the
review list the index team decides (``local-node review``), otherwise a new child.
Conflicting identifiers never merge (the matcher's hard rules veto them).

A row lacking a name or its date of birth (flagged incomplete by the feed parser)
takes the same path on what it has: its identifiers, its blocking keys; it never
matches by the exact name-and-date rule, and it never blanks a field the child
already has.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

from local_node.feed_text import MAX_FEED_BYTES
from local_node.feeds import FeedRow, Identity, RowError, parse_feed
from local_node.services.identity import apply_rules
from local_node.services.matching import (
    ChunkScores,
    Scored,
    candidates,
    conflicts,
    decide_row,
    same_name_places,
)
from local_node.services.projection import Projector
from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from local_node.storage.models import ModelStore
from local_node.storage.review import ReviewStore
from local_node.storage.shielding import ShieldStore
from protocol.matching import DEFAULT_MODEL, IdentityFields, Model
from protocol.matching.blocking import remembering_blocking_keys
from protocol.records import Involvement
from server_common.gc_pause import paused_gc

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000


@dataclass(slots=True)
class IngestReport:
    feed: str
    rows_read: int = 0
    rows_loaded: int = 0
    children_created: int = 0
    children_updated: int = 0
    outbox_entries: int = 0
    errors: list[RowError] = field(default_factory=list)
    # Not errors, for someone to look at: a column ignored, a value a row loaded without.
    warnings: list[RowError] = field(default_factory=list)
    refused: bool = False         # the whole file was refused (its header): nothing read
    identifier_conflicts: int = 0
    matched_probabilistically: int = 0
    sent_to_review: int = 0
    rows_incomplete: int = 0      # loaded without a name or date of birth
    model_version: str = DEFAULT_MODEL.version   # the model local matching used
    pairs_scored: int = 0         # candidate pairs matching weighed (all but a few in bulk)
    pairs_scored_alone: int = 0   # of those, scored one by one (a child changed meanwhile)


# An Involvement's fields, in order: those of InvolvementRow after its first three.
_POINTER_VALUES = operator.attrgetter(*Involvement.__slots__)


def _fields(obj: Any) -> dict[str, Any]:
    """A slotted dataclass's fields as a dict; dataclasses.asdict deep-copies every
    value, which costs more than the rest of a row's ingest."""
    return {name: getattr(obj, name) for name in obj.__slots__}


# A child's identity as a row or the rules leave it differs from the one it had most
# often by an identifier, a postcode in the same district or an address: the keys of
# its names, date of birth and district are remembered apart. A few chunks' worth (about
# 1.4 kB each): most of what is found again is found within a chunk (bench.ingest
# --children 20000 made them 26,479 times of 37,016; 23,812 remembering 100,000).
_blocking_keys = remembering_blocking_keys(20_000)


@functools.lru_cache(maxsize=200_000)
def keys_for(fields: IdentityFields) -> frozenset[str]:
    """Blocking keys, remembered: a child's identity rarely changes between rows."""
    return frozenset(_blocking_keys(fields))


def child_fields(child: ChildRow) -> IdentityFields:
    return IdentityFields(
        given_name=child.given_name, family_name=child.family_name, dob=child.dob,
        sex=child.sex, other_given_names=child.other_given_names,
        former_family_names=tuple(child.former_family_names or ()),
        postcode=child.postcode, address_line=child.address_line,
        nhs_number=child.nhs_number, upn=child.upn,
    )


def row_fields(ident: Identity) -> IdentityFields:
    return IdentityFields(
        given_name=ident.given_name, family_name=ident.family_name, dob=ident.dob,
        sex=ident.sex, other_given_names=ident.other_given_names,
        former_family_names=(ident.former_family_name,) if ident.former_family_name else (),
        postcode=ident.postcode, address_line=ident.address_line,
        nhs_number=ident.nhs_number, upn=ident.upn,
    )


def _name_key(given: str | None, family: str | None,
              dob: date | None) -> tuple[str, str, date] | None:
    """The exact-match key, or None when a part is absent (never matched on less)."""
    if not (given and family and dob):
        return None
    return (given.strip().lower(), family.strip().lower(), dob)


class _ChunkIndex:
    """In-memory lookups over the children one chunk can touch."""

    def __init__(self, children: list[ChildRow]) -> None:
        self.by_id: dict[str, ChildRow] = {}
        self.by_nhs: dict[str, ChildRow] = {}
        self.by_upn: dict[str, ChildRow] = {}
        # (given, family, dob) → {id(child): child}
        self.by_name: dict[tuple[str, str, date], dict[int, ChildRow]] = {}
        # key → {id(child): child}: dicts, since a common key can hold thousands of
        # children and a list membership test would make a chunk quadratic.
        self.by_key: dict[str, dict[int, ChildRow]] = {}
        # id(child) → the identity it was last indexed under: a row that changes
        # nothing of who the child is (most of them) is not indexed again.
        self.indexed: dict[int, IdentityFields] = {}
        # local_id → who the child was as loaded: the blocking keys it holds in the
        # database are those of this identity, and only the difference is written.
        self.loaded: dict[str, IdentityFields] = {}
        for child in children:
            self.add(child)

    def add(self, child: ChildRow, keys: list[str] | None = None) -> None:
        """A child as loaded from the database, indexed by its identifiers and name, and
        under ``keys`` (a candidate: the keys it was found by). Not under the other keys
        it holds: every key a row is matched by is first read from the database
        (``IngestService._fetch_candidates``), which finds the child by it if the key is
        not too common; indexing every found child under every key it holds, in case,
        was a tenth of an ingest's CPU."""
        self.by_id[child.local_id] = child
        fields = child_fields(child)
        self.loaded[child.local_id] = fields
        if keys is None:
            self.reindex(child, fields)
            return
        self.indexed[id(child)] = fields
        self.add_keys(child, keys)

    def add_keys(self, child: ChildRow, keys: list[str]) -> None:
        for key in keys:
            self.by_key.setdefault(key, {})[id(child)] = child

    def fields(self, child: ChildRow) -> IdentityFields:
        """Who an indexed child now is: ``child_fields(child)`` without building it again,
        since every change to a child in the chunk is followed by :meth:`reindex`."""
        return self.indexed[id(child)]

    def held(self, local_id: str) -> frozenset[str]:
        """The blocking keys the child holds in the database (none if it is new)."""
        loaded = self.loaded.get(local_id)
        return keys_for(loaded) if loaded is not None else frozenset()

    def reindex(self, child: ChildRow, fields: IdentityFields | None = None) -> None:
        """Index the child as it now is (``fields``, if the caller has them): by
        identifiers, name and the blocking keys the database does not hold for it (all of
        a new child's; a loaded child's that its rows in this chunk gave it)."""
        fields = child_fields(child) if fields is None else fields
        if self.indexed.get(id(child)) == fields:
            return
        self.indexed[id(child)] = fields
        if child.nhs_number:
            self.by_nhs.setdefault(child.nhs_number, child)
        if child.upn:
            self.by_upn.setdefault(child.upn, child)
        name_key = _name_key(child.given_name, child.family_name, child.dob)
        if name_key is not None:
            self.by_name.setdefault(name_key, {})[id(child)] = child
        if fields == self.loaded.get(child.local_id):
            return  # as loaded: it holds every key of who it is (none to ask for)
        for key in keys_for(fields) - self.held(child.local_id):
            self.by_key.setdefault(key, {})[id(child)] = child


class IngestService:
    def __init__(self, pool: asyncpg.Pool, children: ChildStore, projector: Projector,
                 review: ReviewStore | None = None, models: ModelStore | None = None,
                 *, max_feed_bytes: int = MAX_FEED_BYTES) -> None:
        self.pool = pool
        self.max_feed_bytes = max_feed_bytes
        self.children = children
        self.projector = projector
        self.review = review or ReviewStore()
        self.models = models or ModelStore()
        self.shields = ShieldStore()
        self.chunk_rows = CHUNK_ROWS
        # False: every candidate pair scored alone by ``protocol.matching.score``, as
        # before the bulk engine; the reference the bulk path is tested against.
        self.bulk_matching = True

    async def model(self) -> Model:
        """The model local matching uses: the newest trained, or the default."""
        async with self.pool.acquire() as conn:
            stored = await self.models.latest(conn)
        return Model.from_dict(stored.parameters) if stored is not None else DEFAULT_MODEL

    async def ingest_file(self, feed: str, path: Path,
                          progress: Callable[[int], None] | None = None) -> IngestReport:
        parsed = parse_feed(feed, path, max_bytes=self.max_feed_bytes)
        model = await self.model()
        report = IngestReport(feed=feed, errors=list(parsed.errors),
                              warnings=list(parsed.warnings), refused=parsed.refused,
                              model_version=model.version)
        report.rows_read = 0 if parsed.refused else len(parsed.rows) + len(parsed.errors)
        for start in range(0, len(parsed.rows), self.chunk_rows):
            chunk = parsed.rows[start:start + self.chunk_rows]
            # A chunk's objects are freed by reference counting; the cyclic collector
            # would rescan every child and row held so far (a sixth of the CPU or more).
            with paused_gc():
                async with self.pool.acquire() as conn, conn.transaction():
                    await self.children.lock_index(conn)
                    await self._ingest_chunk(conn, feed, chunk, report, model)
            if progress is not None:
                progress(len(chunk))
        log.info("feed ingested", extra={k: v for k, v in asdict(report).items()
                                         if k not in ("errors", "warnings")}
                                      | {"errors": len(report.errors),
                                         "warnings": len(report.warnings)})
        return report

    async def _ingest_chunk(self, conn: asyncpg.Connection, feed: str, rows: list[FeedRow],
                            report: IngestReport, model: Model) -> None:
        known_refs = await self.children.by_source_refs(conn, feed,
                                                        [r.source_ref for r in rows])
        idents = [r.identity for r in rows]
        fields_of = [row_fields(i) for i in idents]
        name_keys = [_name_key(i.given_name, i.family_name, i.dob) for i in idents]
        # First the children a row can be placed with for certain (its own earlier row,
        # an identifier, the exact name and date of birth) ...
        found = await self.children.find(
            conn,
            nhs=[i.nhs_number for i in idents if i.nhs_number],
            upn=[i.upn for i in idents if i.upn],
            name_dob=[k for k in name_keys if k is not None],
        )
        found += await self.children.get_many(
            conn, [lid for lid in known_refs.values() if lid not in {c.local_id for c in found}]
        )
        index = _ChunkIndex(found)
        # ... then, only for the rows that have none, the candidates sharing a blocking
        # key: most rows of a second feed find their child by an identifier or by name,
        # and fetching (and indexing) every key's children for them was most of a load.
        shared_names = {k for k, n in Counter(name_keys).items() if n > 1}
        probed: set[int] = set()
        await self._fetch_candidates(conn, index, fields_of, probed, [
            i for i, row in enumerate(rows)
            if not self._certain(row, known_refs, index, name_keys[i] in shared_names)])
        existing_ids = set(index.by_id)
        # Every pair the rows below can foresee, scored in one bulk call. Only a row
        # matched by its keys needs them: most rows of a second feed are placed for
        # certain, and their keys were a third of the blocking keys a load made.
        foreseen = sorted(probed) if self.bulk_matching else []
        scores = ChunkScores(model, rows, fields_of,
                             {i: keys_for(fields_of[i]) for i in foreseen}, foreseen,
                             index.by_key, index.fields)
        new_children: list[ChildRow] = []
        origin: dict[int, int] = {}   # id(new child) -> the position of the row it came from
        placements: list[tuple[FeedRow, ChildRow, str | None]] = []
        touched: dict[int, ChildRow] = {}
        reviews: list[tuple[ChildRow, ChildRow, Scored]] = []

        for i, (row, fields) in enumerate(zip(rows, fields_of, strict=True)):
            child = self._match(row, known_refs, index)
            decided_by = None
            uncertain: tuple[ChildRow, Scored] | None = None
            if child is None:
                if i not in probed:  # rare: an earlier row of the chunk changed the answer
                    await self._fetch_candidates(conn, index, fields_of, probed, [i])
                decided_by = model.version
                child, uncertain = decide_row(
                    (c, scores.score(i, fields, c, origin.get(id(c))))
                    for c in candidates(row, keys_for(fields), index.by_key).values())
                if child is not None:
                    report.matched_probabilistically += 1
            if child is None:
                ident = row.identity
                child = ChildRow(local_id="", given_name=ident.given_name,
                                 family_name=ident.family_name, dob=ident.dob,
                                 former_family_names=[])
                new_children.append(child)
                origin[id(child)] = i
                if uncertain is not None:
                    reviews.append((child, *uncertain))
            report.identifier_conflicts += self._merge(child, row, index)
            index.reindex(child)
            if child.local_id:
                index.by_id[child.local_id] = child
            placements.append((row, child, decided_by))
            touched[id(child)] = child
        report.pairs_scored += scores.looked_up
        report.pairs_scored_alone += scores.fallbacks

        for child, local_id in zip(new_children,
                                   await self.children.allocate_ids(conn, len(new_children)),
                                   strict=True):
            child.local_id = local_id
        changed = list(touched.values())
        # Source rows first (the children they name are written below, in this
        # transaction), so that each child is written once, as the rules decide.
        await self.children.defer_source_check(conn)
        # A row's first load is copied in; a row loaded before is upserted.
        for rows_in, write in ((True, self.children.upsert_sources),
                               (False, self.children.insert_new_sources)):
            these = [p for p in placements if (p[0].source_ref in known_refs) is rows_in]
            await write(conn, [(feed, row.source_ref, child.local_id, _fields(row.identity))
                               for row, child, _ in these],
                        [decided_by for _, _, decided_by in these])
        # The stated identity rules over all of each child's source rows decide who the
        # child is; the in-chunk merge above was only a working approximation. A child
        # this chunk created from one row has that row alone: it is not read back.
        rows_of = Counter(id(child) for _, child, _ in placements)
        alone = {id(child): row for row, child, _ in placements
                 if id(child) in origin and rows_of[id(child)] == 1}
        sources = await self.children.sources_of(
            conn, [c.local_id for c in changed if id(c) not in alone])
        for child in changed:
            only = alone.get(id(child))
            apply_rules(child, sources.get(child.local_id, []) if only is None else [
                {"source": feed, "received_at": None, "identity": _fields(only.identity)}])
        await self.children.insert_new(conn, new_children)
        await self.children.upsert(conn, [c for c in changed if id(c) not in origin])
        added: list[tuple[str, str]] = []
        removed: list[tuple[str, str]] = []
        of_new: list[tuple[str, str]] = []   # keys of the children this chunk created
        for child in changed:
            held = index.held(child.local_id)
            wanted = keys_for(child_fields(child))
            if held != wanted:
                (of_new if id(child) in origin else added).extend(
                    (key, child.local_id) for key in wanted - held)
                removed += [(key, child.local_id) for key in held - wanted]
        await self.children.add_blocking_keys_of_new(conn, of_new)
        await self.children.change_blocking_keys(conn, added=added, removed=removed)
        report.sent_to_review += await self.review.add(conn, [
            (new.local_id, candidate.local_id, result.total, result.explain().to_dict())
            for new, candidate, result in reviews
        ], model.version)
        pointers = [(row.source_ref in known_refs,
                     InvolvementRow(feed, row.source_ref, child.local_id,
                                    *_POINTER_VALUES(row.involvement)))
                    for row, child, _ in placements if row.involvement is not None]
        await self.children.upsert_involvements(conn, [p for seen, p in pointers if seen])
        await self.children.insert_new_involvements(conn, [p for seen, p in pointers
                                                           if not seen])
        # new review pairs and identifiers may relate a child to a shielded one
        marked = await self.shields.refresh(conn)
        report.outbox_entries += await self.projector.publish_children(conn, changed)
        # children this chunk did not change but newly related to a shielded one:
        # published again, shielded
        placed = {c.local_id for c in changed}
        report.outbox_entries += await self.projector.publish_changes(
            conn, [m for m in marked if m not in placed])
        report.rows_loaded += len(rows)
        report.rows_incomplete += sum(1 for r in rows if r.identity.incomplete)
        report.children_created += len(new_children)
        report.children_updated += sum(1 for c in changed if c.local_id in existing_ids)

    async def _fetch_candidates(self, conn: asyncpg.Connection, index: _ChunkIndex,
                                fields_of: list[IdentityFields], probed: set[int],
                                positions: list[int]) -> None:
        """Add to the index the children sharing a blocking key with these rows."""
        probed.update(positions)
        keys = set().union(*(keys_for(fields_of[i]) for i in positions)) if positions else set()
        if not keys:
            return
        for child, shared in await self.children.candidates(conn, sorted(keys)):
            known = index.by_id.get(child.local_id)
            if known is None:
                index.add(child, shared)
            else:  # one object per child, never two
                index.add_keys(known, shared)

    def _certain(self, row: FeedRow, known_refs: dict[str, str], index: _ChunkIndex,
                 name_shared: bool) -> bool:
        """Whether the row's child is settled before the chunk runs: its own earlier
        row, an identifier held, or a name and date of birth that one child has and
        no other row of the chunk repeats."""
        ident = row.identity
        if (row.source_ref in known_refs or (ident.nhs_number and ident.nhs_number in index.by_nhs)
                or (ident.upn and ident.upn in index.by_upn)):
            return True
        return not name_shared and self._match(row, known_refs, index) is not None

    def _match(self, row: FeedRow, known_refs: dict[str, str],
               index: _ChunkIndex) -> ChildRow | None:
        ident = row.identity
        if row.source_ref in known_refs and known_refs[row.source_ref] in index.by_id:
            return index.by_id[known_refs[row.source_ref]]
        if ident.nhs_number and ident.nhs_number in index.by_nhs:
            return index.by_nhs[ident.nhs_number]
        if ident.upn and ident.upn in index.by_upn:
            return index.by_upn[ident.upn]
        name_key = _name_key(ident.given_name, ident.family_name, ident.dob)
        same_name = [c for c in index.by_name.get(name_key, {}).values()
                     if not conflicts(c, row)] if name_key is not None else []
        if len(same_name) == 1 and same_name_places(same_name[0], row):
            return same_name[0]
        return None

    @staticmethod
    def _merge(child: ChildRow, row: FeedRow, index: _ChunkIndex) -> int:
        """The newest row's identity wins; identifiers are added, never moved. Returns
        1 if the row carried an identifier already held by another child."""
        ident = row.identity
        conflict = 0
        if ident.family_name and ident.family_name != child.family_name and child.family_name:
            former = child.former_family_names or []
            if child.family_name not in former:
                child.former_family_names = [*former, child.family_name]
        # An absent field keeps what the child has (apply_rules then decides by trust).
        child.given_name = ident.given_name or child.given_name
        child.family_name = ident.family_name or child.family_name
        child.dob = ident.dob or child.dob
        if ident.sex:
            child.sex = ident.sex
        for name in ("other_given_names", "address_line", "postcode"):
            value = getattr(ident, name)
            if value:
                setattr(child, name, value)
        if ident.former_family_name and ident.former_family_name not in (
                child.former_family_names or []):
            child.former_family_names = [*(child.former_family_names or []),
                                         ident.former_family_name]
        if row.shielded:
            child.shielded = True
        for name, lookup in (("nhs_number", index.by_nhs), ("upn", index.by_upn)):
            value = getattr(ident, name)
            if not value or getattr(child, name) == value:
                continue
            holder = lookup.get(value)
            if (holder is not None and holder is not child) or getattr(child, name):
                conflict = 1  # never move an identifier between children or overwrite one
                continue
            setattr(child, name, value)
        return conflict
