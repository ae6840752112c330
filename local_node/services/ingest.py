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

import asyncio
import logging
import operator
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from local_node.feed_text import MAX_FEED_BYTES
from local_node.feeds import FeedRow, RowError, parse_feed
from local_node.services.chunk_index import (
    ChunkIndex,
    child_fields,
    keys_for,
    name_key,
    row_fields,
)
from local_node.services.identity import apply_rules
from local_node.services.matching import (
    ChunkScores,
    Scored,
    candidates,
    conflicts,
    decide_row,
    same_name_places,
)
from local_node.services.projection import Projector, decide_publication
from local_node.storage.children import ChildRow, ChildStore, InvolvementRow
from local_node.storage.models import ModelStore
from local_node.storage.review import ReviewStore
from local_node.storage.shielding import ShieldStore
from protocol.matching import DEFAULT_MODEL, IdentityFields, Model
from protocol.records import Involvement
from server_common.alongside import alongside
from server_common.gc_pause import paused_gc

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
# How often a load waiting for the next chunk's rows looks at how far the parse is.
_PARSE_POLL_SECONDS = 0.02


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


def _decide_alone(feed: str, children: list[ChildRow], alone: dict[int, FeedRow]) -> None:
    """The identity rules for children created from one row of the chunk, that row."""
    for child in children:
        apply_rules(child, [{"source": feed, "received_at": None,
                             "identity": _fields(alone[id(child)].identity)}])


def _key_changes(changed: list[ChildRow], index: ChunkIndex, origin: dict[int, int]
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, str]],
                            list[tuple[str, str]]]:
    """The (key, local_id) pairs to write: those of the children the chunk created, those
    other children gained, and those they lost (only the difference is written)."""
    of_new: list[tuple[str, str]] = []
    added: list[tuple[str, str]] = []
    removed: list[tuple[str, str]] = []
    for child in changed:
        held = index.held(child.local_id)
        wanted = keys_for(child_fields(child))
        if held != wanted:
            (of_new if id(child) in origin else added).extend(
                (key, child.local_id) for key in wanted - held)
            removed += [(key, child.local_id) for key in held - wanted]
    return of_new, added, removed


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
        model = await self.model()
        report = IngestReport(feed=feed, model_version=model.version)
        # The file is parsed in a thread while the rows read so far are loaded, chunk by
        # chunk, as they would be after it (the same chunks): the parse is Python's work
        # while PostgreSQL writes a chunk. Its objects are freed by reference counting,
        # so the cyclic collector is paused for it here, in the event loop's thread.
        rows: list[FeedRow] = []
        with ExitStack() as parse_pause:
            parse_pause.enter_context(paused_gc())
            parsing = asyncio.ensure_future(asyncio.to_thread(
                parse_feed, feed, path, max_bytes=self.max_feed_bytes, into=rows,
                pause_gc=False))
            try:
                start = 0
                while True:
                    if parsing.done():
                        parse_pause.close()
                        parsing.result()  # the parse's error, if it failed, before loading on
                    elif len(rows) - start < self.chunk_rows:
                        await asyncio.wait([parsing], timeout=_PARSE_POLL_SECONDS)
                        continue
                    chunk = rows[start:start + self.chunk_rows]
                    if not chunk:
                        break
                    start += len(chunk)
                    await self._ingest_in_transaction(feed, chunk, report, model)
                    if progress is not None:
                        progress(len(chunk))
            finally:
                await asyncio.wait([parsing])
            parsed = parsing.result()
        report.errors, report.warnings = list(parsed.errors), list(parsed.warnings)
        report.refused = parsed.refused
        report.rows_read = 0 if parsed.refused else len(parsed.rows) + len(parsed.errors)
        log.info("feed ingested", extra={k: v for k, v in asdict(report).items()
                                         if k not in ("errors", "warnings")}
                                      | {"errors": len(report.errors),
                                         "warnings": len(report.warnings)})
        return report

    async def _ingest_in_transaction(self, feed: str, chunk: list[FeedRow],
                                     report: IngestReport, model: Model) -> None:
        # A chunk's objects are freed by reference counting; the cyclic collector
        # would rescan every child and row held so far (a sixth of the CPU or more).
        with paused_gc():
            async with self.pool.acquire() as conn, conn.transaction():
                await self.children.lock_index(conn)
                await self._ingest_chunk(conn, feed, chunk, report, model)

    async def _ingest_chunk(self, conn: asyncpg.Connection, feed: str, rows: list[FeedRow],
                            report: IngestReport, model: Model) -> None:
        known_refs = await self.children.by_source_refs(conn, feed,
                                                        [r.source_ref for r in rows])
        idents = [r.identity for r in rows]
        fields_of = [row_fields(i) for i in idents]
        name_keys = [name_key(i.given_name, i.family_name, i.dob) for i in idents]
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
        index = ChunkIndex(found)
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
        await self._write_chunk(conn, feed, changed, placements, known_refs, origin, index,
                                reviews, report, model)
        report.rows_loaded += len(rows)
        report.rows_incomplete += sum(1 for r in rows if r.identity.incomplete)
        report.children_created += len(new_children)
        report.children_updated += sum(1 for c in changed if c.local_id in existing_ids)

    async def _write_chunk(self, conn: asyncpg.Connection, feed: str,
                           changed: list[ChildRow],
                           placements: list[tuple[FeedRow, ChildRow, str | None]],
                           known_refs: dict[str, str], origin: dict[int, int],
                           index: ChunkIndex,
                           reviews: list[tuple[ChildRow, ChildRow, Scored]],
                           report: IngestReport, model: Model) -> None:
        """Write a placed chunk: source rows, children as the identity rules decide them,
        review pairs, pointers, blocking keys and the outbox. Each piece of Python work
        that needs nothing the writes before it produce runs in a thread while they run
        (``server_common.alongside``): PostgreSQL and Python take a core each."""
        # The stated identity rules over all of each child's source rows decide who the
        # child is; the in-chunk merge was only a working approximation. A child this
        # chunk created from one row has that row alone: it is decided from that row
        # while the source rows are written, not read back.
        rows_of = Counter(id(child) for _, child, _ in placements)
        alone = {id(child): row for row, child, _ in placements
                 if id(child) in origin and rows_of[id(child)] == 1}
        _, sources = await alongside(
            lambda: _decide_alone(feed, [c for c in changed if id(c) in alone], alone),
            self._write_sources(conn, feed, placements, known_refs,
                                [c.local_id for c in changed if id(c) not in alone]))
        for child in changed:
            if id(child) not in alone:
                apply_rules(child, sources.get(child.local_id, []))
        # The blocking keys each child gained and lost, worked out while the children,
        # review pairs and pointers are written; then their records are projected and
        # packed while the keys are written.
        keys, (marked, gathered) = await alongside(
            lambda: _key_changes(changed, index, origin),
            self._write_children(conn, feed, changed, placements, known_refs, origin,
                                 reviews, report, model))
        publication, _ = await alongside(lambda: decide_publication(changed, *gathered),
                                         self._write_keys(conn, *keys))
        report.outbox_entries += await self.projector.write(conn, publication)
        # children this chunk did not change but newly related to a shielded one:
        # published again, shielded
        placed = {c.local_id for c in changed}
        report.outbox_entries += await self.projector.publish_changes(
            conn, [m for m in marked if m not in placed])

    async def _write_sources(self, conn: asyncpg.Connection, feed: str,
                             placements: list[tuple[FeedRow, ChildRow, str | None]],
                             known_refs: dict[str, str], read_back: list[str],
                             ) -> dict[str, list[asyncpg.Record]]:
        """Write the chunk's source rows, then read back all of the source rows of the
        children in ``read_back``. Source rows come first (the children they name are
        written later, in this transaction), so that each child is written once, as
        the rules decide."""
        await self.children.defer_source_check(conn)
        # A row's first load is copied in; a row loaded before is upserted.
        for rows_in, write in ((True, self.children.upsert_sources),
                               (False, self.children.insert_new_sources)):
            these = [p for p in placements if (p[0].source_ref in known_refs) is rows_in]
            await write(conn, [(feed, row.source_ref, child.local_id, _fields(row.identity))
                               for row, child, _ in these],
                        [decided_by for _, _, decided_by in these])
        return await self.children.sources_of(conn, read_back)

    async def _write_children(self, conn: asyncpg.Connection, feed: str,
                              changed: list[ChildRow],
                              placements: list[tuple[FeedRow, ChildRow, str | None]],
                              known_refs: dict[str, str], origin: dict[int, int],
                              reviews: list[tuple[ChildRow, ChildRow, Scored]],
                              report: IngestReport, model: Model,
                              ) -> tuple[list[str], tuple[dict[str, list[InvolvementRow]],
                                                          dict[str, str]]]:
        """Write the children, the review pairs and the pointers; mark the children now
        related to a shielded one. Returns those newly marked, and what projecting the
        changed children needs (``Projector.gather``)."""
        await self.children.insert_new(conn, [c for c in changed if id(c) in origin])
        await self.children.upsert(conn, [c for c in changed if id(c) not in origin])
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
        return marked, await self.projector.gather(conn, changed)

    async def _write_keys(self, conn: asyncpg.Connection, of_new: list[tuple[str, str]],
                          added: list[tuple[str, str]],
                          removed: list[tuple[str, str]]) -> None:
        await self.children.add_blocking_keys_of_new(conn, of_new)
        await self.children.change_blocking_keys(conn, added=added, removed=removed)

    async def _fetch_candidates(self, conn: asyncpg.Connection, index: ChunkIndex,
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

    def _certain(self, row: FeedRow, known_refs: dict[str, str], index: ChunkIndex,
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
               index: ChunkIndex) -> ChildRow | None:
        ident = row.identity
        if row.source_ref in known_refs and known_refs[row.source_ref] in index.by_id:
            return index.by_id[known_refs[row.source_ref]]
        if ident.nhs_number and ident.nhs_number in index.by_nhs:
            return index.by_nhs[ident.nhs_number]
        if ident.upn and ident.upn in index.by_upn:
            return index.by_upn[ident.upn]
        key = name_key(ident.given_name, ident.family_name, ident.dob)
        same_name = [c for c in index.by_name.get(key, {}).values()
                     if not conflicts(c, row)] if key is not None else []
        if len(same_name) == 1 and same_name_places(same_name[0], row):
            return same_name[0]
        return None

    @staticmethod
    def _merge(child: ChildRow, row: FeedRow, index: ChunkIndex) -> int:
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
