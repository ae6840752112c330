"""Comparison levels in bulk: every pair of a chunk at once, over column arrays.

:func:`~protocol.matching.compare.compare_all` compares one pair through a dozen Python
calls. A hub resolving a council's load compares hundreds of thousands of pairs, so here
each record is prepared once (:class:`Columns`: its normalised names, date parts,
postcode parts, address tokens, valid identifiers, as arrays) and each field's level is
computed for all pairs together: string similarities by ``rapidfuzz.process.cpdist``
with the very scorers ``compare`` uses (Jaro–Winkler, OSA, token-set ratio), equality,
dates and identifiers with numpy. What no array expresses cheaply and few pairs need
(a double-barrelled surname's parts, former surnames, other given names, an address
with several house numbers) is asked of ``compare``'s own cached functions, for those
pairs only. The levels equal ``compare_all``'s pair for pair
(``tests/protocol/matching/test_matching_bulk.py`` checks it on generated pairs).

    >>> from datetime import date
    >>> from protocol.matching.compare import IdentityFields, compare_all
    >>> a = IdentityFields("Alfie", "Smith-Jones", date(2015, 3, 4), postcode="BN1 1AA")
    >>> b = IdentityFields("Alfred", "Jones", date(2015, 4, 3), postcode="BN1 1AB")
    >>> cols = Columns.of([a, b])
    >>> levels = compare_columns(cols, np.array([0]), np.array([1]))
    >>> tuple(levels[0]) == compare_all(a, b)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, JaroWinkler

from protocol.matching.arrays import among
from protocol.matching.compare import (
    FIELDS,
    JW_HIGH,
    JW_MEDIUM,
    SEX_MISSING,
    AddressLevel,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
    IdentifierLevel,
    IdentityFields,
    OtherGivenNamesLevel,
    PostcodeLevel,
    SexLevel,
    _family_level,
    _other_given_level,
    forenames_agree,
    valid_nhs_number,
    valid_upn,
)
from protocol.matching.location import (
    ADDRESS_HIGH,
    ADDRESS_MEDIUM,
    STREET_SAME,
    _split,
    normalise_address,
    postcode_parts,
)
from protocol.matching.names import (
    comparable_name,
    exact_spellings,
    formal_names,
    phonetic,
    spelling_variants,
)

__all__ = ["FIELD_LEVELS", "Columns", "compare_columns", "compare_pairs", "random_pairs"]

Ints = npt.NDArray[np.int64]
# Python strings in object arrays, not numpy's fixed-width unicode: every comparison
# hands rapidfuzz a list of them, and a unicode array makes a new str per element each
# time (as long as the comparison itself; 300,000 pairs: 1.9 s -> 1.1 s).
Strs = npt.NDArray[np.object_]
Bools = npt.NDArray[np.bool_]


def _strs(values: Sequence[str]) -> Strs:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _ids(values: Sequence[str], seen: dict[str, int] | None = None) -> Ints:
    """Each value as a number, equal for equal values, 0 for '': comparing numbers over a
    million pairs costs a tenth of comparing the strings in an object array. ``seen``
    numbers the values of another column alike."""
    seen = {"": 0} if seen is None else seen
    return np.array([seen.setdefault(v, len(seen)) for v in values], dtype=np.int64)


def _spelling_ids(values: Sequence[str | None]) -> Ints:
    """Each name's exact spellings (``names.exact_spellings``: its letters without the
    spaces, and with ä, ö, ü, ø, å as digraphs) as two numbers per record, one row each,
    equal for equal spellings (0, 0 for a blank): two names are one where any of the
    first's numbers is one of the second's."""
    seen = {"": 0}
    rows = [sorted(exact_spellings(v)) or [""] for v in values]
    return np.array([(seen.setdefault(r[0], len(seen)), seen.setdefault(r[-1], len(seen)))
                     for r in rows], dtype=np.int64).reshape(len(rows), 2)


def _same_spelling(ids: Ints, a: Ints, b: Ints) -> Bools:
    x, y = ids[a], ids[b]
    return np.asarray((x[:, 0] == y[:, 0]) | (x[:, 0] == y[:, 1]) | (x[:, 1] == y[:, 0])
                      | (x[:, 1] == y[:, 1]), dtype=np.bool_)


@dataclass(frozen=True)
class Columns:
    """Records prepared for comparison, one array entry per record ('' or 0 for missing)."""

    records: tuple[IdentityFields, ...]
    given: Strs
    given_first: Strs
    given_phonetic: Strs
    given_id: Ints             # index of the given name in ``names`` (nicknames)
    given_spelling: Ints       # its exact spellings, two numbers a row (_spelling_ids)
    given_multi: Bools         # more than one part: a middle name in it (forenames_agree)
    family: Strs
    family_first: Strs
    family_phonetic: Strs
    family_multi: Bools        # more than one name part: the parts may meet (PART)
    family_spelling: Ints
    has_former: Bools
    other: Strs
    dob: Ints                  # YYYYMMDD, 0 when missing
    dob_digits: npt.NDArray[np.int8]  # its eight digits, one row per record
    sex: Ints
    postcode: Strs             # a valid postcode, and its parts as numbers (_ids):
    postcode_id: Ints          # full, sector, district, area
    sector: Ints
    district: Ints
    area: Ints
    address: Strs              # normalised
    address_compact: Strs      # without its spaces (a space slipped)
    house: Strs                # its house numbers, sorted, space-joined
    houses: Ints               # how many
    street: Strs
    nhs_raw: Ints              # identifiers as numbers (_ids): as given,
    nhs: Ints                  # and the valid compact number (0 when invalid)
    upn_raw: Ints
    upn: Ints
    nicknames: frozenset[int]  # given_id pairs (i * len(names) + j): j is a formal of i
    names: int
    # what a caller derives from these records once and asks for again (bulk_score's
    # term-frequency adjustments per record)
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, records: Sequence[IdentityFields]) -> Columns:
        given = [comparable_name(r.given_name) for r in records]
        family = [comparable_name(r.family_name) for r in records]
        vocabulary: dict[str, int] = {}
        for name in given:
            vocabulary.setdefault(name, len(vocabulary))
        pairs: list[tuple[int, str]] = []
        for name, i in list(vocabulary.items()):
            for formal in (formal_names(name) | spelling_variants(name)) if name else ():
                pairs.append((i, formal))
                vocabulary.setdefault(formal, len(vocabulary))
        size = len(vocabulary)
        parts = [postcode_parts(r.postcode) if r.postcode else None for r in records]
        address = [normalise_address(r.address_line) if r.address_line else ""
                   for r in records]
        split = [_split(a) for a in address]
        dob = np.array([r.dob.year * 10000 + r.dob.month * 100 + r.dob.day if r.dob else 0
                        for r in records], dtype=np.int64)
        return cls(
            records=tuple(records),
            given=_strs(given), given_first=_strs([g[:1] for g in given]),
            given_phonetic=_strs([phonetic(g) for g in given]),
            given_id=np.array([vocabulary[g] for g in given], dtype=np.int64),
            given_spelling=_spelling_ids([r.given_name for r in records]),
            given_multi=np.array([" " in g for g in given], dtype=bool),
            family=_strs(family), family_first=_strs([f[:1] for f in family]),
            family_phonetic=_strs([phonetic(f) for f in family]),
            family_multi=np.array([len(f.split()) > 1 for f in family], dtype=bool),
            family_spelling=_spelling_ids([r.family_name for r in records]),
            has_former=np.array([bool(r.former_family_names) for r in records], dtype=bool),
            other=_strs([comparable_name(r.other_given_names) for r in records]),
            dob=dob, dob_digits=_digits(dob),
            sex=np.array([r.sex for r in records], dtype=np.int64),
            postcode=_strs([p[0] if p else "" for p in parts]),
            postcode_id=_ids([p[0] if p else "" for p in parts]),
            sector=_ids([p[1] if p else "" for p in parts]),
            district=_ids([p[2] if p else "" for p in parts]),
            area=_ids([p[3] if p else "" for p in parts]),
            address=_strs(address),
            address_compact=_strs([a.replace(" ", "") for a in address]),
            house=_strs([" ".join(sorted(n)) for n, _ in split]),
            houses=np.array([len(n) for n, _ in split], dtype=np.int64),
            street=_strs([s for _, s in split]),
            nhs_raw=_ids([r.nhs_number or "" for r in records]),
            nhs=_ids([(valid_nhs_number(r.nhs_number) or "") if r.nhs_number else ""
                      for r in records]),
            upn_raw=_ids([r.upn or "" for r in records]),
            upn=_ids([(valid_upn(r.upn) or "") if r.upn else "" for r in records]),
            nicknames=frozenset(i * size + vocabulary[f] for i, f in pairs),
            names=size,
        )


def _similarity(scorer: Any, x: Strs, y: Strs) -> npt.NDArray[np.float64]:
    """``scorer`` for each pair, as float64: what the scorer itself returns (float32,
    cpdist's default, would move a Jaro–Winkler of 0.91999... across 0.92)."""
    if len(x) == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(process.cpdist(list(x), list(y), scorer=scorer, dtype=np.float64),
                      dtype=np.float64)


def _distance(scorer: Any, x: Strs, y: Strs, cutoff: int) -> Ints:
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(process.cpdist(list(x), list(y), scorer=scorer, dtype=np.int64,
                                     score_cutoff=cutoff), dtype=np.int64)


def _ordered(x: Strs, y: Strs) -> tuple[Strs, Strs]:
    """Each pair smaller first, as ``compare`` orders its cached pairs."""
    swap = x > y
    return np.where(swap, y, x), np.where(swap, x, y)


def _typo_close(x: Strs, y: Strs, xf: Strs, yf: Strs) -> Bools:
    """``names.typo_close`` pair by pair: both given, same first letter, OSA <= 1."""
    out = (x != "") & (y != "") & (xf == yf)
    idx = np.flatnonzero(out)
    out[idx] = _distance(OSA.distance, x[idx], y[idx], 1) <= 1
    return np.asarray(out, dtype=np.bool_)


def _swapped(c: Columns, a: Ints, b: Ints) -> Bools:
    """``compare.names_swapped`` pair by pair."""
    ga, fa, gb, fb = c.given[a], c.family[a], c.given[b], c.family[b]
    out = (ga != "") & (fa != "") & (gb != "") & (fb != "") & (ga != gb) & (ga != fa)
    idx = np.flatnonzero(out)
    ai, bi = a[idx], b[idx]
    out[idx] = (_typo_close(c.given[ai], c.family[bi], c.given_first[ai], c.family_first[bi])
                & _typo_close(c.family[ai], c.given[bi], c.family_first[ai],
                              c.given_first[bi]))
    return np.asarray(out, dtype=np.bool_)


def given_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.given[a], c.given[b]
    level = np.full(len(a), int(GivenNameLevel.OTHER), dtype=np.int64)
    missing = (x == "") | (y == "")
    exact = ~missing & _same_spelling(c.given_spelling, a, b)
    ia, ib = c.given_id[a], c.given_id[b]
    codes = np.fromiter(c.nicknames, dtype=np.int64, count=len(c.nicknames))
    nickname = ~missing & ~exact & (among(ia * c.names + ib, codes)
                                    | among(ib * c.names + ia, codes))
    rest = np.flatnonzero(~missing & ~exact & ~nickname)
    xs, ys = _ordered(x[rest], y[rest])
    jw = _similarity(JaroWinkler.similarity, xs, ys)
    sub = np.where(jw >= JW_HIGH, int(GivenNameLevel.JW_92),
                   np.where(jw >= JW_MEDIUM, int(GivenNameLevel.JW_85),
                            np.where(c.given_phonetic[a[rest]] == c.given_phonetic[b[rest]],
                                     int(GivenNameLevel.PHONETIC),
                                     int(GivenNameLevel.OTHER))))
    level[rest] = sub
    level[nickname] = GivenNameLevel.NICKNAME
    level[exact] = GivenNameLevel.EXACT
    level[missing] = GivenNameLevel.MISSING
    for k in np.flatnonzero(~missing & (level < GivenNameLevel.NICKNAME)
                            & (c.given_multi[a] | c.given_multi[b])):
        # rare: a middle name in the given name
        if forenames_agree(str(x[k]), str(c.other[a[k]]), str(y[k]), str(c.other[b[k]])):
            level[k] = GivenNameLevel.NICKNAME
    low = np.flatnonzero(~missing & (level < GivenNameLevel.JW_92))
    level[low[_swapped(c, a[low], b[low])]] = GivenNameLevel.SWAPPED
    return level


def other_given_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.other[a], c.other[b]
    missing = (x == "") | (y == "")
    level = np.where(missing, int(OtherGivenNamesLevel.MISSING),
                     np.where(x == y, int(OtherGivenNamesLevel.EXACT),
                              int(OtherGivenNamesLevel.OTHER))).astype(np.int64)
    for k in np.flatnonzero(~missing & (x != y)):  # rare: most records have none
        p, q = sorted((str(x[k]), str(y[k])))
        level[k] = _other_given_level(p, q)
    return level


def family_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.family[a], c.family[b]
    missing = (x == "") | (y == "")
    exact = ~missing & _same_spelling(c.family_spelling, a, b)
    level = np.full(len(a), int(FamilyNameLevel.OTHER), dtype=np.int64)
    rest = ~missing & ~exact
    multi = rest & (c.family_multi[a] | c.family_multi[b])
    for k in np.flatnonzero(multi):  # a double-barrelled name: its parts, by compare
        p, q = sorted((str(x[k]), str(y[k])))
        level[k] = _family_level(p, q)
    simple = np.flatnonzero(rest & ~multi)
    xs, ys = _ordered(x[simple], y[simple])
    jw = _similarity(JaroWinkler.similarity, xs, ys)
    slip = _typo_close(x[simple], y[simple], c.family_first[a[simple]],
                       c.family_first[b[simple]])
    level[simple] = np.where(
        (jw >= JW_HIGH) | slip, int(FamilyNameLevel.JW_HIGH),
        np.where(c.family_phonetic[a[simple]] == c.family_phonetic[b[simple]],
                 int(FamilyNameLevel.PHONETIC), int(FamilyNameLevel.OTHER)))
    low = np.flatnonzero(rest & (level < FamilyNameLevel.JW_HIGH))
    swapped = low[_swapped(c, a[low], b[low])]
    former = np.flatnonzero(rest & (level < FamilyNameLevel.PART)
                            & (c.has_former[a] | c.has_former[b]))
    for k in np.setdiff1d(former, swapped):  # rare: a former surname recorded
        ra, rb = c.records[a[k]], c.records[b[k]]
        if (any(comparable_name(f) == x[k] for f in rb.former_family_names)
                or any(comparable_name(f) == y[k] for f in ra.former_family_names)):
            level[k] = FamilyNameLevel.FORMER
    level[swapped] = FamilyNameLevel.SWAPPED
    level[exact] = FamilyNameLevel.EXACT
    level[missing] = FamilyNameLevel.MISSING
    return level


def _digits(dob: Ints) -> npt.NDArray[np.int8]:
    return ((dob[:, None] // 10 ** np.arange(7, -1, -1)) % 10).astype(np.int8)


def dob_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.dob[a], c.dob[b]
    xy, xm, xd = x // 10000, x // 100 % 100, x % 100
    yy, ym, yd = y // 10000, y // 100 % 100, y % 100
    px, py = c.dob_digits[a], c.dob_digits[b]
    differ = px != py
    count = differ.sum(axis=1)
    first = np.argmax(differ, axis=1)
    second = np.minimum(first + 1, 7)
    rows = np.arange(len(a))
    transposed = ((count == 2) & differ[rows, second] & (second == first + 1)
                  & (px[rows, first] == py[rows, second])
                  & (px[rows, second] == py[rows, first]))
    return np.select(
        [(x == 0) | (y == 0), x == y, (xy == yy) & (xd == ym) & (xm == yd),
         (xm == ym) & (xd == yd) & (np.abs(xy - yy) == 1), (count == 1) | transposed,
         (xy == yy) & (xm == ym)],
        [DobLevel.MISSING, DobLevel.EXACT, DobLevel.SWAPPED, DobLevel.YEAR_OFF,
         DobLevel.ONE_DIGIT, DobLevel.SAME_YEAR_MONTH], int(DobLevel.OTHER)).astype(np.int64)


def sex_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.sex[a], c.sex[b]
    missing = np.isin(x, list(SEX_MISSING)) | np.isin(y, list(SEX_MISSING))
    return np.select([missing, x == y], [SexLevel.MISSING, SexLevel.AGREE],
                     int(SexLevel.DISAGREE)).astype(np.int64)


def postcode_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.postcode_id[a], c.postcode_id[b]
    missing = (x == 0) | (y == 0)
    typo = np.zeros(len(a), dtype=bool)
    idx = np.flatnonzero(~missing & (x != y) & (c.sector[a] != c.sector[b]))
    typo[idx] = _distance(OSA.distance, c.postcode[a[idx]], c.postcode[b[idx]], 1) <= 1
    return np.select(
        [missing, x == y, c.sector[a] == c.sector[b], typo, c.district[a] == c.district[b],
         c.area[a] == c.area[b]],
        [PostcodeLevel.MISSING, PostcodeLevel.FULL, PostcodeLevel.SECTOR, PostcodeLevel.TYPO,
         PostcodeLevel.DISTRICT, PostcodeLevel.AREA], int(PostcodeLevel.OTHER)
    ).astype(np.int64)


def address_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    x, y = c.address[a], c.address[b]
    missing = (x == "") | (y == "")
    level = np.where(missing, int(AddressLevel.MISSING),
                     np.where(x == y, int(AddressLevel.EXACT), int(AddressLevel.OTHER))
                     ).astype(np.int64)
    rest = ~missing & (x != y)
    na, nb = c.houses[a], c.houses[b]
    both = rest & (na > 0) & (nb > 0)
    # One house number each (nearly every address): they contradict unless equal.
    contradict = both & (na == 1) & (nb == 1) & (c.house[a] != c.house[b])
    for k in np.flatnonzero(both & ((na > 1) | (nb > 1))):
        hx, hy = set(str(c.house[a[k]]).split()), set(str(c.house[b[k]]).split())
        contradict[k] = not (hx <= hy or hy <= hx)
    street = np.flatnonzero(contradict & (c.street[a] != "") & (c.street[b] != ""))
    swap = x[street] > y[street]  # compare orders a pair by the whole address
    sa, sb = c.street[a[street]], c.street[b[street]]
    sx, sy = np.where(swap, sb, sa), np.where(swap, sa, sb)
    level[street] = np.where(_similarity(fuzz.token_set_ratio, sx, sy) >= STREET_SAME,
                             int(AddressLevel.STREET), int(AddressLevel.OTHER))
    alike = np.flatnonzero(rest & ~contradict)
    xs, ys = _ordered(x[alike], y[alike])
    swap = x[alike] > y[alike]
    ca, cb = c.address_compact[a[alike]], c.address_compact[b[alike]]
    ratio = np.maximum(_similarity(fuzz.token_set_ratio, xs, ys),
                       _similarity(fuzz.ratio, np.where(swap, cb, ca), np.where(swap, ca, cb)))
    level[alike] = np.where(ratio >= ADDRESS_HIGH, int(AddressLevel.HIGH),
                            np.where(ratio >= ADDRESS_MEDIUM, int(AddressLevel.MEDIUM),
                                     int(AddressLevel.OTHER)))
    return level


def _identifier_levels(raw_x: Ints, raw_y: Ints, x: Ints, y: Ints) -> Ints:
    """``compare._compare_identifier`` over identifiers as numbers (0: none): the same
    raw value agrees if valid; else both must be valid, and agree or disagree by their
    compact forms."""
    return np.select(
        [(raw_x == 0) | (raw_y == 0), raw_x == raw_y, (x == 0) | (y == 0)],
        [np.full(len(x), int(IdentifierLevel.MISSING)),
         np.where(x != 0, int(IdentifierLevel.AGREE), int(IdentifierLevel.MISSING)),
         np.full(len(x), int(IdentifierLevel.MISSING))],
        np.where(x == y, int(IdentifierLevel.AGREE), int(IdentifierLevel.DISAGREE))
    ).astype(np.int64)


def nhs_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    return _identifier_levels(c.nhs_raw[a], c.nhs_raw[b], c.nhs[a], c.nhs[b])


def upn_levels(c: Columns, a: Ints, b: Ints) -> Ints:
    return _identifier_levels(c.upn_raw[a], c.upn_raw[b], c.upn[a], c.upn[b])


# Each field's levels for pairs of records, by field name (``FIELDS`` has them in order).
FIELD_LEVELS: dict[str, Callable[[Columns, Ints, Ints], Ints]] = {
    "given_name": given_levels, "other_given_names": other_given_levels,
    "family_name": family_levels, "dob": dob_levels, "sex": sex_levels,
    "postcode": postcode_levels, "address_line": address_levels,
    "nhs_number": nhs_levels, "upn": upn_levels,
}


def compare_columns(c: Columns, a: Ints, b: Ints) -> npt.NDArray[np.int8]:
    """The comparison vectors of pairs ``(c.records[a[k]], c.records[b[k]])``: one row
    per pair, one column per field in ``FIELDS`` order, as ``compare_all`` gives them."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if not len(a):
        return np.zeros((0, len(FIELDS)), np.int8)
    return np.stack([FIELD_LEVELS[name](c, a, b) for name in FIELDS], axis=1).astype(np.int8)


def compare_pairs(left: Sequence[IdentityFields],
                  right: Sequence[IdentityFields]) -> npt.NDArray[np.int8]:
    """:func:`compare_columns` for two equally long lists of records, pair by pair."""
    c = Columns.of([*left, *right])
    n = len(left)
    return compare_columns(c, np.arange(n), np.arange(n, n + len(right)))


def random_pairs(size: int, n: int, rng: np.random.Generator) -> tuple[Ints, Ints]:
    """``n`` pairs of two different records among ``size``, each drawn uniformly, as two
    index arrays (the random pairs u is measured on when a model is trained)."""
    first = rng.integers(0, size, n)
    second = rng.integers(0, size - 1, n)
    second += second >= first
    return first.astype(np.int64), second.astype(np.int64)
