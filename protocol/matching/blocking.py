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
     'fy:JNS:2015:a']

The keys (``F`` is a metaphone code of the family name: the whole name and, for a
hyphenated or double-barrelled one, each part; ``G`` the given name and each formal
name it may stand for; ``g`` its first letter):

============================  ==========================================================
``n:NHS`` / ``u:UPN``         a valid NHS number / UPN
``d:DOB:F``                   date of birth (and its day–month swap) + family name
``dg:DOB:G``                  date of birth (and swap) + given name: surname changes
``dp:DOB:DISTRICT``           date of birth (and swap) + postcode district: both names
``ym:YYYY-MM:F:g``            birth year and month + family name + initial: day typos
``fy:F:YYYY:g``               family name or a *former* surname + birth year + initial
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
broadest, ``fy`` and ``ym``, carry the given name's initial, without which "Smith,
born 2015" alone would pair thousands of records with each other.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

from protocol.matching.compare import IdentityFields, valid_nhs_number, valid_upn
from protocol.matching.names import given_name_keys, name_parts, normalise_name, phonetic

_CACHE = 1 << 18  # one entry per distinct family name, postcode or date of birth

__all__ = ["blocking_keys", "candidate_pairs", "dob_variants", "family_codes"]


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
    codes = {phonetic(family_name)}
    if len(parts) > 1:
        codes.update(phonetic(p) for p in parts)
    codes.discard("")
    return frozenset(codes)


@functools.lru_cache(maxsize=_CACHE)
def _district(postcode: str | None) -> str:
    compact = "".join(postcode.split()).upper() if postcode else ""
    return compact[:-3] if len(compact) >= 5 else ""


def blocking_keys(record: IdentityFields) -> set[str]:
    """The record's blocking keys (see the module docstring)."""
    keys: set[str] = set()
    if record.nhs_number and (nhs_number := valid_nhs_number(record.nhs_number)):
        keys.add(f"n:{nhs_number}")
    if record.upn and (upn := valid_upn(record.upn)):
        keys.add(f"u:{upn}")
    family = family_codes(record.family_name)
    given = given_name_keys(record.given_name)
    initial = normalise_name(record.given_name)[:1]
    district = _district(record.postcode)
    crossed = phonetic(record.given_name)  # meets the other record's family name
    dob = record.dob
    if dob is not None:
        isos, month, month_day = _dob_texts(dob)
        for iso in isos:
            keys.update(f"d:{iso}:{code}" for code in family)
            keys.update(f"dg:{iso}:{name}" for name in given)
            if district:
                keys.add(f"dp:{iso}:{district}")
            if crossed:
                keys.add(f"d:{iso}:{crossed}")
        if initial:
            former = frozenset().union(*map(family_codes, record.former_family_names))
            keys.update(f"ym:{month}:{code}:{initial}" for code in family)
            keys.update(f"fy:{code}:{dob.year}:{initial}" for code in family | former)
            keys.update(f"md:{code}:{month_day}:{initial}" for code in family)
    elif given and family:
        # Narrow because only records lacking a date of birth carry it; a search probes
        # it with its names alone (protocol.search).
        keys.update(f"nf:{name}:{code}" for name in given for code in family)
    if district:
        keys.update(f"gp:{name}:{district}" for name in given)
        if crossed and (surname := phonetic(record.family_name)):
            first, second = sorted((crossed, surname))
            keys.add(f"sp:{first}:{second}:{district}")
    return keys


def candidate_pairs(records: Sequence[IdentityFields], *,
                    max_block_size: int | None = None) -> set[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of records sharing at least one blocking key.

    For work in memory (a feed, a test); the hub does the same in SQL. A key shared
    by more than ``max_block_size`` records is skipped rather than paired out.
    """
    blocks: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        for key in blocking_keys(record):
            blocks[key].append(i)
    return _pairs(blocks.values(), max_block_size)


def _pairs(blocks: Iterable[list[int]], max_block_size: int | None) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for members in blocks:
        if len(members) < 2 or (max_block_size is not None and len(members) > max_block_size):
            continue
        for x, i in enumerate(members):
            for j in members[x + 1:]:
                pairs.add((i, j) if i < j else (j, i))
    return pairs
