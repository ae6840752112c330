"""National identity resolution, incremental (docs/design.md §5).

Batch intake writes each record's blocking keys and queues it; the resolver
(:mod:`national_hub.services.resolver`) hands a chunk of one council's queued records
to :meth:`Linker.plan`, which gathers (async: one SQL join over their keys gives every
other resolved live record sharing one, a key held by more than ``max_block`` records
skipped as no evidence, counted per council (:mod:`national_hub.storage.blocks`); the
decided pairs; who holds each id), decides (pure:
:func:`~national_hub.services.link_decision.decide_links` scores every pair of the
chunk in bulk), then writes. Record by record, before anything is written (so each
record is written once):

* **link** (above the upper threshold, no veto): the record joins its partner's
  national child; of several, the oldest. Another strongly matching child it does
  not join goes to review, never merged by a bridge;
* **review** (the grey zone): the record keeps its own national child and the pair
  goes to the review queue;
* **new**: its own national child: the one it held if nothing else holds it, else a
  fresh id (a split: the others keep theirs).

Human decisions stick: a pair a person *separated* is never linked, directly or by
joining a child that holds the other record; a pair a person *linked* counts as a
link unless a hard rule now vetoes it. A child left empty because its record joined
another redirects to it; ids are never reused.
"""

from __future__ import annotations

import base64
import functools
import secrets
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import asyncpg

from national_hub.services.link_decision import (
    Candidate,
    Decided,
    Gathered,
    Other,
    decide_links,
    explain,
)
from national_hub.storage.models import ModelStore
from national_hub.storage.records import RecordStore
from national_hub.storage.resolution import RecordKey, ResolutionStore
from national_hub.storage.resolution_terms import TermCountStore, Totals
from national_hub.storage.review_queue import NewReview, ReviewQueueStore
from protocol.disclosure import LOCATION_COMPARISONS
from protocol.matching import (
    DEFAULT_MODEL,
    Explanation,
    IdentityFields,
    Model,
    TermFrequencies,
    normalise_name,
    score,
)
from protocol.matching.child_identifiers import Identifier, identifiers_of
from protocol.matching.frequencies import TF_FIELDS, postcode_key
from protocol.matching.location import normalise_address

__all__ = ["Candidate", "LinkPlan", "Linker", "across_councils", "explain", "identity_of",
           "new_national_id", "person_key", "with_prior", "withhold_location", "without_location"]

# Records sharing one blocking key beyond which resolution skips the key (the other
# keys still find candidates), counted per council so that one council's copies skip
# only its own holders (storage/blocks.py). Not the search's limit (services.search)
# nor the node's.
RESOLUTION_BLOCK_LIMIT = 200
MIN_RECORDS_FOR_PRIOR = 200  # below this a measured prior is noise
MAX_PRIOR = 1e-3

# How each counted value is keyed (as protocol.matching.frequencies keys it); the
# TermFrequencies field each is counted for, and its name in the hub's term counts.
TERM_KEYS: dict[str, Callable[[str], str]] = {
    "given_name": normalise_name, "family_name": normalise_name,
    "postcode": postcode_key, "address_line": normalise_address,
}
_TERM_FIELD = {"given_name": "given", "family_name": "family", "postcode": "postcode",
               "address_line": "address"}


def across_councils(model: Model) -> Model:
    """The model for two records of different councils. A child known to two councils
    has almost always moved between them, so different postcodes are what a true pair
    shows (m ≈ 0.9, not the one in eight of one council's feeds) and weigh next to
    nothing; the same postcode across a boundary is still strong evidence. A move is
    also when a household often takes a new surname (a new partner, a refuge), which
    the new council records without the former one: a different surname is weaker
    evidence across councils (m 0.12 instead of 0.05). Only m changes: u (how often two
    different children agree) is the model's, trained or not."""
    postcode_m = {"FULL": 0.05, "TYPO": 0.005, "SECTOR": 0.005, "DISTRICT": 0.01,
                  "AREA": 0.035, "OTHER": 0.895}
    postcode = {level: (postcode_m[level], u)
                for level, (_, u) in model.fields["postcode"].items()}
    family = {**model.fields["family_name"],
              "OTHER": (0.12, model.fields["family_name"]["OTHER"][1])}
    return replace(model, fields={**model.fields, "postcode": postcode, "family_name": family},
                   version=f"{model.version}+across-councils")


def with_prior(model: Model, rate: tuple[int, int, int]) -> Model:
    """The model with its prior estimated from the hub's records, never below the
    model's own (a national index of ten million children's records).

    The prior is the chance that two records drawn at random are one child: about
    r / N for N records of which a share r has a partner record. r is measured where
    it is certain, on NHS numbers: ``rate`` is (live records, records with an NHS
    number, records whose NHS number another live record holds too); on exact names
    and date of birth where no record has an NHS number
    (:meth:`~national_hub.storage.resolution.ResolutionStore.partner_rate`). A trained
    model's ``partner_share`` (r as EM estimated it, which counts the partners a typo
    hides from the measure) stands beside it: the larger wins."""
    records, with_nhs, partnered = rate
    if records < MIN_RECORDS_FOR_PRIOR:
        return model
    shares = [model.partner_share]
    if with_nhs and partnered:
        shares.append(partnered / with_nhs)
    prior = min(MAX_PRIOR, max(shares) / records)
    if prior <= model.prior:
        return model
    return replace(model, prior=prior, version=f"{model.version}+prior-{prior:.2e}")


def measured_prior(model: Model, rate: tuple[int, int, int]) -> float:
    """The prior the records measure on their own (:func:`with_prior` without a trained
    ``partner_share``): the floor of a training's estimate. The start model's own EM
    share is no floor, or a first training that guessed high could never be corrected
    by the next."""
    return with_prior(replace(model, partner_share=0.0), rate).prior


# RFC 4648 base32's letters to Crockford's (no I, L, O or U), one for one
_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                             b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def new_national_id() -> str:
    """Opaque and never reused: 80 random bits, Crockford-ish base32 without padding
    (ten bytes are sixteen base32 letters exactly)."""
    return "NC" + base64.b32encode(secrets.token_bytes(10)).translate(_CROCKFORD).decode()


def identity_of(row: asyncpg.Record) -> IdentityFields:
    """IdentityFields from the record columns (``storage.resolution.IDENTITY_COLUMNS``)."""
    return IdentityFields(
        given_name=row["given_name"], family_name=row["family_name"], dob=row["dob"],
        sex=row["sex"] or 0, other_given_names=row["other_given_names"],
        former_family_names=tuple(row["former_family_names"] or ()),
        postcode=row["postcode"], address_line=row["address_line"],
        nhs_number=row["nhs_number"], upn=row["upn"])


def without_location(fields: IdentityFields) -> IdentityFields:
    """The fields with where the child lives taken out: a pair with a shielded record is
    scored this way for whoever may not see its location, so neither a comparison level
    nor the total (less the other weights) says how near the two addresses are."""
    return replace(fields, postcode=None, address_line=None)


def withhold_location(explained: dict[str, Any]) -> dict[str, Any]:
    """An explanation (as :func:`explain` makes it) without location comparisons."""
    return {**explained, "location_withheld": True,
            "fields": [f for f in explained.get("fields", [])
                       if f.get("field") not in LOCATION_COMPARISONS]}


@dataclass(frozen=True)
class HeldFrequencies(TermFrequencies):
    """Term frequencies of only the values one chunk (or one screen) weighs, with each
    field's totals over every resolved record: the adjustment of a value is what
    :class:`TermFrequencies` over all the counts gives, at the cost of the values asked."""

    totals: Mapping[str, tuple[int, float]] = field(default_factory=dict)

    @functools.cached_property
    def _stats(self) -> dict[str, tuple[int, float]]:
        return {name: self.totals.get(name, (0, 0.0)) for name in TF_FIELDS}


def partner_rate(totals: Mapping[str, Totals]) -> tuple[int, int, int]:
    """The prior's measure from the kept counts, as
    :meth:`~national_hub.storage.resolution.ResolutionStore.partner_rate` measures it
    over every record: on NHS numbers, or on exact names and date of birth where no
    record holds one."""
    none = Totals(0, 0, 0)
    records = totals.get("records", none).total
    nhs = totals.get("nhs", none)
    measure = nhs if nhs.total > 0 else totals.get("person", none)
    return records, measure.total, measure.partnered


def person_key(fields: IdentityFields) -> tuple[str, str, date] | None:
    """What the hub's ``person`` term count keys a record by (migration 014's
    ``term_person``): its lower-cased given and family names and its date of birth, or
    None unless all three are known."""
    if not (fields.given_name and fields.family_name and fields.dob):
        return None
    return fields.given_name.lower(), fields.family_name.lower(), fields.dob


@dataclass(slots=True)
class LinkPlan:
    national_ids: dict[str, str]  # local_id -> national id
    statuses: dict[str, str]  # local_id -> provisional status; refresh() settles it
    touched: list[str]  # national ids whose holders' status must be refreshed
    reviews: list[NewReview] = field(default_factory=list)
    stale_reviews: list[int] = field(default_factory=list)
    joins: list[tuple[str, str]] = field(default_factory=list)  # (left id, joined id)
    # local_id -> version of the model that decided its national id (the link's, or the
    # batch model's when nothing linked)
    model_versions: dict[str, str] = field(default_factory=dict)


def _alone(council: str, candidates: list[Candidate], g: Gathered,
           decided: Decided) -> set[str]:
    """The fresh national ids that only a new record of the chunk holds, with no review
    of it open or opened: the write that gives a pending record its id makes it
    'single', so nothing about them is left to refresh. In a council's first load most
    records are such children; counting each one's holders and searching the review
    queue for it again cost about 1.8 s of a 228,771-record drain's 5.3 s of refreshing
    statuses."""
    holders = Counter(decided.national_ids.values())
    in_review = {lid for pair in (*g.open_reviews, *decided.reviews)
                 for code, lid in pair if code == council}
    fresh = set(decided.new_ids)
    return {nid for c in candidates if c.current_id is None
            and (nid := decided.national_ids[c.local_id]) in fresh
            and holders[nid] == 1 and c.local_id not in in_review}


class Linker:
    """Plans each batch's links. The model is the newest one ``national-hub model train``
    stored (looked up on every batch, so a hub picks a new one up without a restart), or
    ``model`` (the built-in default) while none is stored."""

    def __init__(self, records: RecordStore, resolution: ResolutionStore | None = None,
                 *, model: Model = DEFAULT_MODEL, max_block: int = RESOLUTION_BLOCK_LIMIT,
                 models: ModelStore | None = None) -> None:
        self.records = records
        self.resolution = resolution or ResolutionStore()
        self.reviews = ReviewQueueStore()
        self.models = models or ModelStore()
        self.default = model
        self.base = model
        self.model = model
        self.across = across_councils(model)
        self.max_block = max_block
        self.terms = TermCountStore()
        self.tf: TermFrequencies = TermFrequencies()
        self._totals: dict[str, Totals] = {}
        self._rate = (0, 0, 0)

    def score(self, x: RecordKey, x_fields: IdentityFields, y: RecordKey,
              y_fields: IdentityFields) -> Explanation:
        """Score a pair as the last batch would have: the model for its councils (the
        same, or two), names adjusted by how common they are among the hub's records."""
        return score(x_fields, y_fields, self.model if x[0] == y[0] else self.across, self.tf)

    async def refresh_model(self, conn: asyncpg.Connection, *, fold: bool = False) -> None:
        """Take up a newly stored model, and the prior from the hub's term counts (with
        ``fold``, first counting every record change committed since the last fold: the
        resolver's chunks do, so each is decided on counts as of its start)."""
        version = await self.models.latest_version(conn)
        if version is None and self.base is not self.default:
            self.base = self.default
        elif version is not None and version != self.base.version:
            stored = await self.models.get(conn, version)
            if stored is not None:
                self.base = Model.from_dict(stored.parameters)
        if fold:
            await self.terms.fold(conn, TERM_KEYS)
        self._totals = await self.terms.totals(conn)
        self._rate = partner_rate(self._totals)
        self.model = with_prior(self.base, self._rate)
        self.across = across_councils(self.model)

    async def load_frequencies(self, conn: asyncpg.Connection,
                               records: Iterable[IdentityFields]) -> TermFrequencies:
        """The term frequencies of these records' values (the counts as of the last
        :meth:`refresh_model`'s totals), kept as ``self.tf`` for :meth:`score`."""
        wanted: set[tuple[str, str]] = set()
        for fields in records:
            for name, key_of in TERM_KEYS.items():
                value = getattr(fields, name)
                key = key_of(value) if value else ""
                if key:
                    wanted.add((_TERM_FIELD[name], key))
        counts = await self.terms.counts(conn, wanted)
        by_field: dict[str, dict[str, int]] = {f: {} for f in _TERM_FIELD.values()}
        for (term_field, key), n in counts.items():
            by_field[term_field][key] = n
        stats: dict[str, tuple[int, float]] = {}
        for name, term_field in _TERM_FIELD.items():
            t = self._totals.get(term_field)
            stats[name] = (t.total, t.squares / t.total ** 2) if t and t.total else (0, 0.0)
        self.tf = HeldFrequencies(by_field["given"], by_field["family"],
                                  by_field["postcode"], by_field["address"], totals=stats)
        return self.tf

    async def gather(self, conn: asyncpg.Connection, council: str,
                     candidates: list[Candidate], held_keys: Mapping[str, Collection[str]],
                     deleted: Iterable[str] = ()) -> Gathered:
        """Read what the chunk's decision needs: a fixed number of set queries whatever
        its size (the candidates' blocks, the decided pairs, who holds each id).
        ``held_keys``: the blocking keys each candidate holds, read with it
        (``ResolutionStore.chunk_identities``), not derived again."""
        store = self.resolution
        mine = ({(council, c.local_id) for c in candidates}
                | {(council, lid) for lid in deleted})
        keys = {c.local_id: set(held_keys.get(c.local_id, ())) for c in candidates}
        others: dict[RecordKey, Other] = {}
        by_key: dict[str, list[RecordKey]] = {}
        all_keys = set().union(*keys.values())  # sorted once, by the read
        for row in await store.candidates(conn, all_keys, self.max_block, besides=council,
                                          besides_ids=[lid for _, lid in mine]):
            rk = (row["council_code"], row["local_id"])
            others[rk] = Other(identity_of(row), row["national_id"])
            for k in row["keys"]:
                by_key.setdefault(k, []).append(rk)

        separated: set[frozenset[RecordKey]] = set()
        linked: set[frozenset[RecordKey]] = set()
        open_rows: dict[frozenset[RecordKey], int] = {}
        for row in await self.reviews.reviews_involving(conn, council, [lid for _, lid in mine]):
            pair = frozenset((row.a, row.b))
            {"separated": separated, "linked": linked}.get(row.status, set()).add(pair)
            if row.status == "open":
                open_rows[pair] = row.id
        decided_partners = {p for pair in linked for p in pair} - mine - set(others)
        for row in await store.identities(conn, sorted(decided_partners)):
            if row["national_id"] is None:  # still queued: it meets us when resolved
                continue
            others[(row["council_code"], row["local_id"])] = Other(identity_of(row),
                                                                    row["national_id"])

        # Who holds each national id apart from this chunk's records (which are moving).
        current = {c.current_id for c in candidates if c.current_id}
        known_ids = sorted({o.national_id for o in others.values()} | current)
        holders: dict[str, set[RecordKey]] = {}  # an id nobody else holds is absent
        identifiers: dict[str, set[Identifier]] = {}
        for row in await self.records.holders_of(conn, known_ids):
            rk = (row["council_code"], row["local_id"])
            if rk not in mine:
                holders.setdefault(row["national_id"], set()).add(rk)
                if row["nhs_number"] or row["upn"]:
                    identifiers.setdefault(row["national_id"], set()).update(
                        identifiers_of(row["nhs_number"], row["upn"]))
        return Gathered(council, candidates, keys, others, by_key, frozenset(linked),
                        frozenset(separated), open_rows,
                        holders,
                        await store.created(conn, known_ids),
                        {nid: frozenset(ids) for nid, ids in identifiers.items()})

    def batch_model(self, g: Gathered) -> Model:
        """The model with a prior that counts this chunk too: its records and how many
        of them have a partner among the records the hub holds, on the measure
        :func:`partner_rate` uses (NHS numbers, or where no record holds one the exact
        names and date of birth). Otherwise the second council's first chunk of movers
        would be scored as if the hub held no partners, and every pair across two
        councils that each sent their records in one go would be judged at the national
        default prior."""
        records, measured, shared = self._rate
        nhs_held = self._totals.get("nhs", Totals(0, 0, 0)).total > 0
        nhs_keys = [{k for k in g.keys[c.local_id] if k.startswith("n:")}
                    for c in g.candidates]
        if nhs_held or any(nhs_keys):
            if not nhs_held:  # the first NHS numbers: the measure moves to them
                measured = shared = 0
            with_measure = sum(1 for ks in nhs_keys if ks)
            partnered = sum(1 for ks in nhs_keys if any(k in g.by_key for k in ks))
        else:
            held = {person_key(o.fields) for o in g.others.values()}
            persons = [person_key(c.fields) for c in g.candidates]
            with_measure = sum(1 for p in persons if p is not None)
            partnered = sum(1 for p in persons if p is not None and p in held)
        return with_prior(self.base, (records + len(g.candidates),
                                      measured + with_measure, shared + 2 * partnered))

    async def plan(self, conn: asyncpg.Connection, council: str,
                   candidates: list[Candidate], *, held_keys: Mapping[str, Collection[str]],
                   deleted: Iterable[str] = ()) -> LinkPlan:
        """Decide each record's national id before it is written: gather (async), decide
        (:func:`~national_hub.services.link_decision.decide_links`, pure), then create
        the new national ids and name every id whose holders' status may change."""
        await self.refresh_model(conn, fold=True)
        g = await self.gather(conn, council, candidates, held_keys, deleted)
        # a pair is adjusted by its first record's values, and a chunk's pairs are its
        # candidates' (link_decision): the others' counts would never be read
        tf = await self.load_frequencies(conn, [c.fields for c in candidates])
        model = self.batch_model(g)
        decided = decide_links(g, model, across_councils(model), tf, self.max_block,
                               new_national_id)
        await self.records.create_national_ids(conn, decided.new_ids)

        mine = {(council, c.local_id) for c in candidates} | {(council, lid)
                                                              for lid in deleted}
        stale = set(decided.stale_reviews)
        stale_partners = sorted({p for pair, rid in g.open_reviews.items() if rid in stale
                                 for p in pair} - mine)
        partner_ids = {row["national_id"] for row in
                       await self.resolution.identities(conn, stale_partners)
                       if row["national_id"]}
        for new in decided.reviews.values():
            for rk in (new.a, new.b):
                if rk in g.others:
                    partner_ids.add(g.others[rk].national_id)
        current = {c.current_id for c in candidates if c.current_id}
        touched = (set(decided.national_ids.values()) - _alone(council, candidates, g, decided)
                   | current | partner_ids)
        return LinkPlan(
            national_ids=decided.national_ids,
            statuses={lid: "single" for lid in decided.national_ids},
            touched=sorted(touched),
            reviews=list(decided.reviews.values()),
            stale_reviews=decided.stale_reviews,
            joins=decided.joins,
            model_versions=decided.model_versions,
        )

    async def refresh(self, conn: asyncpg.Connection, plan: LinkPlan,
                      released: list[str]) -> None:
        """After the write: the review queue, children left empty by a join, and the
        status of every record sharing a touched id or a partner's (``released`` ids)."""
        await self.reviews.delete_reviews(conn, plan.stale_reviews)
        await self.reviews.put_reviews(conn, plan.reviews)
        await self.resolution.retire_if_empty(conn, plan.joins)
        await self.resolution.refresh_status(conn, sorted(set(plan.touched) | set(released)))
