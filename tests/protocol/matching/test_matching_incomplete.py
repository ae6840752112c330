"""Records lacking a given name, family name or date of birth (docs/PROTOCOL.md §3.2.1): compared as
missing (no evidence either way), never a crash, and never linked on too little."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from protocol.matching import (
    Decision,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
    IdentityFields,
    blocking_keys,
    score,
)

FULL = IdentityFields("Olivia", "Grubb", date(2015, 3, 4), 2, postcode="BN1 1AA",
                      address_line="12 Acacia Avenue", nhs_number="9434765919")
SAME_HOME = replace(FULL, nhs_number=None)


def test_absent_fields_compare_as_missing() -> None:
    bare = IdentityFields(None, None, None, 0, nhs_number="9434765919")
    result = score(bare, FULL)
    assert result.level("given_name") == GivenNameLevel.MISSING.name
    assert result.level("family_name") == FamilyNameLevel.MISSING.name
    assert result.level("dob") == DobLevel.MISSING.name


@pytest.mark.parametrize("absent", [("given_name",), ("given_name", "dob"),
                                    ("family_name", "dob"), ("given_name", "family_name")])
def test_too_little_identity_links_only_by_an_identifier(absent: tuple[str, ...]) -> None:
    blank: dict[str, Any] = dict.fromkeys(absent)
    lacking = replace(SAME_HOME, **blank)
    result = score(lacking, SAME_HOME)
    # the same home and whatever else agrees: at most a review, never a link
    assert result.cap == "identity_incomplete"
    assert result.decision() is not Decision.LINK
    # an agreeing NHS number links it
    linked = score(replace(lacking, nhs_number=FULL.nhs_number), FULL)
    assert linked.cap is None and linked.decision() is Decision.LINK


def test_a_record_lacking_only_its_dob_or_surname_is_decided_by_weights() -> None:
    for absent in ("dob", "family_name"):
        blank: dict[str, Any] = {absent: None}
        result = score(replace(SAME_HOME, **blank), SAME_HOME)
        assert result.cap is None and result.decision() is Decision.LINK, absent


def test_only_a_record_without_a_dob_has_name_keys() -> None:
    assert not {k for k in blocking_keys(SAME_HOME) if k.startswith("nf:")}
    keys = blocking_keys(replace(SAME_HOME, dob=None))
    assert "nf:olivia:KRB" in keys
    assert not blocking_keys(IdentityFields(None, "Grubb", None))  # a surname alone: none
