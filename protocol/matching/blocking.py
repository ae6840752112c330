"""Blocking keys: which pairs are worth scoring at all (docs/design.md §5). Never all-pairs.

Two records are a candidate pair when they share at least one key. Each record
gives a couple of dozen short keys; every noise a feed carries (a typo, a nickname,
a day–month swap, a changed or double-barrelled surname, a move) leaves at least
one of them standing::

    >>> from datetime import date
    >>> a = IdentityFields("Alfie", "Smith-Jones", date(2015, 3, 4), postcode="BN1 1AA")
    >>> b = IdentityFields("Alfred", "Jones", date(2015, 4, 3), postcode="BN2 5XY")
    >>> sorted(blocking_keys(a) & blocking_keys(b))  # doctest: +NORMALIZE_WHITESPACE
    ['d:2015-03-04:JNS', 'd:2015-04-03:JNS', 'dg:2015-03-04:alfred', 'dg:2015-04-03:alfred',
     'fg:JNS:2015:alfred']

The keys (``F`` is a metaphone code of the family name: the whole name, for a
hyphenated or double-barrelled one each part, and for one with a leading O', D', L' or
M' the name as a system dropping it writes it (O'Brien / Brien, M'Donald / McDonald);
``G`` the given name, the same less a leading title ("Master John"), and each formal
name it may stand for; ``g`` the first letter of each ``G``, so Kate keys Catherine's
``c`` too; a name in another script gives the keys of its transliteration beside its
own, Иван Петров those of Ivan Petrov):

============================  ==========================================================
``n:NHS`` / ``u:UPN``         a valid NHS number / UPN
``d:DOB:F``                   date of birth (and its day–month swap) + family name
``dg:DOB:G``                  date of birth (and swap) + given name: surname changes
``dp:DOB:DISTRICT``           date of birth (and swap) + postcode district: both names
``ym:YYYY-MM:F:g``            birth year and month + family name + initial: day typos
``fg:F:YYYY:G``               family name or a *former* surname + birth year + given
                              name: day and month both wrong
``fd:F:YYYY:DD:g``            family name or a *former* surname + birth year + day of
                              the month + initial: the month wrong
``md:F:MM-DD:g``              family name + birth day and month + initial: year typos
``d:DOB:P``                   date of birth (and swap) + the *given* name's metaphone
                              code, in the family name's namespace: the two names
                              swapped between records ("Dixon Cale" / "Caleb Dixon")
``gp:G:DISTRICT``             given name + postcode district: DOB typos, new surname
``sp:X:Y:DISTRICT``           the two names' metaphone codes in order + postcode
                              district: names swapped where the date of birth is
                              blank or wrong on one record ("Jessica Ballantyne",
                              born 2009 / "Ballantyne Jessica", no date)
``nf:G:F``                    given name + family name, only of a record *without* a
                              date of birth (a feed left it blank): search finds it
============================  ==========================================================

Every key is narrow enough for a national index of ten million children: the
broadest, ``ym``, carries the given name's initial, without which "Smith, born 2015"
alone would pair thousands of records with each other. Each part of a date of birth
may be wrong with the other two right (``md``, ``fd``, ``ym``: year, month, day); two
parts wrong need the given name too (``fg``). Until scheme 2 one key, family name +
birth year + initial, stood for ``fg`` and ``fd``: its blocks grew with the index (a
record met 18.7 others through it at a million children, against 2.4 through the two
that replaced it), and it found only 3 of FEBRL3's 6,538 true pairs that they do not,
each with a typo in the given name and two parts of the date wrong (docs/scaling.md).

Scheme 3 added the particle, the title, the transliteration and the initials of a
nickname's formal names: each joins spellings of one child that other councils' systems
write and that shared no key once the date of birth slipped too (docs/matching-engine.md).
They cost 15.31 → 15.48 keys a record on the generated population and next to none on
the public data sets, where few names have them.

``KEY_SCHEME`` numbers this set of keys. Keys are held in the databases (the node's
``child_blocking_keys``, the hub's ``record_keys``), so a change to what this module
gives must raise it, with a migration on each server that records the new scheme for a
database holding no keys yet (as the hub's 021 and the node's 011 do for scheme 3):
``db upgrade`` then makes every held record's keys again
(``server_common.key_scheme_store``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol.matching.arrays import distinct
from protocol.matching.compare import IdentityFields, valid_nhs_number, valid_upn
from protocol.matching.names import (
    given_name_keys,
    name_parts,
    normalise_name,
    phonetic,
    surname_without_particle,
)

KEY_SCHEME = 3  # raise it whenever blocking_keys changes (see the module docstring)
_CACHE = 1 << 18  # one entry per distinct family name, postcode or date of birth
Ints = npt.NDArray[np.int64]

__all__ = ["KEY_SCHEME", "blocking_keys", "candidate_pairs", "dob_variants", "family_codes",
           "memberships", "month_day_keys", "pairs_across", "pairs_within",
           "remembering_blocking_keys"]


def dob_variants(dob: date) -> tuple[date, ...]:
    """The date of birth and, when it can be one, its day–month swap."""
    if dob.day <= 12 and dob.day != dob.month:
        return dob, date(dob.year, dob.day, dob.month)
    return (dob,)


@functools.lru_cache(maxsize=_CACHE)
def _dob_texts(dob: date) -> tuple[tuple[str, ...], str, str]:
    """The ISO forms of the date and its swap, ``YYYY-MM`` and ``MM-DD``: formatted once
    per distinct date (a council's children share a few thousand)."""
    return (tuple(day.isoformat() for day in dob_variants(dob)),
            f"{dob.year:04d}-{dob.month:02d}", f"{dob.month:02d}-{dob.day:02d}")


@functools.lru_cache(maxsize=_CACHE)
def family_codes(family_name: str | None) -> frozenset[str]:
    """Metaphone codes of the whole family name and of each part of a multi-part one."""
    parts = [p for p in name_parts(family_name) if len(p) > 1]
    codes = {phonetic(family_name), phonetic(surname_without_particle(family_name))}
    if len(parts) > 1:
        codes.update(phonetic(p) for p in parts)
    codes.discard("")
    return frozenset(codes)


@functools.lru_cache(maxsize=_CACHE)
def _district(postcode: str | None) -> str:
    compact = "".join(postcode.split()).upper() if postcode else ""
    return compact[:-3] if len(compact) >= 5 else ""


def _month_day_keys(family: Iterable[str], month_day: str, initial: str) -> set[str]:
    return {f"md:{code}:{month_day}:{initial}" for code in family}


def month_day_keys(family_name: str | None, dob: date, initials: Iterable[str]) -> set[str]:
    """The ``md:`` keys (family name + day and month + initial: a year keyed wrong) a
    record of this family name, day and month would hold with each of ``initials``:
    what a search probes for the initials a given name may be written with."""
    family, month_day = family_codes(family_name), _dob_texts(dob)[2]
    return set().union(*(_month_day_keys(family, month_day, i) for i in initials))


def blocking_keys(record: IdentityFields) -> set[str]:
    """The record's blocking keys (see the module docstring)."""
    return _keys(record, _name_keys)


NameKeys = Callable[[str | None, str | None, date | None, tuple[str, ...], str], set[str]]


def remembering_blocking_keys(maxsize: int) -> Callable[[IdentityFields], set[str]]:
    """:func:`blocking_keys`, with the keys from the names, date of birth and postcode
    district remembered (the last ``maxsize`` of them): a council's node asks again for a
    child whose NHS number, postcode or address changed and whose names did not, and
    those keys are nearly all of the cost. The same keys; a set of its own each call."""
    @functools.lru_cache(maxsize=maxsize)
    def remembered(*parts: Any) -> frozenset[str]:
        return frozenset(_name_keys(*parts))

    def names(*parts: Any) -> set[str]:
        return set(remembered(*parts))

    return functools.partial(_keys, names=names)


def _keys(record: IdentityFields, names: NameKeys) -> set[str]:
    keys = names(record.given_name, record.family_name, record.dob,
                 record.former_family_names, _district(record.postcode))
    if record.nhs_number and (nhs_number := valid_nhs_number(record.nhs_number)):
        keys.add(f"n:{nhs_number}")
    if record.upn and (upn := valid_upn(record.upn)):
        keys.add(f"u:{upn}")
    return keys


def _name_keys(given_name: str | None, family_name: str | None, dob: date | None,
               former_family_names: tuple[str, ...], district: str) -> set[str]:
    """Every key but the identifiers' (``n:``, ``u:``): what the names, the date of birth
    and the postcode district give."""
    keys: set[str] = set()
    family = family_codes(family_name)
    given = given_name_keys(given_name)
    written = normalise_name(given_name)
    # the written name's initial and those of the names it may stand for: Kate is
    # Catherine too, Bill William, Иван Ivan
    initials = {name[:1] for name in given}
    crossed = phonetic(given_name)  # meets the other record's family name
    if dob is not None:
        isos, month, month_day = _dob_texts(dob)
        for iso in isos:
            keys.update(f"d:{iso}:{code}" for code in family)
            keys.update(f"dg:{iso}:{name}" for name in given)
            if district:
                keys.add(f"dp:{iso}:{district}")
            if crossed:
                keys.add(f"d:{iso}:{crossed}")
        if initials:
            former = frozenset().union(*map(family_codes, former_family_names))
            keys.update(f"ym:{month}:{code}:{initial}" for code in family
                        for initial in initials)
            keys.update(f"fg:{code}:{dob.year}:{name}" for code in family for name in given)
            # a former surname with the given name as written, not each formal name it
            # may stand for: ten former names of many parts, each code times a nickname's
            # ten formal names, let one record hold nearly two thousand keys
            keys.update(f"fg:{code}:{dob.year}:{written}" for code in former - family)
            keys.update(f"fd:{code}:{dob.year}:{dob.day:02d}:{initial}"
                        for code in family | former for initial in initials)
            for initial in initials:
                keys |= _month_day_keys(family, month_day, initial)
    elif given and family:
        # Narrow because only records lacking a date of birth carry it; a search probes
        # it with its names alone (protocol.search).
        keys.update(f"nf:{name}:{code}" for name in given for code in family)
    if district:
        keys.update(f"gp:{name}:{district}" for name in given)
        if crossed and (surname := phonetic(family_name)):
            first, second = sorted((crossed, surname))
            keys.add(f"sp:{first}:{second}:{district}")
    return keys


def candidate_pairs(records: Sequence[IdentityFields], *,
                    max_block_size: int | None = None) -> set[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of records sharing at least one blocking key.

    For work in memory (a feed, a test); the hub does the same in SQL. A key shared
    by more than ``max_block_size`` records is skipped rather than paired out.
    """
    blocks, members = memberships(blocking_keys(record) for record in records)
    earlier, later = pairs_within(blocks, members, max_block_size)
    return set(zip(earlier.tolist(), later.tolist(), strict=True))


def memberships(key_sets: Iterable[Iterable[str]],
                ids: dict[str, int] | None = None) -> tuple[Ints, Ints]:
    """``(blocks, members)`` for :func:`pairs_within` and :func:`pairs_across`: member i
    (the i-th key set) holds block ``ids[key]`` for each of its keys. ``ids`` numbers the
    keys, a new key the next number; pass the same dict to number another side's keys
    alike."""
    ids = {} if ids is None else ids
    sets = [keys if isinstance(keys, (set, frozenset, list, tuple)) else list(keys)
            for keys in key_sets]
    blocks = np.fromiter((ids.setdefault(key, len(ids)) for keys in sets for key in keys),
                         dtype=np.int64)
    members = np.repeat(np.arange(len(sets), dtype=np.int64), [len(keys) for keys in sets])
    return blocks, members


def _expand(starts: Ints, counts: Ints) -> Ints:
    """``starts[0], starts[0] + 1, … (counts[0] of them), starts[1], …``: the ranges
    concatenated, without a Python loop."""
    offsets = np.cumsum(counts) - counts
    return (np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(offsets, counts)
            + np.repeat(starts, counts))


def _unique(first: Ints, second: Ints) -> tuple[Ints, Ints]:
    """The distinct pairs, ordered by ``first`` then ``second``."""
    if not len(first):
        return first, second
    base = int(second.max()) + 1
    codes = distinct(first * base + second)
    return codes // base, codes % base


def pairs_within(blocks: Ints, members: Ints,
                 max_block_size: int | None = None) -> tuple[Ints, Ints]:
    """Every two members (non-negative ints) that share a block, once, as
    ``(earlier, later)`` with ``earlier < later``, ordered by ``later`` then ``earlier``.
    ``blocks[k]`` holds ``members[k]``; a block of more than ``max_block_size`` distinct
    members pairs nobody. Column-wise (numpy): a chunk of 50,000 records shares
    millions of key memberships, and a Python loop over them took a second."""
    blocks, members = np.asarray(blocks, np.int64), np.asarray(members, np.int64)
    order = np.lexsort((members, blocks))
    b, m = blocks[order], members[order]
    distinct = np.ones(len(b), dtype=bool)
    distinct[1:] = (b[1:] != b[:-1]) | (m[1:] != m[:-1])
    b, m = b[distinct], m[distinct]
    empty = np.zeros(0, dtype=np.int64)
    if not len(b):
        return empty, empty
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    sizes = np.diff(np.r_[starts, len(b)])
    pairing = sizes >= 2
    if max_block_size is not None:
        pairing &= sizes <= max_block_size
    block_of = np.repeat(np.arange(len(starts)), sizes)
    rank = np.arange(len(b)) - starts[block_of]  # members before it in its block
    counts = np.where(pairing[block_of], rank, 0)
    later = np.repeat(np.arange(len(b)), counts)
    earlier = _expand(starts[block_of], counts)
    first, second = _unique(m[later], m[earlier])
    return second, first


def pairs_across(left_blocks: Ints, left: Ints, right_blocks: Ints,
                 right: Ints) -> tuple[Ints, Ints]:
    """Every ``(left member, right member)`` sharing a block, once, ordered by left
    then right member: ``left_blocks[k]`` holds ``left[k]``, ``right_blocks[k]``
    holds ``right[k]`` (non-negative ints)."""
    right_blocks, right = np.asarray(right_blocks, np.int64), np.asarray(right, np.int64)
    order = np.argsort(right_blocks, kind="stable")
    held_by, holders = right_blocks[order], right[order]
    left_blocks = np.asarray(left_blocks, np.int64)
    starts = np.searchsorted(held_by, left_blocks, "left")
    counts = np.searchsorted(held_by, left_blocks, "right") - starts
    return _unique(np.repeat(np.asarray(left, np.int64), counts),
                   holders[_expand(starts, counts)])
