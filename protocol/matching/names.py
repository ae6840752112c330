"""Names as matching sees them: normalised, split into parts, nicknames and sound-alikes.

Normalisation folds case and accents (``"Zoë"`` → ``"zoe"``, ``"Łukasz"`` →
``"lukasz"``), drops apostrophes (``"O'Brien"`` → ``"obrien"``) and turns hyphens
and other punctuation into single spaces, so ``"Smith-Jones"`` and ``"Smith Jones"``
read the same. "Mc" and "Mac" are left as written: McDonald and MacDonald are
different families as often as they are a spelling slip, and Jaro–Winkler scores
them close anyway.

    >>> normalise_name("  O’Brien-MURPHY ")
    'obrien murphy'
    >>> name_parts("Okonkwo-Reilly")
    ('okonkwo', 'reilly')
    >>> given_names_equivalent("Alfie", "Alfred"), given_names_equivalent("Bill", "William")
    (True, True)
    >>> given_names_equivalent("Alice", "Elsie")
    False

Given-name equivalence is *direct*: one name is a known diminutive of the other.
Two diminutives of one formal name are not equivalent: Daisy and Maisie both stand
for Margaret, and are as likely to be sisters as one girl. Diminutives come from the
``nicknames`` package, kept only where a clerk would plausibly write them (three or
more letters, same first letter: the package also pairs Alice with Elsie and Aaron
with Erin, names twins are given), plus :data:`UK_DIMINUTIVES`, our own list of
British diminutives, including the classic ones that change the first letter (Bill,
Peggy, Harry, Jack, Ted...). A false equivalence can merge twins, so the list errs
on the side of leaving a pair out.

Every function here is pure and cached per distinct string: names repeat a great
deal, and scoring calls these for every candidate pair.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import jellyfish
from nicknames import NickNamer
from rapidfuzz.distance import OSA, JaroWinkler

__all__ = [
    "UK_DIMINUTIVES",
    "TermFrequencies",
    "fold",
    "formal_names",
    "given_name_keys",
    "given_names_equivalent",
    "jaro_winkler",
    "name_parts",
    "normalise_name",
    "phonetic",
    "typo_close",
]

# Diminutive → the formal names it stands for, as British children's records show them.
# The canonical list: ``synthetic`` builds its nickname noise from it too.
UK_DIMINUTIVES: dict[str, tuple[str, ...]] = {
    "Alfie": ("Alfred",), "Evie": ("Eve", "Evelyn"), "Izzy": ("Isabella", "Isabel", "Isobel"),
    "Issy": ("Isabella", "Isabel"), "Bella": ("Isabella", "Arabella"),
    "Charlie": ("Charlotte", "Charles"), "Lottie": ("Charlotte",), "Ollie": ("Oliver",),
    "Olly": ("Oliver",), "Maisie": ("Margaret",), "Freddie": ("Frederick", "Alfred"),
    "Freddy": ("Frederick",), "Archie": ("Archibald",), "Millie": ("Amelia", "Millicent"),
    "Milly": ("Amelia",), "Rosie": ("Rose", "Rosalind"), "Ellie": ("Eleanor", "Elena"),
    "Nell": ("Eleanor",), "Harry": ("Henry", "Harold"), "Hal": ("Henry",),
    "Jack": ("John",), "Teddy": ("Edward", "Theodore"), "Ted": ("Edward",),
    "Eddie": ("Edward",), "Theo": ("Theodore",), "Lexi": ("Alexandra", "Alexa"),
    "Alex": ("Alexander", "Alexandra"), "Libby": ("Elizabeth",), "Lizzie": ("Elizabeth",),
    "Beth": ("Elizabeth", "Bethany"), "Sid": ("Sidney", "Sydney"), "Tilly": ("Matilda",),
    "Tom": ("Thomas",), "Tommy": ("Thomas",), "Will": ("William",), "Billy": ("William",),
    "Sam": ("Samuel", "Samantha"), "Josh": ("Joshua",), "Ben": ("Benjamin",),
    "Jamie": ("James",), "Dan": ("Daniel",), "Danny": ("Daniel",), "Katie": ("Katherine",),
    "Kate": ("Katherine",), "Livvy": ("Olivia",), "Liv": ("Olivia",), "Gracie": ("Grace",),
    "Flo": ("Florence",), "Abbie": ("Abigail",), "Abby": ("Abigail",), "Jess": ("Jessica",),
    "Becky": ("Rebecca",), "Zac": ("Zachary",), "Seb": ("Sebastian",), "Reggie": ("Reginald",),
    "Ronnie": ("Ronald",), "Albie": ("Albert",), "Bertie": ("Albert", "Herbert"),
    "Frankie": ("Francesca", "Francis"), "Nicky": ("Nicholas", "Nicola"), "Chris": ("Christopher",),
    "Matt": ("Matthew",), "Nate": ("Nathan", "Nathaniel"), "Gabe": ("Gabriel",),
    "Sophie": ("Sophia",), "Annie": ("Anna", "Ann"), "Georgie": ("Georgia", "Georgina"),
    # Classic diminutives that change the first letter (the package filter drops those).
    "Bill": ("William",), "Peggy": ("Margaret",), "Meg": ("Margaret",), "Daisy": ("Margaret",),
    "Bob": ("Robert",), "Bobby": ("Robert",), "Dick": ("Richard",), "Ned": ("Edward",),
    "Polly": ("Mary",), "Molly": ("Mary",), "Sally": ("Sarah",), "Betty": ("Elizabeth",),
    "Bess": ("Elizabeth",), "Bessie": ("Elizabeth",), "Hank": ("Henry",), "Tony": ("Anthony",),
    "Sandy": ("Alexander", "Alexandra"), "Kit": ("Christopher",), "Kitty": ("Katherine",),
    "Hattie": ("Harriet",), "Hetty": ("Harriet",), "Jim": ("James",), "Jimmy": ("James",),
    "Toby": ("Tobias",), "Dot": ("Dorothy",), "Dottie": ("Dorothy",),
}

_PACKAGE_MIN_LENGTH = 3
# Letters NFKD leaves alone (no combining mark to strip).
_TRANSLITERATE = str.maketrans({
    "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ı": "i", "æ": "ae",
    "Æ": "ae", "œ": "oe", "Œ": "oe", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d",
})
_APOSTROPHES = re.compile(r"['’‘`ʼ´]")
_NOT_LETTER = re.compile(r"[^\w\s]|[\d_]")  # \w keeps letters of any script
_CACHE = 1 << 19  # one entry per distinct name: a national hub has hundreds of thousands


def fold(value: str) -> str:
    """Lower case without accents or apostrophes: ``"O’Brien Zoë"`` → ``"obrien zoe"``."""
    text = unicodedata.normalize("NFKD", value.translate(_TRANSLITERATE))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return _APOSTROPHES.sub("", text)


@functools.lru_cache(maxsize=_CACHE)
def normalise_name(value: str | None) -> str:
    """Lower case, no accents or apostrophes, punctuation → one space; ``""`` for blank."""
    if not value:
        return ""
    return " ".join(_NOT_LETTER.sub(" ", fold(value)).split())


@functools.lru_cache(maxsize=_CACHE)
def name_parts(value: str | None) -> tuple[str, ...]:
    """The parts of a hyphenated or double-barrelled name, normalised, in order."""
    return tuple(normalise_name(value).split())


@functools.cache
def _formals() -> dict[str, frozenset[str]]:
    """diminutive (normalised) → formal names (normalised); built once."""
    table: dict[str, set[str]] = {}
    for short, formals in UK_DIMINUTIVES.items():
        table.setdefault(normalise_name(short), set()).update(map(normalise_name, formals))
    for formal, shorts in NickNamer().nickname_lookup.items():
        formal_key = normalise_name(formal)
        for short in shorts:
            key = normalise_name(short)
            if (len(key) >= _PACKAGE_MIN_LENGTH and key.isalpha() and formal_key
                    and key[0] == formal_key[0] and key != formal_key):
                table.setdefault(key, set()).add(formal_key)
    return {short: frozenset(formals) for short, formals in table.items()}


@functools.lru_cache(maxsize=_CACHE)
def formal_names(given_name: str) -> frozenset[str]:
    """The formal names a (normalised) given name may stand for: ``"alfie"`` → ``{"alfred"}``."""
    return _formals().get(given_name, frozenset())


@functools.lru_cache(maxsize=_CACHE)
def given_name_keys(given_name: str | None) -> frozenset[str]:
    """The normalised name and every formal name it may stand for.

    For blocking: records whose keys meet are worth comparing. Meeting keys are not
    equivalence: Daisy and Maisie both stand for Margaret, and are sisters' names.
    """
    name = normalise_name(given_name)
    if not name:
        return frozenset()
    return frozenset({name}) | formal_names(name)


@functools.lru_cache(maxsize=_CACHE)
def _equivalent(a: str, b: str) -> bool:
    a, b = normalise_name(a), normalise_name(b)
    return a == b or b in formal_names(a) or a in formal_names(b)


def given_names_equivalent(a: str | None, b: str | None) -> bool:
    """The same name, or one a known diminutive of the other (Alfie and Alfred)."""
    if not a or not b:
        return False
    if a > b:
        a, b = b, a  # one cache entry per unordered pair
    return _equivalent(a, b)


@functools.lru_cache(maxsize=_CACHE)
def phonetic(value: str | None) -> str:
    """Metaphone of the normalised name with its parts run together; ``""`` for blank.

    Metaphone rather than Soundex: Soundex keeps the first letter and codes only
    consonant classes, so it puts Smith with Snead and never Katherine with Catherine.
    """
    name = normalise_name(value).replace(" ", "")
    return jellyfish.metaphone(name) if name else ""


def jaro_winkler(a: str, b: str) -> float:
    """Jaro–Winkler similarity of two (already normalised) names, 0.0 to 1.0."""
    return float(JaroWinkler.similarity(a, b))


def typo_close(a: str, b: str) -> bool:
    """One keyboard slip apart (OSA distance 1) with the same first letter.

    What a mistyped name looks like, as opposed to a sibling's name: rhyming twins'
    names (Mason and Jason) differ in the first letter, and a clerk rarely misses it.
    """
    return bool(a) and bool(b) and a[0] == b[0] and OSA.distance(a, b, score_cutoff=1) <= 1


class _Named(Protocol):
    @property
    def given_name(self) -> str | None: ...
    @property
    def family_name(self) -> str | None: ...


# -- term frequencies ----------------------------------------------------------------


@dataclass(frozen=True)
class TermFrequencies:
    """How common each normalised given and family name is among the records.

    Used by :func:`protocol.matching.scoring.score` for exact name matches.

    The adjustment to an exact match on a name is ``log2(average / frequency)``,
    where *average* is the chance that two records drawn at random share a name
    (the sum of squared frequencies): positive for rare names, negative for common
    ones, capped by the model. A name never seen counts as seen once.
    """

    given: Mapping[str, int] = field(default_factory=dict)
    family: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_names(cls, given_names: Iterable[str | None],
                   family_names: Iterable[str | None]) -> TermFrequencies:
        return cls(_count(given_names), _count(family_names))

    @classmethod
    def from_records(cls, records: Iterable[_Named]) -> TermFrequencies:
        """From records with ``given_name`` and ``family_name`` (IdentityFields, say)."""
        given: Counter[str] = Counter()
        family: Counter[str] = Counter()
        for record in records:
            given[normalise_name(record.given_name)] += 1
            family[normalise_name(record.family_name)] += 1
        given.pop("", None)
        family.pop("", None)
        return cls(given, family)

    @functools.cached_property
    def _stats(self) -> tuple[tuple[int, float], tuple[int, float]]:
        return _totals(self.given), _totals(self.family)

    def adjustment(self, field_name: str, value: str | None) -> float:
        """Bits to add to an exact match on ``value`` of a name field (uncapped)."""
        name = normalise_name(value)
        counts = self.given if field_name == "given_name" else self.family
        total, average = self._stats[0 if field_name == "given_name" else 1]
        if total == 0 or not name:
            return 0.0
        frequency = max(counts.get(name, 0), 1) / total
        return math.log2(average / frequency)


def _count(names: Iterable[str | None]) -> Counter[str]:
    counts = Counter(normalise_name(n) for n in names)
    counts.pop("", None)
    return counts


def _totals(counts: Mapping[str, int]) -> tuple[int, float]:
    total = sum(counts.values())
    if total == 0:
        return 0, 0.0
    return total, sum((c / total) ** 2 for c in counts.values())
