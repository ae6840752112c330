"""The synthetic population: deterministic, docs/design.md §8 columns, valid identifiers,
households with twins, movers, the noise it promises, and bad rows only when asked."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from stdnum.gb import nhs, upn

import synthetic
from protocol.identifiers import normalise_postcode, postcode_district
from synthetic.__main__ import main as cli_main
from synthetic.generator import age_on
from synthetic.names import NamePools
from synthetic.numbers import upn_check_letter
from synthetic.writer import csv_line

TODAY = date(2026, 6, 1)
COUNCILS = ["E10000011", "E10000032", "E06000020"]
AREAS = {"E10000011": {"BN", "TN"}, "E10000032": {"RH", "BN", "PO", "GU"},
         "E06000020": {"TF"}}

# Copied from docs/design.md §8 on purpose: the test must not agree with the code by construction.
DESIGN_COLUMNS = {
    "education": "source_ref, upn, given_name, other_given_names, family_name, "
                 "former_family_name, dob, sex, address_line, postcode, school_urn, "
                 "school_name, school_phone, start_date, end_date",
    "health": "source_ref, nhs_number, given_name, other_given_names, family_name, dob, sex, "
              "address_line, postcode, gp_ods_code, gp_name, gp_phone, registered_from, "
              "registered_to",
    "services": "source_ref, nhs_number, upn, given_name, family_name, dob, sex, postcode, "
                "service_type, service_name, organisation_code, professional_name, "
                "professional_role, professional_phone, professional_email, lead_professional, "
                "caf_done, sensitive, consent, shielded, start_date, end_date",
}
# docs/design.md §8 lets columns be added: its columns come first, in its order, then only
# the optional columns added since (parent/carer; docs/feeds.md).
ADDED_COLUMNS = {"education": ",parent_carer_name,parent_carer_phone",
                 "health": ",parent_carer_name,parent_carer_phone", "services": ""}


@pytest.fixture(scope="module")
def population() -> synthetic.Population:
    return synthetic.generate_population(COUNCILS, 1500, seed=7, today=TODAY)


@pytest.fixture(scope="module")
def written(population: synthetic.Population, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feeds")
    synthetic.write_feeds(population, out)
    return out


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _rows(population: synthetic.Population, council: str, feed: str) -> list[dict[str, str]]:
    columns = synthetic.FEED_COLUMNS[feed]
    return [dict(zip(columns, row, strict=True)) for row in population.rows(council, feed)]


def test_same_seed_same_files_and_another_seed_differs(tmp_path: Path) -> None:
    def files(seed: int, out: Path) -> dict[str, bytes]:
        pop = synthetic.generate_population(COUNCILS[:2], 300, seed=seed, today=TODAY)
        synthetic.write_feeds(pop, out)
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv"))}

    first = files(3, tmp_path / "a")
    assert first == files(3, tmp_path / "b")
    assert first != files(4, tmp_path / "c")
    assert len(first) == 7  # 2 councils x 3 feeds + truth


def test_files_and_columns_are_exactly_design_section_8(written: Path) -> None:
    for council in COUNCILS:
        assert sorted(p.name for p in (written / council).iterdir()) == [
            "education.csv", "health.csv", "services.csv"]
        for feed, columns in DESIGN_COLUMNS.items():
            with open(written / council / f"{feed}.csv", encoding="utf-8") as f:
                header = f.readline().rstrip("\n")
            assert header == columns.replace(" ", "") + ADDED_COLUMNS[feed], (council, feed)
    with open(written / "truth.csv", encoding="utf-8") as f:
        assert f.readline() == "person_id,council,source,source_ref\n"


def test_dates_are_iso_and_files_utf8(written: Path) -> None:
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    accented = 0
    for council in COUNCILS:
        for feed in DESIGN_COLUMNS:
            raw = (written / council / f"{feed}.csv").read_bytes()
            accented += any(b > 127 for b in raw)
            for row in _read(written / council / f"{feed}.csv"):
                for column in ("dob", "start_date", "end_date", "registered_from",
                               "registered_to"):
                    value = row.get(column)
                    assert not value or iso.match(value), (column, value)
    assert accented  # Zoë, Siân, Łukasz...: real UTF-8, not ASCII by luck


def test_truth_names_every_row_once(population: synthetic.Population, written: Path) -> None:
    truth = _read(written / "truth.csv")
    keys = [(t["council"], t["source"], t["source_ref"]) for t in truth]
    assert len(keys) == len(set(keys)) == population.row_count()
    for council in COUNCILS:
        for feed in DESIGN_COLUMNS:
            refs = {r["source_ref"] for r in _read(written / council / f"{feed}.csv")}
            assert refs == {k[2] for k in keys if k[:2] == (council, feed)}
    in_memory = {(t.council, t.source, t.source_ref): t.person_id for t in population.truth}
    assert in_memory == {(t["council"], t["source"], t["source_ref"]): t["person_id"]
                         for t in truth}


def test_every_identifier_emitted_is_valid(population: synthetic.Population) -> None:
    nhs_seen = upn_seen = 0
    for council in COUNCILS:
        for feed in DESIGN_COLUMNS:
            for row in _rows(population, council, feed):
                if row.get("nhs_number"):
                    assert nhs.is_valid(row["nhs_number"]), row
                    nhs_seen += 1
                if row.get("upn"):
                    assert upn.is_valid(row["upn"]), row
                    upn_seen += 1
                if row["postcode"]:
                    normalised = normalise_postcode(row["postcode"])
                    area = re.match(r"[A-Z]+", postcode_district(normalised))
                    assert area and area.group() in AREAS[council], (council, normalised)
    assert nhs_seen > 3000 and upn_seen > 2000
    people = population.persons
    assert len({p.nhs_number for p in people}) == len(people)
    upns = [p.upn for p in people if p.upn]
    assert len(set(upns)) == len(upns)


def test_upn_check_letter_agrees_with_stdnum() -> None:
    for body in ("845200221001", "938400112999", "894201523017", "000000000000"):
        assert upn_check_letter(body) == upn.calc_check_digit(body)


def test_children_are_0_to_17_and_sex_codes(population: synthetic.Population) -> None:
    assert {age_on(p.dob, TODAY) for p in population.persons} == set(range(18))
    sexes = Counter(row["sex"] for c in COUNCILS for f in DESIGN_COLUMNS
                    for row in _rows(population, c, f))
    assert sexes["1"] > 1000 and sexes["2"] > 1000
    assert sexes["0"] + sexes["9"] > 0
    assert set(sexes) <= {"0", "1", "2", "9", "M", "F", "U"}


def test_twins_share_dob_surname_address_but_not_given_name(
        population: synthetic.Population) -> None:
    twins = [p for p in population.persons if p.twin_names]
    assert len(twins) >= 10
    by_home: dict[tuple[str, str, date], list[synthetic.Person]] = defaultdict(list)
    for person in twins:
        home = person.presences[0]
        by_home[(home.address_line, home.postcode, person.dob)].append(person)
    pairs = [group for group in by_home.values() if len(group) == 2]
    assert len(pairs) * 2 == len(twins)
    for a, b in pairs:
        assert a.presences[0].family_name == b.presences[0].family_name
        assert a.given_name.lower() != b.given_name.lower()
        for row in (ap for p in a.presences for ap in p.appearances):
            shown = (row.overrides or {}).get("given_name", a.given_name)
            assert shown.lower() != b.given_name.lower()


def test_movers_appear_in_two_councils(population: synthetic.Population) -> None:
    movers = population.movers
    assert 0.03 * 4500 <= len(movers) <= 0.08 * 4500
    councils_of = defaultdict(set)
    for t in population.truth:
        councils_of[t.person_id].add(t.council)
    in_two = [m for m in movers if len(councils_of[m.person_id]) == 2]
    assert len(in_two) >= 0.8 * len(movers)
    for mover in movers:
        old, new = mover.presences
        assert old.council != new.council and old.moved_out == new.moved_in
        assert new.postcode != old.postcode
        if old.school is not None:
            assert old.school_end == old.moved_out
        if old.practice is not None:
            assert old.registered_to == old.moved_out
    kept = [m for m in movers if m.presences[1].upn == m.upn and m.upn]
    lost = [m for m in movers if m.upn and m.presences[1].upn is None]
    assert kept and lost  # the new school sometimes has the UPN, sometimes not


def test_noise_is_there(population: synthetic.Population) -> None:
    labels = Counter(label for rows in population.feeds.values() for a in rows
                     for label in (a.noise or ()))
    for label in ("nickname", "typo", "dob_swap", "double_barrel", "no_nhs", "no_upn",
                  "surname_lag", "stale_address", "upper_case"):
        assert labels[label] > 0, label
    assert not any(label.startswith("bad:") for label in labels)
    education = [r for c in COUNCILS for r in _rows(population, c, "education")]
    assert any(r["former_family_name"] for r in education)
    assert any("-" in r["family_name"] for r in education)


def test_nicknames_and_swapped_dates_point_back_to_the_truth(
        population: synthetic.Population) -> None:
    pools = NamePools(7)
    seen = 0
    for rows in population.feeds.values():
        for a in rows:
            person = a.presence.person
            if "nickname" in (a.noise or ()):
                seen += 1
                shown = a.overrides["given_name"]  # type: ignore[index]
                assert shown.lower() != person.given_name.lower()
                if "typo" not in a.noise and "upper_case" not in a.noise:  # type: ignore[operator]
                    assert pools.related(shown, person.given_name)
            if "dob_swap" in (a.noise or ()):
                swapped = date.fromisoformat(a.overrides["dob"])  # type: ignore[index]
                assert (swapped.month, swapped.day) == (person.dob.day, person.dob.month)
                assert person.dob.day <= 12
    assert seen > 0


def test_services_feed_holds_sensitive_and_shielded(population: synthetic.Population) -> None:
    services = [r for c in COUNCILS for r in _rows(population, c, "services")]
    types = Counter(r["service_type"] for r in services)
    assert {"social_care", "early_help", "health_visiting", "camhs"} <= set(types)
    sensitive = [r for r in services
                 if r["service_type"] in ("sexual_health", "mental_health", "substance_misuse")]
    assert sensitive and all(r["consent"] for r in sensitive)
    assert {r["consent"] for r in sensitive} >= {"Y", "N"} or len(sensitive) < 6
    shielded = [a for rows in population.feeds.values() for a in rows
                if a.presence.shielded]
    assert shielded
    assert all(r["professional_email"].count("@") == 1 for r in services)


def test_bad_rows_only_when_asked_and_known(tmp_path: Path) -> None:
    assert synthetic.generate_population(COUNCILS[:1], 200, seed=1, today=TODAY).bad_rows == []
    pop = synthetic.generate_population(COUNCILS[:2], 300, seed=1, today=TODAY, bad_rows=8)
    assert len(pop.bad_rows) == 8
    assert Counter(b.kind for b in pop.bad_rows) == {
        "nhs_check_digit": 2, "bad_date": 2, "bad_sex": 2, "missing_family_name": 2}
    synthetic.write_feeds(pop, tmp_path)
    for bad in pop.bad_rows:
        with open(tmp_path / bad.council / f"{bad.source}.csv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        row = rows[bad.line - 2]
        assert row["source_ref"] == bad.source_ref
        assert row[bad.column] == bad.value
        if bad.kind == "nhs_check_digit":
            assert len(bad.value) == 10 and not nhs.is_valid(bad.value)


def test_unknown_council_gets_a_generic_area() -> None:
    pop = synthetic.generate_population(["E99999999", "E10000011"], 100, seed=2, today=TODAY)
    rows = _rows(pop, "E99999999", "health")
    assert rows and all(normalise_postcode(r["postcode"]) for r in rows if r["postcode"])
    assert all(upn.is_valid(p.upn) for p in pop.persons if p.upn)


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="typo_rate"):
        synthetic.Params(typo_rate=1.5)


def test_cli_help_and_run(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_main, ["--help"])
    assert result.exit_code == 0 and "--councils" in result.output
    result = runner.invoke(cli_main, ["--councils", "E10000011,E06000020", "--children", "60",
                                      "--seed", "1", "--out", str(tmp_path), "--today",
                                      "2026-06-01", "--bad-rows", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "E06000020" / "services.csv").exists()
    assert len(_read(tmp_path / "bad_rows.csv")) == 2
    assert "E10000011: education" in result.output


@pytest.mark.parametrize("row", [
    ["ED1", "Amy", "12 Church Lane, Lewes", "BN7 1AA"],
    ["ED1", "Amy", 'The "Old" Rectory, Lewes', "BN7 1AA"],
    ["ED1", "Amy, Jo", "12 Church Lane, Lewes", ""],
    ["ED1", 'A"my', "12 Church Lane", "x\ny"],
    ["ED1", "Amy", "Line\nbreak, Lewes", "BN7 1AA"],
])
def test_fast_csv_lines_read_back_as_the_same_fields(row: list[str]) -> None:
    line = csv_line(list(row), 2)
    assert next(csv.reader(io.StringIO(line, newline=""))) == row
    assert csv_line(["a", "b,c", ""], None) == 'a,"b,c",\n'


def test_same_files_across_processes_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Nothing may depend on set or str-hash order: two interpreters, two hash seeds."""
    root = Path(__file__).resolve().parents[2]
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        subprocess.run(
            [sys.executable, "-m", "synthetic", "--councils", "E10000011,E99999999",
             "--children", "200", "--seed", "5", "--today", "2026-01-01", "--bad-rows", "4",
             "--out", str(out), "--quiet"],
            cwd=root, env={**os.environ, "PYTHONHASHSEED": hash_seed}, check=True, timeout=120,
        )
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                        if p.is_file()})
    assert outputs[0] == outputs[1] and len(outputs[0]) == 8
