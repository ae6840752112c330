"""The pure decision of hub resolution, without PostgreSQL: named cases, and generated
chunks decided exactly as the per-pair loop it replaced decided them."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from national_hub.services.link_decision import (
    CHILD_HOLDS_ANOTHER_IDENTIFIER,
    CLEAR_CHOICE_BITS,
    MATCHES_TWO_CHILDREN,
    Candidate,
    Decided,
    Gathered,
    Other,
    decide_links,
    explain,
    pair_of,
)
from national_hub.services.linking import across_councils, new_national_id
from national_hub.storage.resolution import RecordKey
from national_hub.storage.review_queue import NewReview
from protocol.matching import (
    DEFAULT_MODEL,
    Decision,
    IdentityFields,
    TermFrequencies,
    blocking_keys,
    score,
)
from protocol.matching.child_identifiers import identifiers_of
from tests import strategies

AMELIA = IdentityFields("Amelia", "Okafor", date(2015, 3, 14), 2, postcode="BN1 1AA",
                        address_line="12 Church Road", nhs_number="9434765919")
ACROSS = across_councils(DEFAULT_MODEL)


def ids() -> Any:
    counter = itertools.count()
    return lambda: f"NEW{next(counter)}"


def gathered(candidates: list[Candidate], others: dict[RecordKey, Other],
             council: str = "A", **kwargs: Any) -> Gathered:
    keys = {c.local_id: blocking_keys(c.fields) for c in candidates}
    by_key: dict[str, list[RecordKey]] = {}
    for rk, other in others.items():
        for k in blocking_keys(other.fields):
            by_key.setdefault(k, []).append(rk)
    # what the hub reads of each child's records: their identifiers, key shared or not
    identifiers = {nid: frozenset().union(*(identifiers_of(others[rk].fields.nhs_number,
                                                           others[rk].fields.upn)
                                            for rk in rks if rk in others))
                   for nid, rks in kwargs.get("holders", {}).items()}
    return Gathered(council, candidates, keys, others, by_key, **kwargs,
                    identifiers=identifiers)


def decide(g: Gathered) -> Decided:
    return decide_links(g, DEFAULT_MODEL, ACROSS, None, 200, ids())


def test_of_two_children_as_old_the_one_whose_first_record_comes_first_is_joined() -> None:
    """Two children made in one transaction, neither certainly another child: the
    record joins the one holding the first record by council and local id, whatever
    their random national ids say, so two runs on the same records decide alike."""
    made = datetime(2026, 1, 1)
    for first, second in (("NC-ZZZ", "NC-AAA"), ("NC-AAA", "NC-ZZZ")):
        others = {("B", "b1"): Other(replace(AMELIA, postcode="TF1 2AB", nhs_number=None),
                                     first),
                  ("B", "b2"): Other(replace(AMELIA, address_line="1 Hill Road",
                                             nhs_number=None), second)}
        d = decide(gathered([Candidate("a1", replace(AMELIA, nhs_number=None), None)], others,
                            created={first: made, second: made},
                            holders={first: frozenset({("B", "b1")}),
                                     second: frozenset({("B", "b2")})}))
        assert d.national_ids == {"a1": first}


def test_a_match_elsewhere_links_to_the_oldest_child() -> None:
    others = {("B", "b1"): Other(replace(AMELIA, postcode="TF1 2AB"), "NC-OLD"),
              ("B", "b2"): Other(replace(AMELIA, given_name="Millie"), "NC-NEW")}
    created = {"NC-OLD": datetime(2026, 1, 1), "NC-NEW": datetime(2026, 2, 1)}
    d = decide(gathered([Candidate("a1", AMELIA, None)], others, created=created,
                        holders={"NC-OLD": frozenset({("B", "b1")}),
                                 "NC-NEW": frozenset({("B", "b2")})}))
    assert d.national_ids == {"a1": "NC-OLD"}
    # the other strong match is not merged through a1: a person looks at it
    assert [(r.a, r.b) for r in d.reviews.values()] == [(("A", "a1"), ("B", "b2"))]
    assert d.model_versions["a1"] == ACROSS.version
    assert d.new_ids == []


def test_nothing_alike_is_a_new_child_and_a_split_takes_a_fresh_id() -> None:
    stranger = IdentityFields("Zofia", "Nowak", date(2012, 7, 1), 2, postcode="SW1A 1AA")
    d = decide(gathered([Candidate("a1", stranger, "NC-SHARED")], {},
                        holders={"NC-SHARED": frozenset({("A", "a2")})}))
    assert d.national_ids == {"a1": "NEW0"} and d.new_ids == ["NEW0"]
    d = decide(gathered([Candidate("a1", stranger, "NC-MINE")], {},
                        holders={"NC-MINE": frozenset()}))
    assert d.national_ids == {"a1": "NC-MINE"} and d.new_ids == []


def test_the_later_of_two_chunk_records_joins_the_earlier() -> None:
    d = decide(gathered([Candidate("a1", AMELIA, None),
                         Candidate("a2", replace(AMELIA, address_line="12 Church Rd"), None)],
                        {}))
    assert d.national_ids == {"a1": "NEW0", "a2": "NEW0"}


def test_separated_is_never_scored_and_linked_links_unless_vetoed() -> None:
    partner = Other(replace(AMELIA, given_name="Zofia"), "NC-B")  # twins: veto
    me, them = ("A", "a1"), ("B", "b1")
    holders = {"NC-B": frozenset({them})}
    d = decide(gathered([Candidate("a1", replace(AMELIA, nhs_number=None), None)],
                        {them: replace(partner, fields=replace(partner.fields,
                                                               nhs_number=None))},
                        linked=frozenset({frozenset((me, them))}), holders=holders))
    assert d.national_ids == {"a1": "NEW0"}  # the twins rule vetoes even a person's link
    alike = Other(replace(AMELIA, family_name="Okafor-Smith"), "NC-B")
    d = decide(gathered([Candidate("a1", AMELIA, None)], {them: alike},
                        separated=frozenset({frozenset((me, them))}), holders=holders,
                        open_reviews={frozenset((me, them)): 7}))
    assert d.national_ids == {"a1": "NEW0"} and d.reviews == {} and d.stale_reviews == [7]
    d = decide(gathered([Candidate("a1", replace(AMELIA, dob=date(2014, 3, 14)), None)],
                        {them: alike}, linked=frozenset({frozenset((me, them))}),
                        holders=holders, created={"NC-B": datetime(2026, 1, 1)}))
    assert d.national_ids == {"a1": "NC-B"}


def test_a_child_holding_another_upn_is_not_joined_through_a_namesake() -> None:
    """Two Libby Taylors born the same day, each with a UPN of her own, and a record of
    one of them at another council without a UPN: that record links to the first, and
    the second, however well she matches it, does not join their child. She is a child
    of her own, and her match with the record between them goes to a person."""
    libby = IdentityFields("Libby", "Taylor", date(2013, 6, 26), 2, postcode="BN1 9HG",
                           address_line="92 Albert Mews", upn="Z846203417010")
    other_libby = replace(libby, postcode="BN2 4BB", address_line="66 Cedar Street",
                          upn="L846201817013")
    moved = replace(other_libby, upn=None)  # at another council, her UPN not recorded
    others = {("B", "b1"): Other(moved, "NC-LIBBY"), ("A", "a0"): Other(libby, "NC-LIBBY")}
    holders = {"NC-LIBBY": frozenset(others)}
    created = {"NC-LIBBY": datetime(2026, 1, 1)}
    d = decide(gathered([Candidate("a1", other_libby, None)], others, holders=holders,
                        created=created))
    assert d.national_ids == {"a1": "NEW0"}
    (review,) = d.reviews.values()
    assert (review.a, review.b) == (("A", "a1"), ("B", "b1"))
    assert review.explanation["held"] == CHILD_HOLDS_ANOTHER_IDENTIFIER
    # without the other UPN at that child, the match joins it as before
    d = decide(gathered([Candidate("a1", other_libby, None)], {("B", "b1"): others["B", "b1"]},
                        holders={"NC-LIBBY": frozenset({("B", "b1")})}, created=created))
    assert d.national_ids == {"a1": "NC-LIBBY"} and d.reviews == {}
    # the record with the other UPN counts whether or not it shares a key with hers: a
    # record of the first Libby under another name and date of birth (a person linked it)
    apart = {("B", "b1"): others["B", "b1"],
             ("C", "c1"): Other(replace(libby, given_name="Elizabeth", family_name="Osei",
                                        dob=date(2013, 1, 9), postcode="M1 1AE"), "NC-LIBBY")}
    assert not blocking_keys(other_libby) & blocking_keys(apart["C", "c1"].fields)
    d = decide(gathered([Candidate("a1", other_libby, None)], apart,
                        holders={"NC-LIBBY": frozenset(apart)}, created=created))
    assert d.national_ids == {"a1": "NEW0"}
    assert [r.explanation["held"] for r in d.reviews.values()] == [
        CHILD_HOLDS_ANOTHER_IDENTIFIER]
    # a pair a person linked joins all the same
    d = decide(gathered([Candidate("a1", other_libby, None)], others, holders=holders,
                        created=created, linked=frozenset({frozenset((("A", "a1"),
                                                                      ("B", "b1")))})))
    assert d.national_ids == {"a1": "NC-LIBBY"}


def test_a_twin_without_an_identifier_joins_the_twin_it_matches_not_the_older() -> None:
    """Twins Albie and Alfie Gray, each with a UPN at East Sussex, resolved as two
    children, Albie's the older. Alfie's record at West Sussex has no UPN: "Alfie" is
    one letter from "Albie", which the name rule reads as a typo, so it links to both.
    It joins Alfie's child, which it matches clearly better, not the older child; and
    with nothing to tell the two apart it joins neither, and a person decides."""
    albie = IdentityFields("Albie", "Gray", date(2014, 9, 2), 1, postcode="BN3 7QT",
                           address_line="4 Hove Park Villas", upn="Z846203417010")
    alfie = replace(albie, given_name="Alfie", upn="L846201817013")
    others = {("E1", "albie"): Other(albie, "NC-ALBIE"), ("E1", "alfie"): Other(alfie, "NC-ALFIE")}
    holders = {"NC-ALBIE": frozenset({("E1", "albie")}), "NC-ALFIE": frozenset({("E1", "alfie")})}
    created = {"NC-ALBIE": datetime(2026, 1, 1), "NC-ALFIE": datetime(2026, 1, 2)}
    record = replace(alfie, upn=None)
    # it links to both (the name rule reads Albie for Alfie as a typo) ...
    assert {score(record, x, ACROSS).decision() for x in (albie, alfie)} == {Decision.LINK}
    d = decide(gathered([Candidate("w1", record, None)], others, council="W", holders=holders,
                        created=created))
    assert d.national_ids == {"w1": "NC-ALFIE"}  # ... and joins the child it matches
    (review,) = d.reviews.values()
    assert (review.a, review.b) == (("E1", "albie"), ("W", "w1"))
    assert "held" not in review.explanation
    # the same name at both children: nothing says which, so neither, and two reviews
    namesake = replace(albie, given_name="Alfie")
    d = decide(gathered([Candidate("w1", record, None)],
                        {**others, ("E1", "albie"): Other(namesake, "NC-ALBIE")}, council="W",
                        holders=holders, created=created))
    assert d.national_ids == {"w1": "NEW0"}
    assert {r.explanation["held"] for r in d.reviews.values()} == {MATCHES_TWO_CHILDREN}
    assert len(d.reviews) == 2
    # without a UPN at either child, nothing says they are two: the older is joined
    d = decide(gathered([Candidate("w1", record, None)],
                        {rk: Other(replace(o.fields, upn=None), o.national_id)
                         for rk, o in others.items()}, council="W", holders=holders,
                        created=created))
    assert d.national_ids == {"w1": "NC-ALBIE"}


# -- the per-pair loop the bulk decision replaced, as it was, as an oracle ---------------


def per_pair(g: Gathered, max_block: int, tf: TermFrequencies | None) -> Decided:
    council, new_id = g.council, ids()
    mine = {(council, c.local_id) for c in g.candidates}
    batch_by_key: dict[str, list[str]] = {}
    for c in g.candidates:
        for k in g.keys[c.local_id]:
            batch_by_key.setdefault(k, []).append(c.local_id)
    fields = {c.local_id: c.fields for c in g.candidates}
    holders = {nid: set(rks) for nid, rks in g.holders.items()}
    new_ids: list[str] = []
    new_order: dict[str, int] = {}
    assigned: dict[str, str] = {}
    decided_by: dict[str, str] = {}
    joins: list[tuple[str, str]] = []
    reviews: dict[tuple[RecordKey, RecordKey], NewReview] = {}

    def age(nid: str) -> tuple[Any, ...]:
        first = min(g.holders.get(nid, ()), default=("", ""))
        return ((0, g.created[nid], first, nid) if nid in g.created
                else (1, new_order[nid], ("", ""), nid))

    for c in g.candidates:
        me: RecordKey = (council, c.local_id)
        partners: dict[RecordKey, tuple[IdentityFields, str]] = {}
        for k in g.keys[c.local_id]:
            for rk in g.by_key.get(k, ()):
                partners[rk] = (g.others[rk].fields, g.others[rk].national_id)
            block = batch_by_key[k]
            if len(block) <= max_block:
                for lid in block:
                    if lid in assigned:
                        partners[(council, lid)] = (fields[lid], assigned[lid])
        for pair in g.linked:
            if me in pair:
                (rk,) = pair - {me}
                if rk in g.others:
                    partners[rk] = (g.others[rk].fields, g.others[rk].national_id)
                elif rk[0] == council and rk[1] in assigned:
                    partners[rk] = (fields[rk[1]], assigned[rk[1]])
        apart = {next(iter(p - {me})) for p in g.separated if me in p}
        links, greys = [], []
        for rk, (other_fields, nid) in partners.items():
            if rk in apart:
                continue
            explanation = score(c.fields, other_fields,
                                DEFAULT_MODEL if me[0] == rk[0] else ACROSS, tf)
            decision = explanation.decision()
            if frozenset((me, rk)) in g.linked and explanation.veto is None:
                decision = Decision.LINK
            if decision is Decision.LINK:
                links.append((rk, nid, explanation))
            elif decision is Decision.REVIEW:
                greys.append((rk, nid, explanation))
        def child_holds(nid: str) -> list[tuple[str, str]]:
            """The valid identifiers of the child's records: outside the chunk, and the
            chunk's records placed with it so far."""
            return [*g.identifiers.get(nid, ()),
                    *(i for lid, n in assigned.items() if n == nid
                      for i in identifiers_of(fields[lid].nhs_number, fields[lid].upn))]

        def differ(x: list[tuple[str, str]], y: list[tuple[str, str]]) -> bool:
            return any(kx == ky and vx != vy for kx, vx in x for ky, vy in y)

        mine_ids = list(identifiers_of(c.fields.nhs_number, c.fields.upn))
        kept_apart = {nid for _, nid, _ in links + greys if differ(mine_ids, child_holds(nid))}
        targets = {nid for rk, nid, _ in links if not holders.get(nid, set()) & apart
                   and (nid not in kept_apart or frozenset((me, rk)) in g.linked)}
        torn: set[str] = set()
        if len(targets) > 1 and not any(frozenset((me, rk)) in g.linked
                                        for rk, nid, _ in links if nid in targets):
            if any(x != y and differ(child_holds(x), child_holds(y))
                   for x in targets for y in targets):
                best = {nid: max(e.total for _, n, e in links if n == nid) for nid in targets}
                ranked = sorted(best, key=best.__getitem__, reverse=True)
                if best[ranked[0]] - best[ranked[1]] >= CLEAR_CHOICE_BITS:
                    targets = {ranked[0]}
                else:
                    targets, torn = set(), targets
        decided_by[c.local_id] = DEFAULT_MODEL.version
        if targets:
            chosen = min(targets, key=age)
            strongest = max(((rk, e) for rk, nid, e in links if nid == chosen),
                            key=lambda link: (link[1].total, link[0][0] == me[0]))
            decided_by[c.local_id] = (DEFAULT_MODEL if me[0] == strongest[0][0]
                                      else ACROSS).version
            if c.current_id is not None and c.current_id != chosen:
                joins.append((c.current_id, chosen))
        elif c.current_id is not None and not holders.get(c.current_id):
            chosen = c.current_id
        else:
            chosen = new_id()
            new_order[chosen] = len(new_ids)
            new_ids.append(chosen)
        assigned[c.local_id] = chosen
        holders.setdefault(chosen, set()).add(me)
        for rk, nid, explanation in links + greys:
            if nid != chosen:
                a, b = pair_of(me, rk)
                shown = explain(explanation, DEFAULT_MODEL if me[0] == rk[0] else ACROSS)
                if nid in kept_apart:
                    shown["held"] = CHILD_HOLDS_ANOTHER_IDENTIFIER
                elif nid in torn:
                    shown["held"] = MATCHES_TWO_CHILDREN
                reviews[(a, b)] = NewReview(a, b, explanation.total, shown)
    assert not (mine & set(g.others))
    stale = [rid for pair, rid in g.open_reviews.items() if tuple(sorted(pair)) not in reviews]
    return Decided(assigned, reviews, stale, joins, decided_by, new_ids)


@st.composite
def chunks(draw: st.DrawFn) -> Gathered:
    """A council's chunk and the hub around it: records drawn as pairs of one child
    (so they meet), spread between the chunk and two councils' resolved records, with
    national ids shared, human decisions and open reviews drawn among them."""
    pairs = draw(st.lists(strategies.identity_pairs(), min_size=1, max_size=6))
    records = [r for pair in pairs for r in pair]
    homes = draw(st.lists(st.sampled_from(["chunk", "A", "B"]), min_size=len(records),
                          max_size=len(records)))
    nids = [f"NC{draw(st.integers(0, 3))}" for _ in records]
    candidates, others = [], {}
    for i, (record, home) in enumerate(zip(records, homes, strict=True)):
        if home == "chunk":
            candidates.append(Candidate(f"r{i}", record, draw(st.sampled_from(
                [None, nids[i]]))))
        else:
            others[(home, f"r{i}")] = Other(record, nids[i])
    if not candidates:
        candidates.append(Candidate("r-last", records[0], None))
    everyone = [("A", c.local_id) for c in candidates] + list(others)
    decided = draw(st.lists(st.tuples(st.sampled_from(everyone), st.sampled_from(everyone),
                                      st.sampled_from(["linked", "separated", "open"])),
                            max_size=4))
    linked = frozenset(frozenset((x, y)) for x, y, s in decided if x != y and s == "linked")
    separated = frozenset(frozenset((x, y)) for x, y, s in decided
                          if x != y and s == "separated") - linked
    open_reviews = {frozenset((x, y)): n for n, (x, y, s) in enumerate(decided)
                    if x != y and s == "open"}
    holders: dict[str, set[RecordKey]] = {f"NC{n}": set() for n in range(4)}
    for rk, other in others.items():
        holders[other.national_id].add(rk)
    return gathered(candidates, others, open_reviews=open_reviews, linked=linked,
                    separated=separated,
                    holders={nid: frozenset(rks) for nid, rks in holders.items()},
                    created={f"NC{n}": datetime(2026, 1, 1 + n) for n in range(4)})


@settings(max_examples=150, deadline=None)
@given(chunks(), st.sampled_from([1, 2, 200]), st.booleans())
def test_bulk_decision_equals_the_per_pair_loop(g: Gathered, max_block: int,
                                                with_tf: bool) -> None:
    tf = (TermFrequencies.from_records([*(c.fields for c in g.candidates),
                                        *(o.fields for o in g.others.values())])
          if with_tf else None)
    bulk = decide_links(g, DEFAULT_MODEL, ACROSS, tf, max_block, ids())
    assert bulk == per_pair(g, max_block, tf)


def test_a_new_national_id_is_nc_and_sixteen_crockford_letters_of_fresh_randomness() -> None:
    ids = [new_national_id() for _ in range(2000)]
    assert all(re.fullmatch(r"NC[0-9A-HJKMNP-TV-Z]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # every letter of the alphabet turns up: 80 random bits, not a narrower draw
    assert {c for i in ids for c in i[2:]} == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
