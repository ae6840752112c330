"""Blocking keys: each kind of noise leaves a shared key; strangers share none
(protocol.matching.blocking)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.disclosure import finds_shielded
from protocol.matching import (
    IdentityFields,
    blocking_keys,
    candidate_pairs,
    dob_variants,
    normalise_name,
)
from protocol.matching.blocking import pairs_across, pairs_within, remembering_blocking_keys
from protocol.records import ChildRecord
from tests import strategies

CHILD = IdentityFields(
    given_name="Amelia", family_name="Okafor", dob=date(2015, 3, 4), sex=2,
    postcode="BN1 1AA", nhs_number="9434765919", upn="H801200001001",
)
NO_IDS = replace(CHILD, nhs_number=None, upn=None)


def shared(a: IdentityFields, b: IdentityFields) -> set[str]:
    return blocking_keys(a) & blocking_keys(b)


def test_key_kinds() -> None:
    keys = blocking_keys(CHILD)
    assert "n:9434765919" in keys and "u:H801200001001" in keys
    assert {"d:2015-03-04:OKFR", "d:2015-04-03:OKFR"} <= keys   # exact and swapped DOB
    assert "dg:2015-03-04:amelia" in keys and "dp:2015-03-04:BN1" in keys
    assert "ym:2015-03:OKFR:a" in keys and "md:OKFR:03-04:a" in keys
    assert "fg:OKFR:2015:amelia" in keys and "fd:OKFR:2015:04:a" in keys
    assert "gp:amelia:BN1" in keys
    assert all(len(key) < 64 for key in keys)


def test_invalid_identifiers_give_no_key() -> None:
    keys = blocking_keys(replace(CHILD, nhs_number="9434765918", upn="B801200001001"))
    assert not any(key.startswith(("n:", "u:")) for key in keys)


@pytest.mark.parametrize("noisy", [
    replace(NO_IDS, given_name="Millie"),                         # nickname
    replace(NO_IDS, family_name="Okafro"),                        # surname typo
    replace(NO_IDS, given_name="Amlia", postcode="TF1 2AB"),      # typo and a move
    replace(NO_IDS, dob=date(2015, 4, 3)),                        # day-month swap
    replace(NO_IDS, dob=date(2015, 3, 5)),                        # day typo
    replace(NO_IDS, dob=date(2016, 3, 4), postcode="BN1 9ZZ"),    # year typo, same district
    replace(NO_IDS, family_name="Taylor", former_family_names=("Okafor",)),  # new surname
    replace(NO_IDS, family_name="Taylor", postcode="TF1 2AB"),    # new surname, moved
    replace(NO_IDS, family_name="Okafor-Smith"),                  # double-barrelled
    replace(NO_IDS, dob=date(2015, 9, 30), postcode="BN1 1AB"),   # wrong DOB, same district
    replace(NO_IDS, dob=date(2015, 8, 4), postcode="TF1 2AB"),    # month typo, moved
    replace(NO_IDS, dob=date(2015, 9, 30), postcode="TF1 2AB"),   # day and month wrong, moved
    replace(NO_IDS, given_name="Amelie", dob=date(2015, 8, 4),    # a given-name typo
            postcode="TF1 2AB"),                                  # and the month wrong
    replace(NO_IDS, family_name="Taylor", former_family_names=("Okafor",),  # new surname,
            dob=date(2015, 9, 30), postcode="TF1 2AB"),           # DOB wrong, moved
])
def test_each_kind_of_noise_leaves_a_shared_key(noisy: IdentityFields) -> None:
    assert shared(NO_IDS, noisy)


def test_strangers_share_no_key() -> None:
    stranger = IdentityFields("Oscar", "Nowak", date(2009, 11, 23), 1, postcode="TF1 2AB")
    assert not shared(NO_IDS, stranger)


def test_a_namesake_born_the_same_year_shares_no_key() -> None:
    """Family name, birth year and initial alone are no key (scheme 1's ``fy:`` was):
    at national size such a block holds hundreds of children, and the resolver's cost
    per record grew with the index through it."""
    namesake = IdentityFields("Anna", "Okafor", date(2015, 9, 21), 2, postcode="TF1 2AB")
    assert not shared(NO_IDS, namesake)


def test_identifiers_alone_pair_records() -> None:
    other = IdentityFields("Bob", "Nowak", date(2009, 11, 23), 1, postcode="TF1 2AB",
                           nhs_number="943 476 5919")
    assert shared(CHILD, other) == {"n:9434765919"}


def test_dob_variants() -> None:
    assert dob_variants(date(2015, 3, 4)) == (date(2015, 3, 4), date(2015, 4, 3))
    assert dob_variants(date(2015, 3, 3)) == (date(2015, 3, 3),)
    assert dob_variants(date(2015, 3, 14)) == (date(2015, 3, 14),)


def test_candidate_pairs_are_not_all_pairs() -> None:
    records = [NO_IDS, replace(NO_IDS, given_name="Millie"),
               IdentityFields("Oscar", "Nowak", date(2009, 11, 23), 1, postcode="TF1 2AB"),
               IdentityFields("Oskar", "Nowak", date(2009, 11, 23), 1, postcode="TF1 2AB"),
               IdentityFields("Ewa", "Kowalska", date(2012, 6, 30), 2)]
    assert candidate_pairs(records) == {(0, 1), (2, 3)}
    assert candidate_pairs(records, max_block_size=1) == set()


@settings(max_examples=50, deadline=None)
@given(strategies.child_records())
def test_any_record_with_a_usable_name_has_keys(record: ChildRecord) -> None:
    fields = IdentityFields.from_record(record)
    keys = blocking_keys(fields)
    assert all(isinstance(key, str) and key for key in keys)
    if normalise_name(record.given_name):
        assert f"dg:{record.dob}:{normalise_name(record.given_name)}" in keys


@settings(max_examples=100, deadline=None)
@given(strategies.child_records())
def test_every_key_built_from_where_a_child_lives_is_a_location_key(
        record: ChildRecord) -> None:
    """A shielded record loses its location keys, and a search's location keys never
    reach a shielded child: so every key the postcode or address adds must be one
    (a key missing from ``LOCATION_KEY_PREFIXES`` would let a search by names and a
    postcode say whether a shielded child lives in that district)."""
    fields = IdentityFields.from_record(record)
    nowhere = replace(fields, postcode=None, address_line=None)
    for with_location in (fields, replace(fields, postcode="BN1 1AA"),
                          replace(fields, dob=None, postcode="BN1 1AA")):
        added = blocking_keys(with_location) - blocking_keys(
            replace(nowhere, dob=with_location.dob))
        assert all(not finds_shielded(key) for key in added), added


MEMBERSHIPS = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 12)), max_size=40)


def _arrays(memberships: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([b for b, _ in memberships], dtype=np.int64),
            np.array([m for _, m in memberships], dtype=np.int64))


@settings(max_examples=300)
@given(MEMBERSHIPS, st.sampled_from([None, 1, 2, 3, 200]))
def test_pairs_within_blocks_are_every_two_members_of_a_small_enough_block(
        memberships: list[tuple[int, int]], max_block_size: int | None) -> None:
    blocks: dict[int, set[int]] = {}
    for block, member in memberships:
        blocks.setdefault(block, set()).add(member)
    expected = sorted({(x, y) for members in blocks.values()
                       if max_block_size is None or len(members) <= max_block_size
                       for x in members for y in members if x < y},
                      key=lambda pair: (pair[1], pair[0]))
    earlier, later = pairs_within(*_arrays(memberships), max_block_size)
    assert list(zip(earlier.tolist(), later.tolist(), strict=True)) == expected


@settings(max_examples=300)
@given(MEMBERSHIPS, MEMBERSHIPS)
def test_pairs_across_are_every_left_and_right_member_sharing_a_block(
        left: list[tuple[int, int]], right: list[tuple[int, int]]) -> None:
    expected = sorted({(x, y) for a, x in left for b, y in right if a == b})
    got = pairs_across(*_arrays(left), *_arrays(right))
    assert list(zip(got[0].tolist(), got[1].tolist(), strict=True)) == expected


def test_a_hostile_record_cannot_hold_thousands_of_keys() -> None:
    """Every name at its longest and most parts, ten former surnames, and the given name
    with the most formal names: a node could send such a record, and the hub would hold
    a row of record_keys for each of its keys. Scheme 2 first gave it 2,150 (a former
    surname's code times each formal name); the former surnames now pair with the given
    name as written only."""
    parts = "-".join(f"{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(33))
    former = tuple("-".join(f"{chr(98 + i % 24)}{chr(97 + (i * 7 + j) % 26)}"
                            for i in range(33)) for j in range(10))
    hostile = IdentityFields("chris", parts, date(2015, 3, 4), postcode="BN1 1AA",
                             former_family_names=former)
    assert len(blocking_keys(hostile)) < 1_000


_REMEMBERING = remembering_blocking_keys(64)


@given(strategies.identity_pairs())
def test_remembered_keys_are_the_keys(pair: tuple[IdentityFields, IdentityFields]) -> None:
    """A node remembers the keys of names, date of birth and district apart from the
    identifiers' (``remembering_blocking_keys``): the same keys as ``blocking_keys``
    for each record, for a record met again with another NHS number or postcode, and
    a set of its own each time (changing one changes no later answer)."""
    a, b = pair
    for record in (a, b, replace(a, nhs_number=b.nhs_number, upn=b.upn),
                   replace(a, postcode=b.postcode), a):
        keys = _REMEMBERING(record)
        assert keys == blocking_keys(record)
        keys.add("x:changed by the caller")
        assert _REMEMBERING(record) == blocking_keys(record)
