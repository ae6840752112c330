"""Names as matching sees them: normalised, split into parts, nicknames and sound-alikes.

Normalisation folds case and accents (``"Zoë"`` → ``"zoe"``, ``"Łukasz"`` →
``"lukasz"``), drops apostrophes (``"O'Brien"`` → ``"obrien"``) and turns hyphens
and other punctuation into single spaces, so ``"Smith-Jones"`` and ``"Smith Jones"``
read the same. "Mc" and "Mac" are left as written: McDonald and MacDonald are
different families as often as they are a spelling slip, and Jaro–Winkler scores
them close anyway.

    >>> normalise_name("  O’Brien-MURPHY ")
    'obrien murphy'
    >>> same_spelling("O Brien", "OBrien"), same_spelling("Müller", "Mueller")
    (True, True)
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

Comparison reads a little further than keys do (:func:`comparable_name`,
:func:`exact_spellings`): apostrophe marks ``fold`` does not know (``Oʻbrien``,
``O′Brien``) are dropped, a name is the same with its spaces taken out (``O Brien`` /
``OBrien``, ``Van der Berg`` / ``Vanderberg``) and with ä, ö, ü, ø, å written as
digraphs (``Müller`` / ``Mueller``), and a few names transliterated from another script
are one name (:data:`SPELLING_VARIANTS`: Muhammad / Mohammed). A name in another script
is compared, and keyed beside its written form, as its transliteration (:func:`latin_name`,
``anyascii``: Иван Петров is Ivan Petrov); a leading title is no part of a given name
("Master John" is John); a surname's leading O', D', L' or M' may be dropped by another
system (:func:`surname_without_particle`: O'Brien is Brien, M'Donald McDonald). Term
frequencies and the hub's counts keep :func:`normalise_name`, and blocking keys the
diminutives, not the spelling variants: their values are stored at every node and hub
(raising ``KEY_SCHEME`` re-makes the keys; nothing re-makes the counts).

Every function here is pure and cached per distinct string: names repeat a great
deal, and scoring calls these for every candidate pair.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import jellyfish
from anyascii import anyascii
from nicknames import NickNamer
from rapidfuzz.distance import OSA, JaroWinkler

__all__ = [
    "SPELLING_VARIANTS",
    "UK_DIMINUTIVES",
    "comparable_name",
    "exact_spellings",
    "fold",
    "formal_names",
    "given_name_keys",
    "given_names_close",
    "given_names_equivalent",
    "jaro_winkler",
    "latin_name",
    "name_parts",
    "normalise_name",
    "phonetic",
    "same_spelling",
    "spelling_variants",
    "surname_without_particle",
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
    "Jamie": ("James",), "Dan": ("Daniel",), "Danny": ("Daniel",),
    "Livvy": ("Olivia",), "Liv": ("Olivia",), "Gracie": ("Grace",),
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
    "Sandy": ("Alexander", "Alexandra"), "Kit": ("Christopher",),
    "Hattie": ("Harriet",), "Hetty": ("Harriet",), "Jim": ("James",), "Jimmy": ("James",),
    "Toby": ("Tobias",), "Dot": ("Dorothy",), "Dottie": ("Dorothy",),
    # One name, two initials: Katherine is Catherine as often as not, and Sasha is the
    # Russian short form of Alexander (Aleksandr) and Alexandra.
    "Kate": ("Katherine", "Catherine"), "Katie": ("Katherine", "Catherine"),
    "Kitty": ("Katherine", "Catherine"), "Cathy": ("Catherine", "Katherine"),
    "Kathy": ("Katherine", "Catherine"), "Sasha": ("Alexander", "Alexandra"),
}

# One name as other systems transliterate it: written differently, never a different
# name. Only spellings of one name in another script (Arabic, Russian), where English
# records disagree because no spelling is standard; never names merely alike
# (Sophia / Sofia stay a Jaro-Winkler match, Aisha / Ayesha a phonetic one).
# Comparison only: blocking keys (``given_name_keys``) do not read it; such pairs meet
# through the family name's keys.
SPELLING_VARIANTS: tuple[tuple[str, ...], ...] = (
    ("Muhammad", "Mohammed", "Mohammad", "Mohamed", "Muhammed", "Mohamad", "Mohammod",
     "Muhamed", "Mohamud", "Mohamoud"),
    ("Ahmed", "Ahmad", "Ahmet"), ("Yusuf", "Yousef", "Youssef", "Yusef", "Yousuf"),
    ("Hussain", "Hussein", "Husain", "Hossain", "Hussin"), ("Hassan", "Hasan"),
    ("Ibrahim", "Ebrahim"), ("Ismail", "Ismael"), ("Mustafa", "Mustapha", "Mostafa"),
    ("Omar", "Umar"), ("Usman", "Osman", "Uthman"), ("Zainab", "Zaynab", "Zeinab"),
    ("Maryam", "Mariam", "Meryem"), ("Fatima", "Fatimah", "Fatema"),
    ("Khadija", "Khadijah", "Khadeeja"), ("Abdullah", "Abdallah"),
    ("Aleksandr", "Alexander", "Aleksander", "Alexandr"),
)

_PACKAGE_MIN_LENGTH = 3
# Letters NFKD leaves alone (no combining mark to strip).
_TRANSLITERATE = str.maketrans({
    "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ı": "i", "æ": "ae",
    "Æ": "ae", "œ": "oe", "Œ": "oe", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d",
})
_APOSTROPHES = re.compile(r"['’‘`ʼ´]")
# Marks other systems write for an apostrophe that ``fold`` turns into a space (it does
# not know them): the okina and turned comma (Oʻ, Oʻbrien), the modifier prime (a
# transliterated soft sign, Ilʹya), the prime and reversed prime, the saltillo and the
# half rings of Arabic transliteration (Saʿid). ``comparable_name`` drops them; keys
# keep ``normalise_name``'s reading (changing it would change every stored key).
_MORE_APOSTROPHES = re.compile("[\u02bb\u02b9\u02bd\u02be\u02bf\u2032\u2035\u201b\ua78c]")
# Letters whose other common spelling is a digraph, not the bare letter (Müller /
# Mueller, Søren / Soeren, Åse / Aase): a second exact spelling of a name that has one.
_DIGRAPHS = str.maketrans({"ä": "ae", "Ä": "Ae", "ö": "oe", "Ö": "Oe", "ü": "ue", "Ü": "Ue",
                           "ø": "oe", "Ø": "Oe", "å": "aa", "Å": "Aa"})
# A leading O', D', L' or M' (M' standing for Mc) that another system drops or writes
# without the mark: O'Brien / Brien, D'Souza / Souza, M'Donald / McDonald. The raw value
# is read: normalise_name drops the apostrophe ("obrien") and the particle with it.
_PARTICLE = re.compile("^\\s*([odlm])(?:\\s*['’‘`ʼ´\u02bb\u02b9\u2032]\\s*|\\s+)(?=\\w)",
                       re.IGNORECASE)
# Words a system writes before a child's given name ("Master John", "Miss Amelia"):
# not part of the name, dropped where another word follows.
_TITLES = frozenset({"master", "miss", "mstr", "mr", "mrs", "ms", "mx", "dr"})
_NOT_LETTER = re.compile(r"[^\w\s]|[\d_]")  # \w keeps letters of any script
_CACHE = 1 << 19  # one entry per distinct name: a national hub has hundreds of thousands


def fold(value: str) -> str:
    """Lower case without accents or apostrophes: ``"O’Brien Zoë"`` → ``"obrien zoe"``.
    Invisible format characters go too, not into a space: a soft hyphen or a zero-width
    space pasted into "Jo\u00adhn" from another system is still John."""
    if value.isascii():
        # nothing to transliterate, decompose or drop (ASCII has no accents and no
        # format characters): only the case and the apostrophes. Most values are; the
        # character-by-character walk was most of a bulk chunk's address work
        return _APOSTROPHES.sub("", value.lower())
    return _fold_any(value)


def _fold_any(value: str) -> str:
    """:func:`fold` for text in any script."""
    text = unicodedata.normalize("NFKD", value.translate(_TRANSLITERATE))
    text = "".join(c for c in text if not unicodedata.combining(c)
                   and unicodedata.category(c) != "Cf").casefold()
    return _APOSTROPHES.sub("", text)


@functools.lru_cache(maxsize=_CACHE)
def normalise_name(value: str | None) -> str:
    """Lower case, no accents or apostrophes, punctuation → one space; ``""`` for blank."""
    if not value:
        return ""
    return " ".join(_NOT_LETTER.sub(" ", fold(value)).split())


@functools.lru_cache(maxsize=_CACHE)
def comparable_name(value: str | None) -> str:
    """:func:`normalise_name` for comparing two names, not for keys: apostrophe marks
    it does not know are dropped too (``"Oʻbrien"`` → ``"obrien"``, not ``"o brien"``),
    a name in another script is read in Latin letters (:func:`latin_name`) and a leading
    title goes (``"Master John"`` → ``"john"``).

    Term frequencies and the hub's counts keep ``normalise_name``: what it gives is held
    in every node's and hub's database."""
    if not value:
        return ""
    if not value.isascii():
        value = _MORE_APOSTROPHES.sub("", value)
    return _untitled(latin_name(value))


@functools.lru_cache(maxsize=_CACHE)
def latin_name(value: str | None) -> str:
    """:func:`normalise_name` in Latin letters: a name written in another script
    (Cyrillic, Greek, Arabic…) transliterated (``anyascii``), ``"Иван"`` → ``"ivan"``;
    any other name as ``normalise_name`` gives it (its accents are already folded)."""
    name = normalise_name(value)
    if not value or name.isascii():
        return name
    return normalise_name(anyascii(value))


def _untitled(name: str) -> str:
    """A normalised name less a leading title another word follows: ``"master john"``
    → ``"john"``."""
    first, _, rest = name.partition(" ")
    return rest if rest and first in _TITLES else name


@functools.lru_cache(maxsize=_CACHE)
def surname_without_particle(value: str | None) -> str:
    """The surname as a system that drops its leading particle writes it, normalised:
    ``"O'Brien"`` → ``"brien"``, ``"D'Souza"`` → ``"souza"``, ``"M'Donald"`` →
    ``"mcdonald"`` (M' is Mc written short); ``""`` for a name without one."""
    match = _PARTICLE.match(value) if value else None
    if match is None or value is None:
        return ""
    rest = latin_name(value[match.end():])
    if not rest:
        return ""
    return "mc" + rest if match.group(1).lower() == "m" else rest


@functools.lru_cache(maxsize=_CACHE)
def exact_spellings(value: str | None) -> frozenset[str]:
    """The ways of writing ``value`` that are the same name: its comparable form with
    the spaces taken out (``"O Brien"``, ``"OBrien"``; ``"Van der Berg"``, ``"Vanderberg"``;
    ``"Abdul Rahman"``, ``"Abdulrahman"``) and, for a name with ä, ö, ü, ø or å, the same
    with the letter written as its digraph (``"Müller"`` is also ``"mueller"``)."""
    name = comparable_name(value)
    if not name:
        return frozenset()
    spellings = {name.replace(" ", "")}
    if dropped := surname_without_particle(value):
        spellings.add(dropped.replace(" ", ""))
    if value and not value.isascii():
        digraphs = unicodedata.normalize("NFC", value).translate(_DIGRAPHS)
        spellings.add(comparable_name(digraphs).replace(" ", ""))
    return frozenset(spellings)


def same_spelling(a: str | None, b: str | None) -> bool:
    """The same name as written by two systems (see :func:`exact_spellings`)."""
    return bool(exact_spellings(a) & exact_spellings(b))


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
    """The normalised name and every formal name it may stand for; for a name in
    another script its transliteration too (``"Иван"``: ``"иван"``, ``"ivan"``), and the
    name less a leading title (``"Master John"``: ``"john"``, ``"jonathan"``…).

    Not each word of a name of several: comparison takes "Mary Jane" / "Jane" for two
    children (``compare.forenames_agree``), so a key bringing them together gains nothing.

    For blocking: records whose keys meet are worth comparing. Meeting keys are not
    equivalence: Daisy and Maisie both stand for Margaret, and are sisters' names.
    """
    name = normalise_name(given_name)
    if not name:
        return frozenset()
    latin = latin_name(given_name)
    names = {name, latin, _untitled(latin)}  # "Master Jack" is Jack, and so John
    return frozenset(names).union(*map(formal_names, names))


@functools.cache
def _variants() -> dict[str, frozenset[str]]:
    """name (comparable) → the other spellings of it (:data:`SPELLING_VARIANTS`)."""
    table: dict[str, frozenset[str]] = {}
    for group in SPELLING_VARIANTS:
        names = frozenset(map(comparable_name, group))
        for name in names:
            table[name] = table.get(name, frozenset()) | (names - {name})
    return table


@functools.lru_cache(maxsize=_CACHE)
def spelling_variants(given_name: str) -> frozenset[str]:
    """The other spellings of a (comparable) given name: ``"muhammad"`` →
    ``{"mohammed", "mohamed", …}``; empty for most names."""
    return _variants().get(given_name, frozenset())


@functools.lru_cache(maxsize=_CACHE)
def _equivalent(a: str, b: str) -> bool:
    a, b = comparable_name(a), comparable_name(b)
    return (a == b or b in formal_names(a) or a in formal_names(b)
            or b in spelling_variants(a))


def given_names_equivalent(a: str | None, b: str | None) -> bool:
    """The same name, one a known diminutive of the other (Alfie and Alfred), or two
    spellings of one name in another script (Mohammed and Muhammad)."""
    if not a or not b:
        return False
    if a > b:
        a, b = b, a  # one cache entry per unordered pair
    return _equivalent(a, b)


@functools.lru_cache(maxsize=_CACHE)
def phonetic(value: str | None) -> str:
    """Metaphone of the normalised name with its parts run together, in Latin letters
    (:func:`latin_name`: metaphone codes only those); ``""`` for blank.

    Metaphone rather than Soundex: Soundex keeps the first letter and codes only
    consonant classes, so it puts Smith with Snead and never Katherine with Catherine.
    """
    name = latin_name(value).replace(" ", "")
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


# "Clearly different" given names, as measured on the synthetic name pools (1,511 names,
# 142,745 pairs of unrelated names a household may give twins): one typo apart is
# 0.08% of them; adding "same first letter, JW >= 0.92, at most two edits" makes 0.11%
# (Maddison / Madisno, Florenta / Florentina), where JW >= 0.88 would make 0.16% and a
# shared metaphone code 1.2% (Dawn / Tina, Diana / Donna: metaphone is too coarse for
# short names to vouch for one child on its own).
CLOSE_JW = 0.92
CLOSE_EDITS = 2


@functools.lru_cache(maxsize=_CACHE)
def _close(a: str, b: str) -> bool:
    if a == b or _equivalent(a, b) or typo_close(a, b):
        return True
    return (a[0] == b[0] and jaro_winkler(a, b) >= CLOSE_JW
            and OSA.distance(a, b, score_cutoff=CLOSE_EDITS) <= CLOSE_EDITS)


def given_names_close(a: str | None, b: str | None) -> bool:
    """Not *clearly different*: the same name, a nickname of it, one typo apart, or
    two slips apart with the same first letter and Jaro–Winkler at least 0.92
    ("maddison" / "madisno", "eliza" / "elija"). Twins' names are almost never this
    close (see ``CLOSE_JW``); a mistyped name almost always is."""
    x, y = comparable_name(a), comparable_name(b)
    if not x or not y:
        return False
    return _close(x, y) if x <= y else _close(y, x)
