"""Hypothesis strategies shared by every test package (one file, as attrs does).

Valid values are built, not filtered: an NHS number gets its modulus-11 check
digit computed, a UPN its check letter (python-stdnum's ``calc_check_digit``).
"Hostile" strategies produce anything msgpack can carry, and near-valid wire
maps with one part replaced, so decoders are pushed past their first check.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st
from stdnum.gb import upn as stdnum_upn

from protocol.batch import Batch, DeleteOp, UpsertOp
from protocol.key_announcement import KeyAnnouncement
from protocol.matching.compare import IdentityFields
from protocol.records import SENSITIVE_SERVICE_TYPES, ChildRecord, Involvement

EARLIEST_DOB = date(1990, 1, 1)

# --- identifiers --------------------------------------------------------------


def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit, or None when the nine digits have no valid one."""
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    first_nine = draw(st.text(string.digits, min_size=9, max_size=9).filter(
        lambda s: nhs_check_digit(s) is not None))
    return first_nine + str(nhs_check_digit(first_nine))


@st.composite
def invalid_nhs_numbers(draw: st.DrawFn) -> str:
    """Ten digits whose last digit is not the check digit (or has none possible)."""
    first_nine = draw(st.text(string.digits, min_size=9, max_size=9))
    check = nhs_check_digit(first_nine)
    last = draw(st.sampled_from([d for d in range(10) if d != check]))
    return first_nine + str(last)


# The LA numbers stdnum (and so the protocol) accepts in a UPN.
UPN_LA_NUMBERS = sorted(stdnum_upn._la_numbers)
_UPN_ALPHABET = stdnum_upn._alphabet  # ABCDEFGHJKLMNPQRTUVWXYZ0123456789


@st.composite
def upns(draw: st.DrawFn) -> str:
    la = draw(st.sampled_from(UPN_LA_NUMBERS))
    middle = draw(st.text(string.digits, min_size=8, max_size=8))
    last = draw(st.sampled_from(_UPN_ALPHABET))  # a letter here marks a temporary UPN
    body = f"{la:03d}{middle}{last}"
    return stdnum_upn.calc_check_digit(body) + body


@st.composite
def postcodes(draw: st.DrawFn) -> str:
    """A normalised postcode in any of the six outward formats: "BN1 1AA"."""
    letter = st.sampled_from(string.ascii_uppercase)
    digit = st.sampled_from(string.digits)
    area = draw(st.text(string.ascii_uppercase, min_size=1, max_size=2))
    district = draw(digit) + draw(st.sampled_from(["", *string.digits, *string.ascii_uppercase]))
    return f"{area}{district} {draw(digit)}{draw(letter)}{draw(letter)}"


@st.composite
def messy_postcodes(draw: st.DrawFn) -> tuple[str, str]:
    """(as typed, normalised): random case and spacing around a valid postcode."""
    clean = draw(postcodes())
    chars = []
    for ch in clean.replace(" ", ""):
        chars.append(ch.lower() if draw(st.booleans()) else ch)
        chars.append(draw(st.sampled_from(["", "", " ", "  ", "\t"])))
    return "".join(chars), clean


SEX_CODES = st.sampled_from([0, 1, 2, 9])
SEX_INPUTS = st.sampled_from([(0, 0), (1, 1), (2, 2), (9, 9), ("0", 0), ("1", 1), ("2", 2),
                              ("9", 9), ("U", 0), ("M", 1), ("F", 2), ("m", 1), ("f", 2),
                              ("u", 0)])


def dobs() -> st.SearchStrategy[date]:
    return st.dates(min_value=EARLIEST_DOB, max_value=date.today())


# --- records ------------------------------------------------------------------

local_ids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z")
council_codes = st.from_regex(r"\A[A-Z][0-9]{8}\Z")
hex64 = st.from_regex(r"\A[0-9a-f]{64}\Z")
slugs = st.from_regex(r"\A[a-z][a-z0-9_]{0,39}\Z")
service_types = st.one_of(st.sampled_from(sorted(SENSITIVE_SERVICE_TYPES)),
                          st.sampled_from(["school", "health_visitor", "social_care", "gp",
                                           "youth_justice", "early_help"]),
                          slugs)


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Text the record accepts unchanged: no control characters, no outer whitespace."""
    chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
    return (st.text(chars, min_size=1, max_size=max_size)
            .map(str.strip).filter(lambda s: 0 < len(s) <= max_size))


phones = st.from_regex(r"\A[0-9+(][0-9 +()-]{4,18}[0-9)]\Z")
emails = st.from_regex(r"\A[a-z0-9._%+-]{1,30}@[a-z0-9-]{1,30}\.[a-z]{2,8}\Z")


@st.composite
def involvements(draw: st.DrawFn) -> Involvement:
    service_type = draw(service_types)
    sensitive = service_type in SENSITIVE_SERVICE_TYPES or draw(st.booleans())
    start = draw(st.none() | st.dates(EARLIEST_DOB, date(2030, 12, 31)))
    end = draw(st.none() | st.dates(start or EARLIEST_DOB, date(2035, 12, 31)))
    return Involvement(
        service_type=service_type,
        organisation_code=draw(st.none() | st.from_regex(r"\A[A-Z0-9]{1,20}\Z")),
        organisation_name=draw(st.none() | texts(200)),
        organisation_phone=draw(st.none() | phones),
        professional_name=draw(st.none() | texts(100)),
        professional_role=draw(st.none() | texts(100)),
        professional_phone=draw(st.none() | phones),
        professional_email=draw(st.none() | emails),
        start_date=start,
        end_date=end,
        lead_professional=draw(st.booleans()),
        caf_done=draw(st.booleans()),
        sensitive=sensitive,
        consent=True if sensitive else draw(st.booleans()),
    )


@st.composite
def child_records(draw: st.DrawFn, local_id: str | None = None) -> ChildRecord:
    dob = draw(dobs())
    return ChildRecord(
        local_id=local_id if local_id is not None else draw(local_ids),
        given_name=draw(texts(100)),
        family_name=draw(texts(100)),
        dob=dob,
        sex=draw(SEX_CODES),
        other_given_names=draw(st.none() | texts(100)),
        former_family_names=tuple(draw(st.lists(texts(100), max_size=3))),
        address_line=draw(st.none() | texts(200)),
        postcode=draw(st.none() | postcodes()),
        nhs_number=draw(st.none() | nhs_numbers()),
        upn=draw(st.none() | upns()),
        parent_carer_name=draw(st.none() | texts(100)),
        parent_carer_phone=draw(st.none() | phones),
        shielded=draw(st.booleans()),
        date_of_death=draw(st.none() | st.dates(dob, date.today())),
        involvements=tuple(draw(st.lists(involvements(), max_size=3))),
    )


# --- batches ------------------------------------------------------------------

versions = st.integers(min_value=1, max_value=2**63 - 1)
issued_ats = st.datetimes(datetime(2020, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))


@st.composite
def ops(draw: st.DrawFn) -> UpsertOp | DeleteOp:
    local_id = draw(local_ids)
    version = draw(versions)
    if draw(st.booleans()):
        return DeleteOp(local_id, version)
    return UpsertOp.of(draw(child_records(local_id=local_id)), version)


@st.composite
def batches(draw: st.DrawFn, max_ops: int = 4) -> Batch:
    return Batch(
        council=draw(council_codes),
        seq=draw(versions),
        prev=draw(hex64),
        issued_at=draw(issued_ats),
        ops=tuple(draw(st.lists(ops(), max_size=max_ops))),
    )


# Ed25519 keys from drawn seeds (deterministic, so shrinking works).
signing_keys = st.binary(min_size=32, max_size=32).map(Ed25519PrivateKey.from_private_bytes)


def _second_precision(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def key_announcements(draw: st.DrawFn) -> KeyAnnouncement:
    """A valid announcement of a new key by an old one (not_after after issued_at)."""
    old, new = draw(signing_keys), draw(signing_keys)
    if old.private_bytes_raw() == new.private_bytes_raw():
        new = Ed25519PrivateKey.from_private_bytes(bytes(31) + b"\x01")
    issued = draw(st.datetimes(datetime(2020, 1, 1), datetime(2100, 1, 1),
                               timezones=st.just(UTC)))
    days = draw(st.none() | st.integers(min_value=1, max_value=3650))
    return KeyAnnouncement.of(
        draw(council_codes), old, new, issued_at=_second_precision(issued),
        not_after=None if days is None else _second_precision(issued + timedelta(days=days)))


# --- hostile input ------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)

# Anything encoding.pack can write: nested lists and str-keyed maps of scalars.
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=20,
)


@st.composite
def mutated_maps(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]],
                 extra_keys: list[str] | None = None) -> dict[str, Any]:
    """A valid wire map with one key dropped, retyped or added."""
    data = dict(draw(valid))
    keys = sorted(data) + (extra_keys or [])
    key = draw(st.sampled_from(keys) if keys else st.text(max_size=12))
    action = draw(st.sampled_from(["drop", "replace", "replace", "add"]))
    if action == "drop":
        data.pop(key, None)
    elif action == "replace":
        data[key] = draw(msgpack_values)
    else:
        data[draw(st.text(max_size=12))] = draw(msgpack_values)
    return data


def record_wire_maps() -> st.SearchStrategy[dict[str, Any]]:
    return child_records().map(lambda r: r.to_wire())


# --- audit log ------------------------------------------------------------------


@st.composite
def merkle_trees(draw: st.DrawFn, max_leaves: int = 64) -> list[bytes]:
    """Leaf *hashes* of a tree of 1..max_leaves entries (arbitrary, distinct bytes)."""
    from server_common.audit.merkle import leaf_hash

    n = draw(st.integers(min_value=1, max_value=max_leaves))
    salt = draw(st.binary(max_size=8))
    return [leaf_hash(salt + i.to_bytes(2, "big")) for i in range(n)]


# --- a council's local index with shielded children (tests/security) ----------

# Small pools, so that random children collide: shared names, dates of birth,
# postcodes and blocking keys, as twins, siblings and duplicates do.
LOCAL_GIVEN = ("Amelia", "Amy", "Leo", "Leon", "Maya", "Mya")
LOCAL_FAMILY = ("Okafor", "Marsh", "Fenwick")
LOCAL_DOBS = (date(2014, 6, 2), date(2014, 2, 6), date(2016, 1, 10))
LOCAL_POSTCODES = ("TN22 1AA", "TN22 1AB", "BN1 1AA", "BN2 3CD", None)
LOCAL_ADDRESSES = ("12 Elm Road", "3 Mill Lane", "Flat 2, 7 Oak Close", None)
LOCAL_NHS = ("9434765919", "4010232137", "9876543210", "9434765870")


@dataclass(frozen=True)
class LocalChild:
    given_name: str
    family_name: str
    dob: date
    postcode: str | None
    address_line: str | None
    nhs_number: str | None  # each at most once (the index holds one child per number)
    shielded: bool
    archived: bool


@dataclass(frozen=True)
class LocalIndex:
    """Children (by position), their relations and one child whose address moves."""

    children: tuple[LocalChild, ...]
    reviews: tuple[tuple[int, int, str], ...]  # (newer, candidate, status)
    merges: tuple[tuple[int, int], ...]         # (absorbed, survivor), survivor older
    shared_nhs: tuple[tuple[int, int], ...]     # child j has a source row with i's NHS number
    target: int                                 # its postcode and address change to:
    moved_to: tuple[str | None, str | None]


@st.composite
def local_indexes(draw: st.DrawFn, max_children: int = 8) -> LocalIndex:
    n = draw(st.integers(2, max_children))
    nhs = draw(st.permutations(LOCAL_NHS))
    children = tuple(
        LocalChild(draw(st.sampled_from(LOCAL_GIVEN)), draw(st.sampled_from(LOCAL_FAMILY)),
                   draw(st.sampled_from(LOCAL_DOBS)), draw(st.sampled_from(LOCAL_POSTCODES)),
                   draw(st.sampled_from(LOCAL_ADDRESSES)),
                   nhs[i] if i < len(nhs) and draw(st.booleans()) else None,
                   draw(st.booleans()), draw(st.integers(0, 4)) == 0)
        for i in range(n))
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    reviews = draw(st.lists(st.tuples(pair, st.sampled_from(
        ["open", "rejected", "accepted", "obsolete"])), max_size=3,
        unique_by=lambda r: r[0]))
    absorbed = draw(st.lists(st.integers(1, n - 1), max_size=2, unique=True))
    merges = tuple((i, draw(st.integers(0, i - 1))) for i in absorbed)
    shared = draw(st.lists(pair, max_size=2, unique=True))
    target = draw(st.integers(0, n - 1))
    moved_to = (draw(st.sampled_from(LOCAL_POSTCODES)), draw(st.sampled_from(LOCAL_ADDRESSES)))
    return LocalIndex(children, tuple((a, b, s) for (a, b), s in reviews), merges,
                      tuple(shared), target, moved_to)


@st.composite
def local_queries(draw: st.DrawFn) -> dict[str, str]:
    """A practitioner's search of such an index, as submitted (may be refused)."""
    fields = {
        "given_name": st.sampled_from(LOCAL_GIVEN), "family_name": st.sampled_from(LOCAL_FAMILY),
        "dob": st.sampled_from(LOCAL_DOBS).map(date.isoformat),
        "postcode": st.sampled_from([p for p in LOCAL_POSTCODES if p]),
        "nhs_number": st.sampled_from(LOCAL_NHS),
    }
    chosen = draw(st.sets(st.sampled_from(sorted(fields)), min_size=1, max_size=4))
    return {name: draw(fields[name]) for name in sorted(chosen)}


# --- identity pairs (matching) ----------------------------------------------------

_GIVEN_POOL = ["Amelia", "Millie", "Alfie", "Alfred", "Olivia", "Oliva", "Grubb", "Maddison",
               "Madisno", "Eliza", "Elija", "Jon", "John", "Katherine", "Catherine", "Zoë",
               "Smith", "Mason", "Jason", "Bill", "William", "Daisy", "Maisie", "Sophia",
               "Sofia", "Mohammed", "Muhammad", "Ellie", "Elly", "Jonathan", "", "!!",
               # as other systems write names: a middle name in the given name, spaces
               # and digraphs, another transliteration
               "Mary Jane", "Mary-Jane", "Mary", "Rose Mary", "Jürgen", "Juergen",
               "Abdul Rahman", "Abdulrahman", "Mohamed"]
_FAMILY_POOL = ["Smith", "Smyth", "Grubb", "Olivia", "Smith-Jones", "Jones", "van der Berg",
                "Berg", "O'Brien", "Obrien", "Okonkwo-Reilly", "Reilly", "Amelia", "Smithe",
                "Johnson", "Jonson", "Thompson", "Tomson", "", "-", "O Brien", "Oʻbrien",
                "Müller", "Mueller", "Muller", "Vanderberg", "Smith Jones", "SmithJones"]
_POSTCODE_POOL = ["BN1 1AA", "BN1 1AB", "BM1 1AA", "bn11aa", "BN2 5XY", "BN1 2AA", "TF1 2AB",
                  "SW1A 1AA", "BN1 9ZZ", "BN3 7QT", "BN1", ""]
_ADDRESS_POOL = ["12 Church Rd", "12 Church Road", "14 Church Road", "Flat 3, 12 Church Road",
                 "12 Church Road Flat 3", "3 12 Church Road", "Oatlands Court",
                 "Oatland Scourt", "3b High St", "High Street", "Church Road", "12 Church Rd, Hove",
                 "Church Road 12A", "12 Chruch Road", "!", ""]


def _maybe(pool: list[str]) -> st.SearchStrategy[str | None]:
    values = st.sampled_from([*pool, None])
    return st.one_of(values, values, values, texts(12))


def _slips(name: str | None) -> list[str | None]:
    """A name as a clerk might mistype it: a letter dropped, two swapped, one changed,
    or (a surname) joined to another."""
    if not name or len(name) < 3:
        return [name]
    return [name[:2] + name[3:], name[:1] + name[2] + name[1] + name[3:],
            name[:-1] + "e", f"{name}-Jones", f"Smith {name}"]


@st.composite
def _near_dob(draw: st.DrawFn, dob: date | None) -> date | None:
    """The date as one child's other record shows it: the same, a slip, or another."""
    if dob is None or draw(st.booleans()):
        return draw(st.one_of(st.none(), st.dates(date(2000, 1, 1), date(2025, 12, 31))))
    candidates = [dob, dob.replace(day=min(dob.day, 28)) + timedelta(days=draw(
        st.integers(-40, 40)))]
    if dob.day <= 12:
        candidates.append(date(dob.year, dob.day, dob.month))
    if not (dob.month == 2 and dob.day == 29):
        candidates.append(dob.replace(year=dob.year + draw(st.sampled_from([-1, 1, 10]))))
    return draw(st.sampled_from(candidates))


@st.composite
def identity_pairs(draw: st.DrawFn) -> tuple[IdentityFields, IdentityFields]:
    """Two IdentityFields drawn to meet at every comparison level: shared pools of
    names, postcodes and addresses (typos, nicknames, swaps, double-barrelled names),
    dates a slip apart, missing and invalid values, identifiers equal or not."""
    def one(dob: date | None, nhs: str | None, upn: str | None,
            like: IdentityFields | None = None) -> IdentityFields:
        def field(pool: st.SearchStrategy[Any], *near: Any) -> Any:
            return draw(st.one_of(pool, st.sampled_from(near)) if like else pool)

        return IdentityFields(
            given_name=field(_maybe(_GIVEN_POOL), *(
                (like.given_name, like.family_name, *_slips(like.given_name)[:3])
                if like else ())),
            family_name=field(_maybe(_FAMILY_POOL), *(
                (like.family_name, like.given_name, *_slips(like.family_name))
                if like else ())),
            dob=dob, sex=draw(st.sampled_from([0, 1, 2, 9])),
            other_given_names=draw(st.one_of(st.none(), st.sampled_from(
                ["Rose", "Rose Mary", "Mary", "Rosie", "Ann Marie", ""]))),
            former_family_names=tuple(draw(st.lists(st.sampled_from(_FAMILY_POOL),
                                                    max_size=2))),
            postcode=field(_maybe(_POSTCODE_POOL), *((like.postcode,) if like else ())),
            address_line=field(_maybe(_ADDRESS_POOL),
                               *((like.address_line,) if like else ())),
            nhs_number=nhs, upn=upn)

    numbers = st.one_of(st.none(), nhs_numbers(), invalid_nhs_numbers(), st.just(""))
    pupil = st.one_of(st.none(), upns(), st.just("A12345678901B"))
    first_dob = draw(st.one_of(st.none(), st.dates(date(2000, 1, 1), date(2025, 12, 31))))
    nhs, upn = draw(numbers), draw(pupil)
    a = one(first_dob, nhs, upn)
    b = one(draw(_near_dob(first_dob)),
            draw(st.one_of(st.just(nhs), numbers)), draw(st.one_of(st.just(upn), pupil)), a)
    return a, b
