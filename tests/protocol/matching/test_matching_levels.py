"""Comparison levels for errors other feeds make: names swapped, a date of birth a year
or a digit out, a house number apart from its street, a postcode one key off, given
names a typo or two apart — and twins kept apart by measured similarity."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from protocol.matching import (
    DEFAULT_MODEL,
    FIELDS,
    Decision,
    IdentityFields,
    Model,
    TermFrequencies,
    blocking_keys,
    candidate_pairs,
    score,
)
from protocol.matching.bulk import Columns, family_levels
from protocol.matching.compare import (
    FamilyNameLevel,
    compare_family_name,
    compare_given_name,
    names_swapped,
)
from protocol.matching.names import (
    given_names_close,
    given_names_equivalent,
    normalise_name,
    typo_close,
)
from synthetic.names import NamePools

CHILD = IdentityFields(
    given_name="Olivia", family_name="Grubb", dob=date(2015, 3, 14), sex=2,
    postcode="BN1 1AA", address_line="12 Church Road, Hove",
)
# The same child as another council holds her after a move (another district).
MOVED = replace(CHILD, postcode="TF1 2AB", address_line="3 Mill Lane, Telford")


# -- names swapped -------------------------------------------------------------------


def test_names_swapped_between_records_is_a_level_of_both_name_fields() -> None:
    swapped = replace(CHILD, given_name="Grubb", family_name="Olivia")
    assert names_swapped(CHILD, swapped) and names_swapped(swapped, CHILD)
    assert compare_given_name(CHILD, swapped).name == "SWAPPED"
    assert compare_family_name(CHILD, swapped).name == "SWAPPED"
    # with a typo on one side too
    typo = replace(CHILD, given_name="Grub", family_name="OLIVIA")
    assert compare_given_name(CHILD, typo).name == "SWAPPED"
    # not a swap: one name the same, or a name that is its own surname
    assert not names_swapped(CHILD, replace(CHILD, family_name="Olivia"))
    same = replace(CHILD, given_name="James", family_name="James")
    assert not names_swapped(same, same)
    assert compare_given_name(same, same).name == "EXACT"
    # nothing to swap when a name is missing
    assert not names_swapped(CHILD, replace(CHILD, given_name=None, family_name="Olivia"))


def test_swapped_names_link_at_one_council_and_across_councils() -> None:
    swapped = replace(CHILD, given_name="Grubb", family_name="Olivia")
    assert score(CHILD, swapped).decision() is Decision.LINK
    moved = replace(MOVED, given_name="Grubb", family_name="Olivia")
    # different homes: the names and date of birth alone are no more than review
    assert score(CHILD, moved).decision() is not Decision.NEW


def test_swapped_names_with_nothing_else_in_common_never_link() -> None:
    """RLdata10000's false merge: "Peter Frank" and "Frank Peters", two people born the
    same day, with no home or identifier to say they are one child."""
    a = IdentityFields("Peter", "Frank", date(2018, 7, 1), 0)
    b = IdentityFields("Frank", "Peters", date(2018, 7, 1), 0)
    result = score(a, b)
    assert result.level("given_name") == "SWAPPED"
    assert result.cap == "names_swapped_elsewhere" and result.decision() is not Decision.LINK


def test_swapped_names_meet_in_a_block_across_councils() -> None:
    moved = replace(MOVED, given_name="Grubb", family_name="Olivia")
    assert blocking_keys(CHILD) & blocking_keys(moved)
    assert candidate_pairs([CHILD, moved]) == {(0, 1)}
    # with a typo in one of the swapped names too (one name and the date still meet)
    typo = replace(moved, given_name="Grub")
    assert blocking_keys(CHILD) & blocking_keys(typo)
    assert score(CHILD, replace(typo, postcode=CHILD.postcode)).level("given_name") == "SWAPPED"
    # the key is no wider than a date of birth and a name: a child of that birthday with
    # neither name does not meet her
    assert not blocking_keys(CHILD) & blocking_keys(
        replace(moved, given_name="Oscar", family_name="Smith", postcode=None,
                address_line=None))


def test_swapped_names_without_a_shared_date_meet_in_the_same_district() -> None:
    """FEBRL: "Jessica Ballantyne" and "Ballantyne Jessica", the date of birth left
    blank (or mistyped) on one record: the two names in either order, in one postcode
    district, are a block of their own; another district or another name is not."""
    blank = replace(CHILD, given_name="Grubb", family_name="Olivia", dob=None,
                    postcode="BN1 4ZZ", address_line=None)
    assert candidate_pairs([CHILD, blank]) == {(0, 1)}
    wrong_date = replace(blank, dob=date(2011, 9, 30))
    assert candidate_pairs([CHILD, wrong_date]) == {(0, 1)}
    result = score(CHILD, replace(blank, address_line=CHILD.address_line))
    assert result.level("given_name") == "SWAPPED" and result.decision() is not Decision.NEW
    assert candidate_pairs([CHILD, replace(blank, postcode="TF1 2AB")]) == set()
    assert candidate_pairs([CHILD, replace(blank, family_name="Oscar")]) == set()


# -- date of birth -------------------------------------------------------------------


@pytest.mark.parametrize("other", [date(2016, 3, 14), date(2014, 3, 14)])
def test_a_year_out_blocks_and_links_when_the_rest_agrees(other: date) -> None:
    moved = replace(MOVED, dob=other)
    assert blocking_keys(CHILD) & blocking_keys(moved)  # another district, another year
    result = score(CHILD, replace(CHILD, dob=other))
    assert result.level("dob") == "YEAR_OFF"
    assert result.decision() is Decision.LINK


def test_a_year_out_is_still_a_different_child_when_the_names_differ() -> None:
    sibling = replace(CHILD, given_name="Oscar", sex=1, dob=date(2016, 3, 14))
    assert score(CHILD, sibling).decision() is not Decision.LINK


def test_transposed_digits_of_a_day_link() -> None:
    a, b = replace(CHILD, dob=date(2015, 3, 12)), replace(CHILD, dob=date(2015, 3, 21))
    result = score(a, b)
    assert result.level("dob") == "ONE_DIGIT"
    assert result.decision() is Decision.LINK


# -- given names: graded, and what "clearly different" means ---------------------------


@pytest.mark.parametrize("a, b", [
    ("Maddison", "Maddiosn"),   # one transposition
    ("Maddison", "Madisno"),    # two slips
    ("Eliza", "Elija"),
    ("Harrison", "Harisson"),
    ("Alfie", "Alfred"),        # a nickname
    ("Amelia", "AMELIA"),
])
def test_given_names_a_typo_or_two_apart_are_not_clearly_different(a: str, b: str) -> None:
    assert given_names_close(a, b) and given_names_close(b, a)


@pytest.mark.parametrize("a, b", [
    ("Mason", "Jason"),        # rhyming twins' names: the first letter differs
    ("Ella", "Ellie"),         # JW 0.85
    ("Isla", "Isabella"),
    ("Dawn", "Tina"),          # one metaphone code (TN), nothing else alike
    ("Diana", "Donna"),
    ("Olivia", "Oscar"),
    ("Olivia", None),          # nothing to compare is not closeness
])
def test_twins_names_are_clearly_different(a: str, b: str | None) -> None:
    assert not given_names_close(a, b) and not given_names_close(b, a)


@pytest.mark.parametrize("a, b", [("Maddison", "Madisno"), ("Eliza", "Elija"),
                                  ("Olivia", "Oilvia")])
def test_a_typo_or_two_in_the_given_name_links_when_all_else_agrees(a: str, b: str) -> None:
    """Same date of birth, home and surname: twins if the names are clearly different,
    the same child if they are not (the issue's pairs that were left in review)."""
    result = score(replace(CHILD, given_name=a), replace(CHILD, given_name=b))
    assert result.veto is None and result.cap is None
    assert result.decision() is Decision.LINK
    # across councils (another home), the same
    moved = replace(MOVED, given_name=b, nhs_number=None)
    assert score(replace(CHILD, given_name=a), moved).cap is None


@pytest.mark.parametrize("a, b", [("Mason", "Jason"), ("Ella", "Ellie"), ("Isla", "Isabella"),
                                  ("Dawn", "Tina")])
def test_twins_with_clearly_different_names_never_link(a: str, b: str) -> None:
    result = score(replace(CHILD, given_name=a), replace(CHILD, given_name=b))
    assert result.veto == "twins"
    assert result.decision() is Decision.NEW


def test_close_names_of_twins_of_different_sex_stay_apart() -> None:
    """Eliza and Elijah: close by spelling, but a girl and a boy."""
    eliza = replace(CHILD, given_name="Eliza", sex=2)
    elijah = replace(CHILD, given_name="Elija", sex=1)
    result = score(eliza, elijah)
    assert result.veto == "twins" and result.decision() is Decision.NEW


@pytest.mark.parametrize(("a", "b"), [("Frew", "Freq"), ("Goode", "Gooee"),
                                       ("Grubb", "Grub")])
def test_a_family_name_one_slip_apart_is_very_similar_in_one_pair_and_in_bulk(
        a: str, b: str) -> None:
    """Jaro-Winkler forgives little in a short name (Frew / Freq: 0.88), where one
    slip is still one slip; in bulk as pair by pair."""
    x, y = replace(CHILD, family_name=a), replace(CHILD, family_name=b)
    assert score(x, y).level("family_name") == "JW_HIGH"
    assert score(x, y).decision() is Decision.LINK
    columns = Columns.of([x, y])
    assert family_levels(columns, np.array([0]), np.array([1])).tolist() == [
        FamilyNameLevel.JW_HIGH]
    # a different first letter is another family, as for given names
    assert score(x, replace(y, family_name="X" + a[1:])).level("family_name") != "JW_HIGH"


# -- where the child lives -----------------------------------------------------------


def test_a_house_number_slip_on_the_same_street_still_links() -> None:
    result = score(CHILD, replace(CHILD, address_line="21 Church Rd, Hove"))
    assert result.level("address_line") == "STREET"
    assert result.decision() is Decision.LINK
    # and is weaker evidence than the same house
    assert (DEFAULT_MODEL.weight("address_line", 2) < DEFAULT_MODEL.weight("address_line", 3))


def test_a_postcode_one_key_off_links_when_the_rest_agrees() -> None:
    result = score(CHILD, replace(CHILD, postcode="BM1 1AA", address_line=None))
    assert result.level("postcode") == "TYPO"
    assert result.decision() is Decision.LINK


# -- models stored before these levels existed ----------------------------------------


def test_a_model_stored_before_a_level_existed_still_loads() -> None:
    data = DEFAULT_MODEL.to_dict()
    for field, level in (("given_name", "SWAPPED"), ("dob", "YEAR_OFF"),
                         ("postcode", "TYPO"), ("address_line", "STREET")):
        del data["fields"][field][level]
    data["fields"]["dob"]["EXACT"] = {"m": 0.9, "u": 0.0002}  # a trained value
    model = Model.from_dict(data)
    assert model.fields["dob"]["YEAR_OFF"] == DEFAULT_MODEL.fields["dob"]["YEAR_OFF"]
    assert model.fields["dob"]["EXACT"] == (0.9, 0.0002)
    swapped = replace(CHILD, given_name="Grubb", family_name="Olivia")
    assert score(CHILD, swapped, model).decision() is Decision.LINK


# -- a date of birth nearly right -----------------------------------------------------


def test_namesakes_of_one_town_born_days_apart_go_no_further_than_review() -> None:
    """Found on the synthetic population: two Emily Robertsons of one postcode sector,
    born 3 and 9 March, were merged on their weights alone."""
    a = IdentityFields("Emily", "Robertson", date(2021, 3, 3), 2, postcode="RH13 7UG",
                       address_line="137 London Rise, Horsham", upn="V938200325014")
    b = IdentityFields("Emily", "Robertson", date(2021, 3, 9), 2, postcode="RH13 7HP",
                       address_line="48 Church Gardens, Horsham", nhs_number="9255503979")
    result = score(a, b, replace(DEFAULT_MODEL, prior=1.27e-5))  # the hub's measured prior
    assert result.total > DEFAULT_MODEL.thresholds.link  # the weights alone would link
    assert result.cap == "dob_differs_elsewhere"
    assert result.decision() is Decision.REVIEW
    # at the same home, the same date a digit out is a slip: it links
    home = replace(b, postcode=a.postcode, address_line=a.address_line)
    assert score(a, home).decision() is Decision.LINK
    # and an agreeing NHS number settles it wherever they live
    assert score(replace(a, nhs_number=b.nhs_number), b).decision() is Decision.LINK


# -- term frequencies of postcodes and addresses --------------------------------------


def test_a_postcode_or_address_many_records_share_says_less() -> None:
    """A refuge's or a care home's postcode and address, held by forty children's
    records, is weaker evidence than a family home's."""
    others = [replace(CHILD, postcode=f"TF{i % 9 + 1} {i % 7 + 1}AB", address_line=f"{i} Elm Way")
              for i in range(200)]
    home = [replace(CHILD, postcode="BN1 1AA", address_line="Refuge, 1 Shore Road")] * 40
    tf = TermFrequencies.from_records([*others, *home, CHILD])
    assert tf.adjustment("postcode", "bn11aa") < 0 < tf.adjustment("postcode", "TF1 1AB")
    assert tf.adjustment("address_line", "refuge 1 shore rd") < 0
    assert tf.adjustment("address_line", "7 Elm Way") > 0
    refuge = home[0]
    common = score(refuge, replace(refuge, given_name="Olivai"), DEFAULT_MODEL, tf)
    family = score(others[7], replace(others[7], given_name="Olivai"), DEFAULT_MODEL, tf)
    assert common.level("postcode") == family.level("postcode") == "FULL"
    assert common.total < family.total
    assert dict(zip(FIELDS, common.tf_adjustments, strict=True))["postcode"] < 0


def test_clearly_different_is_measured_on_the_name_pools_twins_are_named_from() -> None:
    """The claim in ``names.CLOSE_JW``: of every pair of unrelated names one household's
    children may get (the synthetic pools, English and diverse), about 0.11% are close
    enough to be taken for one name mistyped; one typo alone makes about 0.08%."""
    pools = NamePools(11)
    close = typo = total = 0
    for locale in (pools.english, *pools.diverse.items):
        for names in (locale.boys, locale.girls):
            unique = sorted({normalise_name(n) for n in names})
            for x, a in enumerate(unique):
                for b in unique[x + 1:]:
                    if pools.related(a.title(), b.title()) or given_names_equivalent(a, b):
                        continue
                    total += 1
                    close += given_names_close(a, b)
                    typo += typo_close(a, b)
    assert total > 100_000
    assert typo / total < close / total < 0.0015


def test_a_record_without_a_given_name_is_never_linked_to_a_twin_on_its_own() -> None:
    """A missing given name is neither agreement nor disagreement, so nothing tells twins
    apart: such a pair is reviewed, unless an identifier agrees."""
    nameless = replace(CHILD, given_name=None)
    result = score(CHILD, nameless)
    assert result.level("given_name") == "MISSING"
    assert result.weights[FIELDS.index("given_name")] == 0.0
    assert result.cap == "identity_incomplete" and result.decision() is Decision.REVIEW
    both = replace(CHILD, nhs_number="9434765919")
    assert score(both, replace(nameless, nhs_number="9434765919")).decision() is Decision.LINK
