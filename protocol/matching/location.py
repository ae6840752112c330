"""Where a child lives, compared: postcodes by their parts and by edit distance, address
lines by tokens with the house number compared apart from the street.

    >>> from protocol.matching.compare import IdentityFields
    >>> def at(postcode=None, line=None):
    ...     return IdentityFields("A", "B", None, postcode=postcode, address_line=line)
    >>> compare_postcode(at("BN1 1AA"), at("BN1 1AB")).name   # the next street
    'SECTOR'
    >>> compare_postcode(at("BN1 1AA"), at("BM1 1AA")).name   # a slip of the key
    'TYPO'
    >>> compare_address(at(line="12 Church Rd"), at(line="12 Church Road")).name
    'EXACT'
    >>> compare_address(at(line="12 Church Road"), at(line="14 Church Road")).name
    'STREET'

A postcode one edit from another (a letter or digit changed, two swapped, one dropped)
that is not simply the neighbouring unit of one sector (``BN1 1AA`` / ``BN1 1AB``,
which :attr:`PostcodeLevel.SECTOR` already says) is a keying slip far more often than a
different place: two children drawn at random show it about as rarely as one sector.

Address lines are split into the house number(s) and the street words. The same
street with a different house number is its own level (``STREET``): a neighbour, or a
slip of one digit; it is never the agreement a same-house address is.
"""

from __future__ import annotations

import functools
import re
from enum import IntEnum
from typing import TYPE_CHECKING

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from protocol.matching.names import fold

if TYPE_CHECKING:
    from protocol.matching.compare import IdentityFields

__all__ = ["AddressLevel", "PostcodeLevel", "compare_address", "compare_postcode",
           "normalise_address", "postcode_parts"]

VALUE_CACHE = 1 << 19  # one entry per distinct address or postcode a hub holds
_ADDRESS_WORDS = {
    "rd": "road", "st": "street", "ave": "avenue", "av": "avenue", "cl": "close",
    "cres": "crescent", "cresc": "crescent", "dr": "drive", "gdns": "gardens", "gr": "grove",
    "ln": "lane", "pl": "place", "sq": "square", "ter": "terrace", "terr": "terrace",
    "ct": "court", "pk": "park", "wy": "way", "hse": "house", "cott": "cottage",
}
_ADDRESS_TOKEN = re.compile(r"[^\W_]+")  # letters and digits of any script
_HOUSE_NUMBER = re.compile(r"\d")          # "12", "12a", "3b": a token with a digit in it
_POSTCODE_AREA = re.compile(r"[A-Z]{1,2}")

ADDRESS_HIGH, ADDRESS_MEDIUM = 90.0, 70.0
STREET_SAME = 90.0  # street words' token-set ratio at or above which the street is one


class PostcodeLevel(IntEnum):
    MISSING = -1
    OTHER = 0
    AREA = 1      # "BN"
    DISTRICT = 2  # "BN1"
    TYPO = 3      # one edit apart, not the same sector: "BN1 1AA" / "BM1 1AA"
    SECTOR = 4    # "BN1 1"
    FULL = 5


class AddressLevel(IntEnum):
    MISSING = -1
    OTHER = 0
    MEDIUM = 1    # token-set ratio >= 70, house numbers not contradicting
    STREET = 2    # the same street, a different house number
    HIGH = 3      # token-set ratio >= 90, house numbers not contradicting
    EXACT = 4


@functools.lru_cache(maxsize=VALUE_CACHE)
def postcode_parts(postcode: str) -> tuple[str, str, str, str] | None:
    """(full, sector, district, area) of a postcode in any spacing or case."""
    compact = "".join(postcode.split()).upper()
    if len(compact) < 5:
        return None
    outward, inward = compact[:-3], compact[-3:]
    area = _POSTCODE_AREA.match(outward)
    return compact, f"{outward} {inward[0]}", outward, area.group(0) if area else outward


def compare_postcode(a: IdentityFields, b: IdentityFields) -> PostcodeLevel:
    x, y = a.postcode, b.postcode
    if not x or not y:
        return PostcodeLevel.MISSING
    return _postcode_level(x, y) if x <= y else _postcode_level(y, x)


@functools.lru_cache(maxsize=1 << 17)
def _postcode_level(a: str, b: str) -> PostcodeLevel:
    x, y = postcode_parts(a), postcode_parts(b)
    if x is None or y is None:
        return PostcodeLevel.MISSING
    if x[0] == y[0]:
        return PostcodeLevel.FULL
    if x[1] == y[1]:
        return PostcodeLevel.SECTOR
    if OSA.distance(x[0], y[0], score_cutoff=1) <= 1:
        return PostcodeLevel.TYPO
    if x[2] == y[2]:
        return PostcodeLevel.DISTRICT
    if x[3] == y[3]:
        return PostcodeLevel.AREA
    return PostcodeLevel.OTHER


@functools.lru_cache(maxsize=VALUE_CACHE)
def normalise_address(line: str) -> str:
    """Lower case tokens with common abbreviations written out ("Rd" → "road")."""
    tokens = _ADDRESS_TOKEN.findall(fold(line))
    return " ".join(_ADDRESS_WORDS.get(t, t) for t in tokens)


@functools.lru_cache(maxsize=VALUE_CACHE)
def _split(address: str) -> tuple[frozenset[str], str]:
    """(house numbers, street words) of a normalised address line."""
    tokens = address.split()
    numbers = frozenset(t for t in tokens if _HOUSE_NUMBER.search(t))
    return numbers, " ".join(t for t in tokens if t not in numbers)


def compare_address(a: IdentityFields, b: IdentityFields) -> AddressLevel:
    if not a.address_line or not b.address_line:
        return AddressLevel.MISSING
    x, y = normalise_address(a.address_line), normalise_address(b.address_line)
    if not x or not y:
        return AddressLevel.MISSING
    return _address_level(x, y) if x <= y else _address_level(y, x)


@functools.lru_cache(maxsize=1 << 16)
def _address_level(x: str, y: str) -> AddressLevel:
    if x == y:
        return AddressLevel.EXACT
    (nx, sx), (ny, sy) = _split(x), _split(y)
    if nx and ny and not (nx <= ny or ny <= nx):
        # 12 Church Road is not 14 Church Road: a neighbour's house (or a slip), never
        # the same house, whatever the street words say.
        if sx and sy and fuzz.token_set_ratio(sx, sy) >= STREET_SAME:
            return AddressLevel.STREET
        return AddressLevel.OTHER
    # Tokens in any order ("Flat 3, 12 Church Road" / "12 Church Road, Flat 3"), or the
    # letters in order with the spaces ignored: a space slipped ("oatlands court" /
    # "oatland scourt") splits two tokens into two others.
    ratio = max(fuzz.token_set_ratio(x, y), fuzz.ratio(x.replace(" ", ""), y.replace(" ", "")))
    if ratio >= ADDRESS_HIGH:
        return AddressLevel.HIGH
    if ratio >= ADDRESS_MEDIUM:
        return AddressLevel.MEDIUM
    return AddressLevel.OTHER
