"""The feeds a council node takes, in one table: each feed's name, its CSV columns
(required or optional, what a value looks like, an example), how far its rows are
trusted to say who a child is, and what pointer each row carries.

Everything that depends on a feed reads it from here: the parser (``local_node.feeds``),
the identity rules (``local_node.services.identity``), the CLI's ``--feed`` choices,
the synthetic generator, and ``docs/feeds.md`` (its column tables are
:func:`columns_markdown`, and a test keeps them equal). A feed not in the table is
refused by name (:func:`feed_kind`), never given a default.

    >>> feed_kind("health").trust > feed_kind("education").trust
    True
    >>> feed_kind("health").required
    ('source_ref', 'given_name', 'family_name', 'dob')
    >>> feed_kind("gp")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    local_node.feed_kinds.UnknownFeed: unknown feed 'gp': expected one of education, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The fields a row may lack, or hold an invalid value in, and still load (flagged
# incomplete); any other bad value refuses the row.
CORE_FIELDS = ("given_name", "family_name", "dob")


class UnknownFeed(ValueError):
    """A feed name that is not in :data:`FEED_KINDS`."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    required: bool
    format: str        # what a value looks like, for docs/feeds.md
    example: str


@dataclass(frozen=True, slots=True)
class FeedKind:
    name: str
    summary: str
    # Rank among the feeds for who a child is (names, date of birth, sex): the higher
    # wins (see local_node.services.identity).
    trust: int
    # The service type of every row's pointer ("school", "gp"), or None when each row
    # names its own (the services feed's service_type column).
    pointer_type: str | None
    # Involvement field → the column it is read from (and errors are reported against).
    pointer_columns: Mapping[str, str]
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column, in the order the generator writes them."""
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


def _c(name: str, fmt: str, example: str, *, required: bool = False) -> Column:
    return Column(name, required, fmt, example)


_SOURCE_REF = _c("source_ref", "the row's id in the source system: at most 100 printable "
                 "characters, unique in the file; the same child's row keeps it between "
                 "loads", "HL0001234", required=True)
_NHS = _c("nhs_number", "10 digits with a valid check digit; spaces and dashes allowed",
          "943 476 5870")
_UPN = _c("upn", "13 characters: check letter, 3-digit authority, 4-digit school, "
          "2-digit year, 3-digit serial", "A823456789012")
_GIVEN = _c("given_name", "a name, at most 100 characters", "Amelia", required=True)
_OTHER = _c("other_given_names", "a name, at most 100 characters", "Rose")
_FAMILY = _c("family_name", "a name, at most 100 characters", "Okafor", required=True)
_FORMER = _c("former_family_name", "a name, at most 100 characters", "Smith")
_DOB = _c("dob", "ISO date (YYYY-MM-DD), a real date in a child's range", "2015-03-14",
          required=True)
_SEX = _c("sex", "0 not known, 1 male, 2 female, 9 not specified; or U / M / F, or those "
               "words (Male, Female, Not known, Unknown, Not specified) in any case", "F")
_ADDRESS = _c("address_line", "text, at most 200 characters (quote it: it holds commas)",
              '"12 Church Lane, Lewes"')
_POSTCODE = _c("postcode", "a UK postcode, any case and spacing", "BN7 1AA")
_CARER_NAME = _c("parent_carer_name", "text, at most 100 characters: whom to contact "
                 "about the child", "Grace Okafor")
_CARER_PHONE = _c("parent_carer_phone", "a phone number: 6 to 20 digits, spaces and "
                  "+ ( ) -", "07700 900123")


def _date(name: str, what: str, example: str) -> Column:
    return _c(name, f"ISO date (YYYY-MM-DD): {what}", example)


def _flag(name: str, what: str) -> Column:
    return _c(name, f"true/false, yes/no, Y/N or 1/0 (blank is false): {what}", "N")


FEED_KINDS: dict[str, FeedKind] = {kind.name: kind for kind in (
    FeedKind(
        name="education", trust=2, pointer_type="school",
        summary="pupils on roll at the council's schools (one row per pupil and school)",
        pointer_columns={"organisation_code": "school_urn", "organisation_name": "school_name",
                         "organisation_phone": "school_phone", "start_date": "start_date",
                         "end_date": "end_date"},
        columns=(
            _SOURCE_REF, _UPN, _GIVEN, _OTHER, _FAMILY, _FORMER, _DOB, _SEX, _ADDRESS,
            _POSTCODE,
            _c("school_urn", "6 digits (the school's URN)", "114582"),
            _c("school_name", "text, at most 200 characters", "Lewes Priory School"),
            _c("school_phone", "a phone number", "01273 476121"),
            _date("start_date", "joined the school", "2019-09-04"),
            _date("end_date", "left the school (blank: still on roll)", ""),
            _CARER_NAME, _CARER_PHONE,
        )),
    FeedKind(
        name="health", trust=3, pointer_type="gp",
        summary="children registered with the area's GP practices (NHS spine)",
        pointer_columns={"organisation_code": "gp_ods_code", "organisation_name": "gp_name",
                         "organisation_phone": "gp_phone", "start_date": "registered_from",
                         "end_date": "registered_to"},
        columns=(
            _SOURCE_REF, _NHS, _GIVEN, _OTHER, _FAMILY, _DOB, _SEX, _ADDRESS, _POSTCODE,
            _c("gp_ods_code", "a GP practice ODS code: a letter and 5 digits", "G81001"),
            _c("gp_name", "text, at most 200 characters", "Lewes Surgery"),
            _c("gp_phone", "a phone number", "01273 123456"),
            _date("registered_from", "registered with the practice", "2015-04-01"),
            _date("registered_to", "left the practice (blank: still registered)", ""),
            _CARER_NAME, _CARER_PHONE,
        )),
    FeedKind(
        name="services", trust=1, pointer_type=None,
        summary="children's services involvements (one row per child and service)",
        pointer_columns={name: name for name in (
            "service_type", "organisation_code", "professional_name", "professional_role",
            "professional_phone", "professional_email", "start_date", "end_date",
        )} | {"organisation_name": "service_name"},
        columns=(
            _SOURCE_REF, _NHS, _UPN, _GIVEN, _FAMILY, _DOB, _SEX, _POSTCODE,
            _c("service_type", "lower case letters, digits and _, at most 40 (social_care, "
               "early_help, ...); mental_health, sexual_health and substance_misuse are "
               "sensitive", "social_care", required=True),
            _c("service_name", "text, at most 200 characters", "Lewes Children's Social Care"),
            _c("organisation_code", "text, at most 200 characters", "ESCC-CSC"),
            _c("professional_name", "text, at most 200 characters", "Priya Shah"),
            _c("professional_role", "text, at most 200 characters", "social worker"),
            _c("professional_phone", "a phone number", "01273 481000"),
            _c("professional_email", "an email address (secure email)", "p.shah@escc.gov.uk"),
            _flag("lead_professional", "this professional is the lead professional"),
            _flag("caf_done", "a common assessment has been done"),
            _flag("sensitive", "a sensitive service (always true for the sensitive types)"),
            _flag("consent", "the child consented to share a sensitive service"),
            _flag("shielded", "the child is shielded (their location is never shown)"),
            _date("start_date", "the involvement began", "2024-01-15"),
            _date("end_date", "the involvement ended (blank: ongoing)", ""),
        )),
)}
FEEDS = tuple(FEED_KINDS)


def feed_kind(name: str) -> FeedKind:
    """The feed called ``name``; an unknown name is refused, never given a default."""
    try:
        return FEED_KINDS[name]
    except KeyError:
        raise UnknownFeed(f"unknown feed {name!r}: expected one of "
                          f"{', '.join(FEEDS)}") from None


def columns_markdown(kind: FeedKind) -> str:
    """The column table of one feed as docs/feeds.md shows it."""
    lines = ["| column | required | format | example | a bad value |",
             "|---|---|---|---|---|"]
    for column in kind.columns:
        bad = ("loads the row flagged incomplete" if column.name in CORE_FIELDS
               else "refuses the row")
        example = f"`{column.example}`" if column.example else "(blank)"
        lines.append(f"| `{column.name}` | {'yes' if column.required else 'no'} | "
                     f"{column.format} | {example} | {bad} |")
    return "\n".join(lines)


def feeds_markdown() -> str:
    """Every feed's section of docs/feeds.md (``python -m local_node.feed_kinds``)."""
    return "\n\n".join(
        f"## The {kind.name} feed\n\n{kind.summary[0].upper()}{kind.summary[1:]}. "
        f"File `{kind.name}.csv`; identity trust {kind.trust} "
        f"(higher wins).\n\n{columns_markdown(kind)}"
        for kind in FEED_KINDS.values())


if __name__ == "__main__":
    print(feeds_markdown())
