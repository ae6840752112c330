"""Name pools built once with Faker, diminutives and typos.

Faker is slow per call (~50 µs), so :class:`NamePools` draws a few thousand names
from it once per seed and the generator then samples the pools with its own seeded
``random.Random``. Drawing through Faker keeps its frequency weighting (Smith and
Jones come up far more often than Metcalfe).

Diminutives come from the ``nicknames`` package plus a UK list of our own for the
names it lacks or gets wrong for British children (Alfie, Evie, Izzy, Charlie...).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker
from nicknames import NickNamer

from protocol.matching.names import UK_DIMINUTIVES as MATCHING_DIMINUTIVES
from synthetic.dice import Weighted

# Diminutive → the formal names it stands for: the one list, shared with the matcher
# (protocol.matching), so the noise we make is the noise the index must cope with.
UK_DIMINUTIVES = MATCHING_DIMINUTIVES

# ONS top names for children born in England and Wales 2006-2023 (our own short list:
# Faker's en_GB first names are the parents' generation).
MODERN_BOYS = (
    "Oliver", "George", "Noah", "Arthur", "Harry", "Leo", "Muhammad", "Jack", "Charlie",
    "Oscar", "Jacob", "Henry", "Thomas", "Freddie", "Alfie", "Theo", "William", "Theodore",
    "Archie", "Joshua", "Alexander", "James", "Isaac", "Edward", "Lucas", "Tommy", "Finley",
    "Max", "Logan", "Ethan", "Teddy", "Benjamin", "Arlo", "Joseph", "Sebastian", "Harrison",
    "Elijah", "Adam", "Daniel", "Samuel", "Louie", "Mason", "Reuben", "Albie", "Rory",
    "Jaxon", "Hugo", "Luca", "Zachary", "Reggie", "Hunter", "Louis", "Dylan", "Albert",
    "Frederick", "Alfred", "Ronnie", "Jude", "Toby", "Riley", "Jenson", "Kai", "Stanley",
)
MODERN_GIRLS = (
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily",
    "Ella", "Evelyn", "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda",
    "Maya", "Sophie", "Alice", "Emilia", "Isabelle", "Ruby", "Eleanor", "Elizabeth", "Rose",
    "Maisie", "Lexi", "Libby", "Alexandra", "Esme", "Aria", "Hallie", "Violet", "Orla",
    "Erin", "Lola", "Imogen", "Margaret", "Eve", "Isabel", "Zoë", "Chloé", "Siân", "Niamh",
    "Aoife", "Megan", "Jessica", "Abigail", "Georgia", "Scarlett", "Layla", "Beatrice",
)

# Locales for households whose names are not Anglo-British: (locale, share).
DIVERSE_LOCALES = (("pl_PL", 3), ("ro_RO", 2), ("en_IN", 3), ("yo_NG", 1), ("ig_NG", 1))

_POOL_DRAWS = 3000
_QWERTY_NEIGHBOURS = {
    "a": "qsz", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj",
    "i": "uo", "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o",
    "q": "w", "r": "et", "s": "ad", "t": "ry", "u": "yi", "v": "cb", "w": "qe", "x": "zc",
    "y": "tu", "z": "x",
}


@dataclass(frozen=True, slots=True)
class LocalePools:
    boys: tuple[str, ...]
    girls: tuple[str, ...]
    surnames: tuple[str, ...]


class NamePools:
    """Seeded pools of given names and surnames, and the diminutive tables."""

    def __init__(self, seed: int) -> None:
        self.english = self._draw("en_GB", seed, modern=True)
        self.diverse = Weighted([self._draw(loc, seed) for loc, _ in DIVERSE_LOCALES],
                                [w for _, w in DIVERSE_LOCALES])
        self.adults = self._draw("en_GB", seed + 1)  # professionals' names
        self._diminutives = _diminutive_table()
        self._kin: dict[str, frozenset[str]] = {}

    @staticmethod
    def _draw(locale: str, seed: int, *, modern: bool = False) -> LocalePools:
        fake = Faker(locale)
        fake.seed_instance(seed)
        draws = _POOL_DRAWS // 3 if locale != "en_GB" else _POOL_DRAWS
        boys = [fake.first_name_male() for _ in range(draws // 3)]
        girls = [fake.first_name_female() for _ in range(draws // 3)]
        surnames = [fake.last_name() for _ in range(draws)]
        if modern:
            # Children's names: two parts modern list to one part Faker.
            boys += list(MODERN_BOYS) * (2 * len(boys) // len(MODERN_BOYS))
            girls += list(MODERN_GIRLS) * (2 * len(girls) // len(MODERN_GIRLS))
        surnames = [s for s in surnames if " " not in s]  # "Ó Grifín" style: not our data
        return LocalePools(tuple(boys), tuple(girls), tuple(surnames))

    def diminutives_of(self, given_name: str) -> tuple[str, ...]:
        """Diminutives a feed might show for a formal name, in a fixed order."""
        return self._diminutives.get(given_name.lower(), ())

    def related(self, a: str, b: str) -> bool:
        """True if the names are the same or share a diminutive (Ellie and Eleanor):
        siblings, and above all twins, never get such a pair."""
        return not self._kin_of(a).isdisjoint(self._kin_of(b))

    def _kin_of(self, name: str) -> frozenset[str]:
        kin = self._kin.get(name)
        if kin is None:
            kin = frozenset([name.lower(), *(d.lower() for d in self.diminutives_of(name))])
            self._kin[name] = kin
        return kin


def _diminutive_table() -> dict[str, tuple[str, ...]]:
    """formal name (lower case) → diminutives (title case), UK list first."""
    table: dict[str, list[str]] = {}
    for short, formals in UK_DIMINUTIVES.items():
        for formal in formals:
            table.setdefault(formal.lower(), []).append(short)
    namer = NickNamer()
    for formal, shorts in namer.nickname_lookup.items():
        for short in sorted(shorts):
            # The package is generous ("aaron" → "erin"); keep what a clerk would write.
            if len(short) >= 3 and short[0] == formal[0] and short.isalpha():
                nick = short.capitalize()
                bucket = table.setdefault(formal, [])
                if nick not in bucket:
                    bucket.append(nick)
    return {k: tuple(v) for k, v in table.items()}


def typo(rng: random.Random, name: str) -> str:
    """One keyboard slip: transpose, drop, double or hit a neighbouring key."""
    if len(name) < 3:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 1)  # keep the first letter: clerks rarely miss it
    kind = rng.randrange(4)
    if kind == 0 and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if kind == 1:
        return name[:i] + name[i + 1:]
    if kind == 2:
        return name[:i] + name[i] + name[i:]
    neighbours = _QWERTY_NEIGHBOURS.get(name[i].lower())
    if not neighbours:
        return name[:i] + name[i + 1:]
    return name[:i] + rng.choice(neighbours) + name[i + 1:]
