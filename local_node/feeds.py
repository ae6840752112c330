"""Parsing a source feed CSV (docs/design.md §8) into validated rows.

    >>> result = parse_feed_text("health", [
    ...     "source_ref,nhs_number,given_name,family_name,dob,sex,postcode\\n",
    ...     "HL1,9434765870,Amelia,Okafor,2015-03-14,F,bn7 1aa\\n",
    ...     "HL2,9434765871,Ben,Okafor,2016-01-02,M,\\n",
    ... ])
    >>> result.rows[0].identity.postcode, result.rows[0].identity.sex
    ('BN7 1AA', 2)
    >>> print(result.errors[0])  # doctest: +ELLIPSIS
    line 3, column nhs_number: not a valid NHS number (...)

Files are UTF-8 (a leading byte-order mark is ignored), or UTF-16 with its mark
(``local_node.feed_text`` reads them into lines), with
a header row (blank lines before it are skipped); fields are separated by commas, or
by the semicolons, tabs or pipes that split the header into the feed's columns.
Columns may come in any order; optional columns may be blank or absent; unknown
columns are ignored with a warning, but one that reads as a known column spelt with
invisible, control or full-width characters refuses the file. A row with an error is
reported (line, column, reason) and skipped; the rest load, including the lines after
a quote left open, which are read again on their own. Line numbers are the file's.

A row whose given name, family name or date of birth is blank or invalid (a bad or
impossible date) is not refused: it loads without that field, flagged incomplete
with the reason, and the child is matched on what it has. Only a row left with no
identifying field at all (no name, no date of birth, no NHS number, no UPN) is
refused::

    >>> result = parse_feed_text("health", [
    ...     "source_ref,nhs_number,given_name,family_name,dob\\n",
    ...     "HL1,9434765870,,Okafor,2015-02-30\\n",
    ...     "HL2,,,,not a date\\n",
    ... ])
    >>> result.rows[0].identity.incomplete
    ('given_name: blank', "dob: not a real date: '2015-02-30'")
    >>> print(result.errors[0])  # doctest: +ELLIPSIS
    line 3, column dob: no usable identifying field (...): ...; dob: must be an ISO date ...

Every field is checked by the same rules the hub applies (``protocol``): names,
dates and the date-of-birth range through ``ChildRecord.from_wire``, pointers
through ``Involvement.from_wire``, identifiers through ``protocol.identifiers``.
Feed values repeat a great deal (names, schools, GP practices, professionals), so
each distinct value is checked once per file and remembered.

Sensitive involvements without consent are kept: the node holds them locally and
only never publishes them (docs/design.md §3).
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

from local_node.feed_cells import (
    CellProblem,
    address,
    boolean,
    carer_phone_check,
    date_check,
    dob_check,
    identifier,
    name_check,
    pointer_check,
    sex_check,
    without_hidden,
)
from local_node.feed_kinds import CORE_FIELDS, FEED_KINDS, FEEDS, UnknownFeed, feed_kind
from local_node.feed_text import MAX_FEED_BYTES, Unreadable, feed_lines
from protocol import identifiers
from protocol.errors import ValidationError
from protocol.records import (
    SENSITIVE_SERVICE_TYPES,
    Involvement,
    check_text,
)
from server_common.gc_pause import paused_gc

__all__ = ["COLUMNS", "CORE_FIELDS", "FEEDS", "REQUIRED", "FeedResult", "FeedRow", "Identity",
           "RowError", "UnknownFeed", "parse_feed", "parse_feed_text"]

# The feeds and their columns are one table (local_node.feed_kinds); these views of
# it are what the parser and the generator read.
COLUMNS: dict[str, tuple[str, ...]] = {k.name: k.column_names for k in FEED_KINDS.values()}
REQUIRED: dict[str, tuple[str, ...]] = {k.name: k.required for k in FEED_KINDS.values()}
_SOURCE_REF_MAX = 100
# What may separate fields: a comma, or what a spreadsheet saves where the comma is the
# decimal point (a semicolon) or as "text" (a tab), or a pipe. Chosen by the header.
_DELIMITERS = (",", ";", "\t", "|")
_UNCLOSED = ("has {fields} fields but the header has {width}: a quote opened on this line "
             "is not closed where it should be (read as one row up to line {end}); the "
             "lines after this one are read again on their own")



@dataclass(frozen=True, slots=True)
class Identity:
    given_name: str | None        # None: blank or invalid, see ``incomplete``
    family_name: str | None
    dob: date | None
    sex: int                      # 0/1/2/9
    other_given_names: str | None = None
    former_family_name: str | None = None
    address_line: str | None = None
    postcode: str | None = None   # normalised "BN1 1AA"
    nhs_number: str | None = None  # 10 digits, valid
    upn: str | None = None        # valid
    # Whom to contact about the child (health and education feeds); not used to match.
    parent_carer_name: str | None = None
    parent_carer_phone: str | None = None
    # Why a core field is absent, one "column: reason" each ("dob: blank").
    incomplete: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedRow:
    line: int                     # line number in the file (header is line 1)
    source: str                   # the feed name
    source_ref: str
    identity: Identity
    involvement: Involvement | None   # school / GP / service pointer
    shielded: bool = False        # services feed only


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    column: str                   # "" when the problem is the whole line
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}" if self.column else f"line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FeedResult:
    rows: list[FeedRow]
    errors: list[RowError]
    # Not errors: the file loaded, but someone should look (e.g. an unknown column).
    warnings: list[RowError] = field(default_factory=list)
    # The whole file was refused (no header, a required column missing): nothing loaded.
    refused: bool = False


def parse_feed(feed: str, path: Path, *, max_bytes: int = MAX_FEED_BYTES) -> FeedResult:
    """Parse a feed file (read as ``local_node.feed_text`` says). A line that is not
    UTF-8 is reported and skipped; a file over ``max_bytes`` is refused."""
    feed_kind(feed)  # an unknown feed is refused before the file is read
    try:
        lines, bad_lines = feed_lines(path, max_bytes)
    except Unreadable as exc:
        return _refused(str(exc))
    return _Parser(feed, bad_lines).parse(lines)


def parse_feed_text(feed: str, text_lines: Iterable[str]) -> FeedResult:
    """Parse a feed from lines of text (each ending in its newline, as a file gives them)."""
    return _Parser(feed, {}).parse(list(text_lines))


def _refused(reason: str, line: int = 1, column: str = "") -> FeedResult:
    return FeedResult([], [RowError(line, column, reason)], refused=True)


def _lines_from(lines: list[str], index: int) -> Iterator[str]:
    """The lines from ``index`` on, without copying them: a list iterator moved there."""
    moved: Any = iter(lines)
    moved.__setstate__(index)
    return cast(Iterator[str], moved)


def _header_name(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _plain(name: str) -> str:
    """A header name as it reads: compatibility forms folded ("ｓｈｉｅｌｄｅｄ"), invisible
    format and control characters (a zero-width space, a NUL) dropped, lower case."""
    folded = unicodedata.normalize("NFKC", name)
    return "".join(c for c in folded
                   if unicodedata.category(c) not in ("Cf", "Cc")).strip().lower()


class _Parser:
    def __init__(self, feed: str, bad_lines: dict[int, str]) -> None:
        self.kind = feed_kind(feed)
        self.feed = feed
        self.bad_lines = bad_lines
        self.caches: dict[str, dict[Any, Any]] = {}
        self.pointer_columns = self.kind.pointer_columns
        # what the row being read held unseen, by column (``without_hidden``)
        self.hidden_removed: list[tuple[str, str]] = []

    # -- the file ---------------------------------------------------------------------

    def parse(self, lines: list[str]) -> FeedResult:
        # A quarter of a million rows of acyclic objects: the cyclic collector would
        # otherwise rescan them over and over (15% of the time).
        with paused_gc():
            return self._parse(lines)

    def _parse(self, lines: list[str]) -> FeedResult:
        rows: list[FeedRow] = []
        errors: list[RowError] = []
        warnings: list[RowError] = []
        # The header is the first line that is not blank; line numbers stay the file's.
        first = next((i for i, text in enumerate(lines) if text.strip()), None)
        if first is None:
            return _refused("no header row")
        if first + 1 in self.bad_lines:
            return _refused(self.bad_lines[first + 1], first + 1)
        if "\x00" in lines[first]:
            return _refused("the header has NUL characters: the file is not UTF-8 text "
                            "(UTF-16 saved without its byte-order mark?)", first + 1)
        delimiter = self._delimiter(lines[first])
        reader, offset = csv.reader(_lines_from(lines, first), delimiter=delimiter), first
        try:
            header = [_header_name(h) for h in next(reader)]
        except csv.Error as exc:
            return _refused(f"unreadable CSV header: {exc}", first + 1)
        header_line = first + 1
        if not any(header):
            return _refused("no header row", header_line)
        header_errors = self._check_header(header, header_line, warnings)
        if header_errors:
            return FeedResult([], header_errors, warnings, refused=True)
        index = {name: i for i, name in enumerate(header)}
        positions = [(name, index.get(name, -1)) for name in COLUMNS[self.feed]]
        width = len(header)
        seen: dict[str, int] = {}
        end = offset + reader.line_num
        while True:
            start = end + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                end = offset + reader.line_num
                errors.append(RowError(start, "", f"unreadable CSV: {exc}"))
                if end > start:  # what it swallowed after this line is read again
                    reader, offset = csv.reader(_lines_from(lines, start),
                                                delimiter=delimiter), start
                    end = start
                continue
            end = offset + reader.line_num
            if len(fields) != width and end > start:
                # A quote opened on this line and not closed where it should be: the
                # lines it swallowed are read again on their own, never lost with it.
                errors.append(RowError(start, "", _UNCLOSED.format(
                    fields=len(fields), width=width, end=end)))
                reader, offset = csv.reader(_lines_from(lines, start),
                                            delimiter=delimiter), start
                end = start
                continue
            if not any(f.strip() for f in fields):
                continue  # blank line
            if fields[0].strip().lower() == header[0] and list(map(_header_name,
                                                                   fields)) == header:
                # files joined together: loaded, it would be a child called "given_name"
                errors.append(RowError(start, "", "repeats the header row (files joined "
                                                  "together?): not a row"))
                continue
            try:
                self._check_line(fields, start, end, width, header)
                row = self._row(start, fields, positions)
                if row.source_ref in seen:
                    raise CellProblem("source_ref", f"duplicate of line {seen[row.source_ref]}")
            except CellProblem as problem:
                errors.append(RowError(start, problem.column, problem.reason))
                continue
            seen[row.source_ref] = start
            rows.append(row)
            warnings += [RowError(start, column, f"held {what}, a character that changes how "
                                                 "text displays without being seen: removed")
                         for column, what in self.hidden_removed]
            for reason in row.identity.incomplete:
                column, why = reason.split(": ", 1)
                if why != "blank":  # a value was there and could not be used: say so
                    warnings.append(RowError(start, column, f"{why}; the row is loaded "
                                                            "without it, flagged incomplete"))
        return FeedResult(rows, errors, warnings)

    def _delimiter(self, line: str) -> str:
        """The header's separator: the one that splits it into most of the feed's
        columns (a comma unless another does better), so a file saved where a semicolon
        or a tab separates fields loads the same."""
        columns = COLUMNS[self.feed]

        def known(delimiter: str) -> int:
            try:
                names = next(csv.reader([line], delimiter=delimiter))
            except csv.Error:
                return 0
            return sum(_header_name(name) in columns for name in names)

        return max(_DELIMITERS, key=known)

    def _check_header(self, header: list[str], line: int,
                      warnings: list[RowError]) -> list[RowError]:
        errors = [RowError(line, name, "required column missing from the header")
                  for name in REQUIRED[self.feed] if name not in header]
        seen: set[str] = set()
        for name in header:
            if name in seen:
                if name in COLUMNS[self.feed]:  # which of the two holds the value?
                    errors.append(RowError(line, name, "column appears twice in the header"))
                continue  # a column ignored, or a blank one (a spreadsheet's), again
            seen.add(name)
            if name and name not in COLUMNS[self.feed]:
                meant = _plain(name)
                if meant in COLUMNS[self.feed]:
                    # Ignored, a look-alike "shielded" would load every child unshielded:
                    # the file is refused instead, as for a column missing.
                    errors.append(RowError(line, name, f"looks like the column {meant!r} "
                                                       "but is spelt with other characters"))
                    continue
                warnings.append(RowError(line, name, f"not a column of the {self.feed} "
                                                     "feed; ignored"))
        return errors

    def _check_line(self, fields: list[str], start: int, end: int, width: int,
                    header: list[str]) -> None:
        for number in range(start, end + 1):
            if number in self.bad_lines:
                column = next((header[i] for i, f in enumerate(fields[:width])
                               if "\ufffd" in f), "")
                raise CellProblem(column, self.bad_lines[number])
        if len(fields) != width:
            raise CellProblem("", f"has {len(fields)} fields but the header has {width}")

    # -- one row ----------------------------------------------------------------------

    def _row(self, line: int, fields: list[str],
             positions: list[tuple[str, int]]) -> FeedRow:
        # Every column of the feed, "" when blank or absent from the file.
        v = {name: fields[i].strip() if i >= 0 else "" for name, i in positions}
        source_ref = v["source_ref"]
        if not source_ref:
            raise CellProblem("source_ref", "is required")
        if len(source_ref) > _SOURCE_REF_MAX or not source_ref.isprintable():
            raise CellProblem("source_ref", f"must be at most {_SOURCE_REF_MAX} printable "
                                         "characters")
        v, self.hidden_removed = without_hidden(v)
        feed, check = self.feed, self._cached
        incomplete: list[str] = []
        core = {column: self._core(column, v[column], incomplete) for column in CORE_FIELDS}
        identity = Identity(
            given_name=core["given_name"], family_name=core["family_name"], dob=core["dob"],
            sex=check("sex", v["sex"], sex_check) or identifiers.SEX_NOT_KNOWN,
            other_given_names=check("other_given_names", v.get("other_given_names", ""),
                                    name_check),
            former_family_name=check("former_family_name", v.get("former_family_name", ""),
                                     name_check),
            address_line=check("address_line", address(v.get("address_line", "")),
                               check_text),
            postcode=check("postcode", v["postcode"], identifiers.normalise_postcode),
            nhs_number=identifier("nhs_number", v.get("nhs_number", ""),
                                   identifiers.normalise_nhs_number),
            upn=identifier("upn", v.get("upn", ""), identifiers.normalise_upn),
            parent_carer_name=check("parent_carer_name", v.get("parent_carer_name", ""),
                                    name_check),
            parent_carer_phone=check("parent_carer_phone", v.get("parent_carer_phone", ""),
                                     carer_phone_check),
            incomplete=tuple(incomplete),
        )
        if not (identity.given_name or identity.family_name or identity.dob
                or identity.nhs_number or identity.upn):
            # Report against the first field that was there but invalid, if any.
            invalid = [r for r in incomplete if not r.endswith(": blank")]
            column = (invalid or incomplete)[0].split(":", 1)[0]
            raise CellProblem(column, "no usable identifying field (no name, date of birth, "
                                   f"NHS number or UPN): {'; '.join(incomplete)}")
        if self.kind.pointer_type is None:  # each row names its service
            return FeedRow(line, feed, source_ref, identity, self._service(v),
                           boolean("shielded", v["shielded"]))
        return FeedRow(line, feed, source_ref, identity, self._organisation(v))

    def _core(self, column: str, value: str, incomplete: list[str]) -> Any:
        """A name or the date of birth; blank or invalid is noted, not refused."""
        if not value:
            incomplete.append(f"{column}: blank")
            return None
        try:
            return self._cached(column, value, dob_check if column == "dob" else name_check)
        except CellProblem as problem:
            incomplete.append(f"{column}: {problem.reason}")
            return None

    def _cached(self, column: str, value: str, check: Any, *, required: bool = False,
                cache_name: str = "") -> Any:
        """``check(value, column)``, remembered per distinct value; blank is None."""
        if not value:
            if required:
                raise CellProblem(column, "is required")
            return None
        cache = self.caches.setdefault(cache_name or column, {})
        hit = cache.get(value)
        if hit is None:
            try:
                hit = check(value, column)
            except ValidationError as exc:
                hit = exc  # remembered too: the same bad value fails the same way
            cache[value] = hit
        if isinstance(hit, ValidationError):
            raise CellProblem(column, hit.reason)
        return hit

    def _organisation(self, v: dict[str, str]) -> Involvement | None:
        columns = self.pointer_columns
        code = v[columns["organisation_code"]].upper()
        name = v[columns["organisation_name"]]
        phone = v[columns["organisation_phone"]]
        if not (code or name or phone):
            return None  # no pointer on this row
        service_type = self.kind.pointer_type
        assert service_type is not None
        base = self._pointer((service_type, code, name, phone, "", "", "", ""))
        start, end = self._dates(v)
        return Involvement(
            service_type=service_type, organisation_code=base.organisation_code,
            organisation_name=base.organisation_name,
            organisation_phone=base.organisation_phone, start_date=start, end_date=end,
        )

    def _service(self, v: dict[str, str]) -> Involvement:
        if not v["service_type"]:
            raise CellProblem("service_type", "is required")
        base = self._pointer((
            v["service_type"], v["organisation_code"], v["service_name"], "",
            v["professional_name"], v["professional_role"], v["professional_phone"],
            v["professional_email"],
        ))
        start, end = self._dates(v)
        return Involvement(
            service_type=base.service_type, organisation_code=base.organisation_code,
            organisation_name=base.organisation_name,
            professional_name=base.professional_name, professional_role=base.professional_role,
            professional_phone=base.professional_phone,
            professional_email=base.professional_email, start_date=start, end_date=end,
            lead_professional=boolean("lead_professional", v["lead_professional"]),
            caf_done=boolean("caf_done", v["caf_done"]),
            sensitive=(boolean("sensitive", v["sensitive"])
                       or base.service_type in SENSITIVE_SERVICE_TYPES),
            consent=boolean("consent", v["consent"]),
        )

    def _pointer(self, key: tuple[str, ...]) -> Involvement:
        """Check the organisation and professional fields with the protocol's rules."""
        cache = self.caches.setdefault("pointer", {})
        hit = cache.get(key)
        if hit is None:
            hit = pointer_check(self.feed, key, self.pointer_columns)
            cache[key] = hit
        if isinstance(hit, CellProblem):
            raise CellProblem(hit.column, hit.reason)
        return hit

    def _dates(self, v: dict[str, str]) -> tuple[date | None, date | None]:
        start_column = self.pointer_columns["start_date"]
        end_column = self.pointer_columns["end_date"]
        start = self._cached(start_column, v[start_column], date_check, cache_name="date")
        end = self._cached(end_column, v[end_column], date_check, cache_name="date")
        if start and end and end < start:
            raise CellProblem(end_column, f"is before {start_column}")
        return start, end
