"""Name normalisation, parts, nickname equivalence and phonetic codes (protocol.matching.names)."""

from __future__ import annotations

import doctest
import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.matching.names import (
    UK_DIMINUTIVES,
    _fold_any,
    fold,
    given_name_keys,
    given_names_equivalent,
    name_parts,
    normalise_name,
    phonetic,
    typo_close,
)


@pytest.mark.parametrize("raw, expected", [
    ("Smith", "smith"),
    ("  SMITH  ", "smith"),
    ("Zoë", "zoe"),
    ("Chloé", "chloe"),
    ("Siân", "sian"),
    ("Łukasz", "lukasz"),
    ("Wójcik", "wojcik"),
    ("Søren", "soren"),
    ("O'Brien", "obrien"),
    ("O’Brien", "obrien"),        # typographic apostrophe
    ("D`Arcy", "darcy"),
    ("Smith-Jones", "smith jones"),
    ("Smith  Jones", "smith jones"),
    ("St. John", "st john"),
    ("McDonald", "mcdonald"),      # Mc and Mac are left as written
    ("MacDonald", "macdonald"),
    ("Anne-Marie", "anne marie"),
    ("", ""),
    (None, ""),
    ("---", ""),
    # invisible characters pasted in from another system are dropped, not spaced
    ("Jo\u00adhn", "john"),        # soft hyphen
    ("A\u200bmelia", "amelia"),    # zero-width space
    ("\u202eAmelia\u202c", "amelia"),  # right-to-left override and its end
    ("\ufeffSmith", "smith"),       # a byte-order mark left at a field's start
])
def test_normalise_name(raw: str | None, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize("raw, parts", [
    ("Smith-Jones", ("smith", "jones")),
    ("Smith Jones", ("smith", "jones")),
    ("Okonkwo-Reilly", ("okonkwo", "reilly")),
    ("Bowes-Lyon-Smith", ("bowes", "lyon", "smith")),
    ("Smith", ("smith",)),
    ("", ()),
])
def test_name_parts(raw: str, parts: tuple[str, ...]) -> None:
    assert name_parts(raw) == parts


@pytest.mark.parametrize("a, b", [
    ("Alfie", "Alfred"), ("Izzy", "Isabella"), ("Bill", "William"), ("Peggy", "Margaret"),
    ("Evie", "Evelyn"), ("Evie", "Eve"), ("Charlie", "Charlotte"), ("Charlie", "Charles"),
    ("Ollie", "Oliver"), ("Maisie", "Margaret"), ("Freddie", "Frederick"),
    ("Archie", "Archibald"), ("Millie", "Amelia"), ("Rosie", "Rose"), ("Ellie", "Eleanor"),
    ("Harry", "Henry"), ("Jack", "John"), ("Teddy", "Edward"), ("Lexi", "Alexandra"),
    ("Libby", "Elizabeth"), ("Nick", "Nicholas"),  # the last from the nicknames package
    ("ALFIE", "alfred"), ("Alfred", "Alfie"), ("Zoë", "Zoe"),
])
def test_nickname_pairs_are_equivalent(a: str, b: str) -> None:
    assert given_names_equivalent(a, b)
    assert given_names_equivalent(b, a)


@pytest.mark.parametrize("a, b", [
    ("Alice", "Elsie"),     # the package pairs them; twins get such names
    ("Aaron", "Erin"),
    ("Daisy", "Maisie"),    # both stand for Margaret, and are sisters' names
    ("Izzy", "Bella"),      # both stand for Isabella
    ("Mason", "Jason"),
    ("Oliver", "Olivia"),
    ("Alfie", ""),
    (None, "Alfie"),
])
def test_names_that_are_not_equivalent(a: str | None, b: str | None) -> None:
    assert not given_names_equivalent(a, b)


def test_given_name_keys_include_formal_names() -> None:
    assert given_name_keys("Alfie") == {"alfie", "alfred"}
    assert given_name_keys("Alfred") == {"alfred"}
    assert given_name_keys("") == frozenset()


def test_uk_diminutives_have_the_shape_synthetic_uses() -> None:
    assert isinstance(UK_DIMINUTIVES, dict)
    for short, formals in UK_DIMINUTIVES.items():
        assert isinstance(short, str) and short == short.strip() and short[0].isupper()
        assert isinstance(formals, tuple) and formals
        assert all(isinstance(f, str) and f[0].isupper() for f in formals)


def test_phonetic_codes() -> None:
    assert phonetic("Smith") == phonetic("Smyth")
    assert phonetic("Catherine") == phonetic("Kathryn")
    assert phonetic("Smith-Jones") == phonetic("Smith Jones")
    assert phonetic("Smith") != phonetic("Jones")
    assert phonetic("") == phonetic(None) == ""


@pytest.mark.parametrize("a, b, close", [
    ("elijah", "elijha", True),    # transposition
    ("benjamin", "benjamn", True),  # dropped letter
    ("daniel", "danniel", True),   # doubled letter
    ("mason", "jason", False),     # first letter differs: a rhyming twin, not a typo
    ("ella", "ellie", False),      # two edits
    ("ella", "ella", True),
    ("", "a", False),
])
def test_typo_close(a: str, b: str, close: bool) -> None:
    assert typo_close(a, b) is close


@pytest.mark.parametrize("module", ["protocol.matching", "protocol.matching.names",
                                    "protocol.matching.compare", "protocol.matching.scoring",
                                    "protocol.matching.blocking",
                                    "protocol.matching.location",
                                    "protocol.matching.frequencies",
                                    "protocol.matching.training"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_plain_ascii_folds_as_any_text_does(value: str) -> None:
    """The shortcut for ASCII (most names and addresses) gives what the full fold gives."""
    assert fold(value) == _fold_any(value)
