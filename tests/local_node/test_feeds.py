"""Feed parsing: generated feeds load clean; a bad row is reported (line, column,
reason) and skipped while the rest load; optional columns may be absent."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

import synthetic
from local_node.feeds import (
    COLUMNS,
    CORE_FIELDS,
    FEEDS,
    FeedRow,
    RowError,
    parse_feed,
    parse_feed_text,
)

TODAY = date(2026, 6, 1)
COUNCILS = ["E10000011", "E06000020"]
HEALTH_HEADER = ("source_ref,nhs_number,given_name,other_given_names,family_name,dob,sex,"
                 "address_line,postcode,gp_ods_code,gp_name,gp_phone,registered_from,"
                 "registered_to\n")
SERVICES_HEADER = ("source_ref,nhs_number,upn,given_name,family_name,dob,sex,postcode,"
                   "service_type,service_name,organisation_code,professional_name,"
                   "professional_role,professional_phone,professional_email,lead_professional,"
                   "caf_done,sensitive,consent,shielded,start_date,end_date\n")
GOOD_HEALTH = ("HL1,943 476 5870,Amelia,Rose,Okafor,2015-03-14,2,\"12 Church Lane, Lewes\","
               "bn71aa,g81001,Lewes Surgery,01273 123456,2015-04-01,\n")


@pytest.fixture(scope="module")
def feeds_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[synthetic.Population, Path]:
    population = synthetic.generate_population(COUNCILS, 800, seed=5, today=TODAY, bad_rows=8)
    out = tmp_path_factory.mktemp("feeds")
    synthetic.write_feeds(population, out)
    return population, out


def _one(feed: str, header: str, line: str) -> FeedRow:
    result = parse_feed_text(feed, [header, line])
    assert result.errors == [], [str(e) for e in result.errors]
    assert len(result.rows) == 1
    return result.rows[0]


def test_columns_match_the_generator() -> None:
    assert FEEDS == synthetic.FEEDS
    assert {f: COLUMNS[f] for f in FEEDS} == synthetic.FEED_COLUMNS


def test_generated_feeds_load_with_only_the_planted_errors(
        feeds_dir: tuple[synthetic.Population, Path]) -> None:
    population, out = feeds_dir
    # A blank or invalid name or date of birth loads, flagged incomplete;
    # every other planted error is refused.
    expected: dict[tuple[str, str], set[tuple[int, str]]] = defaultdict(set)
    incomplete: dict[tuple[str, str], set[tuple[int, str]]] = defaultdict(set)
    for bad in population.bad_rows:
        into = incomplete if bad.column in CORE_FIELDS else expected
        into[(bad.council, bad.source)].add((bad.line, bad.column))
    assert sum(map(len, incomplete.values())) >= 2  # the generator planted some
    loaded = 0
    for council in COUNCILS:
        for feed in FEEDS:
            result = parse_feed(feed, out / council / f"{feed}.csv")
            rows_in_file = len(population.feeds[(council, feed)])
            assert {(e.line, e.column) for e in result.errors} == expected[(council, feed)]
            assert len(result.rows) == rows_in_file - len(expected[(council, feed)])
            assert {(r.line, i.split(":")[0]) for r in result.rows
                    for i in r.identity.incomplete} == incomplete[(council, feed)]
            # an invalid (not blank) name or date of birth is also said, where it is
            assert {(w.line, w.column) for w in result.warnings} <= incomplete[(council, feed)]
            refs = {a.source_ref for a in population.feeds[(council, feed)]}
            assert {r.source_ref for r in result.rows} <= refs
            assert all(r.source == feed and r.involvement is not None for r in result.rows)
            loaded += len(result.rows)
    assert loaded == population.row_count() - sum(map(len, expected.values()))


def test_clean_generated_feeds_have_zero_errors(tmp_path: Path) -> None:
    population = synthetic.generate_population(["E10000032"], 600, seed=9, today=TODAY)
    synthetic.write_feeds(population, tmp_path)
    truth = {(t.source, t.source_ref): t.person_id for t in population.truth}
    persons = {p.person_id: p for p in population.persons}
    for feed in FEEDS:
        result = parse_feed(feed, tmp_path / "E10000032" / f"{feed}.csv")
        assert result.errors == [] and len(result.rows) == len(
            population.feeds[("E10000032", feed)])
        for row in result.rows:
            person = persons[truth[(feed, row.source_ref)]]
            if row.identity.nhs_number:
                assert row.identity.nhs_number == person.nhs_number
            if row.identity.upn:
                assert row.identity.upn == person.upn


def test_bad_row_is_reported_with_line_column_reason_and_the_rest_load() -> None:
    lines = [HEALTH_HEADER, GOOD_HEALTH,
             "HL2,9434765871,Ben,,Okafor,2016-01-02,1,,,,,,,\n",
             "HL3,,Cara,,Okafor,2017-02-30,2,,,,,,,\n",
             "HL4,,Dan,,,2017-02-03,1,,,,,,,\n",
             "HL5,,Evie,,Okafor,2018-05-06,X,,,,,,,\n",
             GOOD_HEALTH.replace("HL1", "HL6")]
    result = parse_feed_text("health", lines)
    # an impossible date of birth and a blank family name load, flagged incomplete
    assert [r.source_ref for r in result.rows] == ["HL1", "HL3", "HL4", "HL6"]
    assert [(e.line, e.column) for e in result.errors] == [(3, "nhs_number"), (6, "sex")]
    assert str(result.errors[0]).startswith("line 3, column nhs_number: not a valid NHS number")
    cara, dan = result.rows[1].identity, result.rows[2].identity
    assert (cara.given_name, cara.dob, cara.incomplete) == (
        "Cara", None, ("dob: not a real date: '2017-02-30'",))
    assert (dan.family_name, dan.dob, dan.incomplete) == (
        None, date(2017, 2, 3), ("family_name: blank",))
    assert result.rows[0].identity.incomplete == ()


@pytest.mark.parametrize(("value", "reason"), [
    ("", "dob: blank"),
    ("1985-03-14", "dob: out of range for a child: 1985-03-14"),
    ("2015-13-01", "dob: not a real date: '2015-13-01'"),
    ("14/03/2015", "dob: must be an ISO date YYYY-MM-DD, got '14/03/2015'"),
])
def test_an_invalid_or_blank_dob_loads_incomplete(value: str, reason: str) -> None:
    row = _one("health", HEALTH_HEADER, GOOD_HEALTH.replace("2015-03-14", value))
    assert (row.identity.given_name, row.identity.dob, row.identity.incomplete) == (
        "Amelia", None, (reason,))


def test_an_invalid_name_loads_incomplete() -> None:
    row = _one("health", HEALTH_HEADER, GOOD_HEALTH.replace("Amelia", "A\x07melia"))
    assert row.identity.given_name is None
    assert row.identity.incomplete == ("given_name: contains control characters",)


def test_a_row_with_nothing_to_identify_the_child_is_refused() -> None:
    lines = [HEALTH_HEADER, GOOD_HEALTH,
             "HL2,,,,,2015-02-30,2,,BN7 1AA,,,,,\n",    # a bad date, nothing else
             "HL3,,,,,,1,12 Church Lane,,,,,,\n",       # an address only
             "HL4,9434765919,,,,,1,,,,,,,\n",           # an NHS number is enough
             GOOD_HEALTH.replace("HL1", "HL5")]
    result = parse_feed_text("health", lines)
    assert [r.source_ref for r in result.rows] == ["HL1", "HL4", "HL5"]
    assert [(e.line, e.column) for e in result.errors] == [(3, "dob"), (4, "given_name")]
    assert result.errors[0].reason.startswith("no usable identifying field")
    assert "dob: not a real date" in result.errors[0].reason


def test_a_good_row_parses_into_a_normalised_identity_and_pointer() -> None:
    row = _one("health", HEALTH_HEADER, GOOD_HEALTH)
    assert row.line == 2 and row.source == "health" and row.source_ref == "HL1"
    ident = row.identity
    assert (ident.given_name, ident.family_name, ident.dob, ident.sex) == (
        "Amelia", "Okafor", date(2015, 3, 14), 2)
    assert (ident.nhs_number, ident.postcode, ident.address_line) == (
        "9434765870", "BN7 1AA", "12 Church Lane, Lewes")
    inv = row.involvement
    assert inv is not None
    assert (inv.service_type, inv.organisation_code, inv.organisation_name) == (
        "gp", "G81001", "Lewes Surgery")
    assert inv.start_date == date(2015, 4, 1) and inv.end_date is None


def test_education_pointer_and_former_name() -> None:
    header = ("source_ref,upn,given_name,other_given_names,family_name,former_family_name,dob,"
              "sex,address_line,postcode,school_urn,school_name,school_phone,start_date,"
              "end_date\n")
    row = _one("education", header, "ED1,b801200005001,Alfie,,Smith-Jones,Jones,2016-05-04,"
                                    "M,,TN34 1AA,114580,Hove Park School,01273 555666,"
                                    "2020-09-01,2024-07-20\n")
    assert row.identity.upn == "B801200005001"
    assert row.identity.former_family_name == "Jones"
    assert row.involvement is not None
    assert (row.involvement.service_type, row.involvement.organisation_code) == (
        "school", "114580")
    assert row.involvement.end_date == date(2024, 7, 20)


def test_optional_columns_may_be_absent_or_blank() -> None:
    result = parse_feed_text("health", ["given_name,family_name,dob,source_ref\n",
                                        "Amy,Smith,2015-01-02,H1\n",
                                        "Bo,Smith,2016-01-02,H2\n"])
    assert result.errors == []
    first = result.rows[0]
    assert first.identity.sex == 0 and first.identity.postcode is None
    assert first.identity.nhs_number is None and first.involvement is None
    row = _one("health", HEALTH_HEADER, "HL1,,Amy,,Smith,2015-01-02,,,,,,,,\n")
    assert row.identity.sex == 0 and row.involvement is None


def test_missing_required_column_is_reported_on_line_1_and_nothing_loads() -> None:
    result = parse_feed_text("services", ["source_ref,given_name,family_name,sex\n",
                                          "S1,Amy,Smith,2\n"])
    assert result.rows == []
    assert result.errors == [
        RowError(1, "dob", "required column missing from the header"),
        RowError(1, "service_type", "required column missing from the header"),
    ]
    assert str(result.errors[0]) == "line 1, column dob: required column missing from the header"


def test_empty_file_and_unknown_feed(tmp_path: Path) -> None:
    assert parse_feed_text("health", []).errors == [RowError(1, "", "no header row")]
    with pytest.raises(ValueError, match="unknown feed"):
        parse_feed_text("housing", ["source_ref\n"])
    with pytest.raises(ValueError, match="unknown feed"):
        parse_feed("housing", tmp_path / "x.csv")


@pytest.mark.parametrize(("code", "expected"), [
    ("0", 0), ("1", 1), ("2", 2), ("9", 9), ("U", 0), ("M", 1), ("F", 2), ("m", 1), ("f", 2),
])
def test_sex_codes(code: str, expected: int) -> None:
    row = _one("health", "source_ref,given_name,family_name,dob,sex\n",
               f"H1,Amy,Smith,2015-01-02,{code}\n")
    assert row.identity.sex == expected


def _service_line(**overrides: str) -> str:
    values = {
        "source_ref": "SV1", "nhs_number": "9434765870", "upn": "", "given_name": "Amy",
        "family_name": "Smith", "dob": "2010-01-02", "sex": "F", "postcode": "TF1 1AA",
        "service_type": "social_care", "service_name": "Children's Social Care",
        "organisation_code": "E06000020", "professional_name": "Jo Bloggs",
        "professional_role": "Social Worker", "professional_phone": "07700 900123",
        "professional_email": "jo.bloggs@telford.gov.uk", "lead_professional": "",
        "caf_done": "", "sensitive": "", "consent": "", "shielded": "",
        "start_date": "2024-01-01", "end_date": "",
    }
    values.update(overrides)
    return ",".join(values[c] for c in COLUMNS["services"]) + "\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("TRUE", True), ("yes", True), ("Y", True), ("1", True),
    ("false", False), ("no", False), ("N", False), ("0", False), ("", False),
])
def test_booleans(text: str, expected: bool) -> None:
    row = _one("services", SERVICES_HEADER,
               _service_line(lead_professional=text, caf_done=text, shielded=text))
    assert row.involvement is not None
    assert row.involvement.lead_professional is expected
    assert row.involvement.caf_done is expected
    assert row.shielded is expected


def test_bad_boolean_is_reported_against_its_column() -> None:
    result = parse_feed_text("services", [SERVICES_HEADER, _service_line(caf_done="maybe")])
    assert result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(2, "caf_done")]


def test_sensitive_service_without_consent_is_kept_locally() -> None:
    row = _one("services", SERVICES_HEADER,
               _service_line(service_type="sexual_health", consent="N"))
    assert row.involvement is not None
    assert row.involvement.sensitive is True and row.involvement.consent is False
    flagged = _one("services", SERVICES_HEADER, _service_line(sensitive="yes", consent="yes"))
    assert flagged.involvement is not None and flagged.involvement.sensitive is True


@pytest.mark.parametrize(("feed", "line", "column"), [
    ("services", _service_line(professional_email="not-an-email"), "professional_email"),
    ("services", _service_line(professional_phone="call me"), "professional_phone"),
    ("services", _service_line(service_name="x" * 201), "service_name"),
    ("services", _service_line(service_type="Social Care"), "service_type"),
    ("services", _service_line(service_type=""), "service_type"),
    ("services", _service_line(end_date="2023-01-01"), "end_date"),
    ("services", _service_line(start_date="01/02/2024"), "start_date"),
    ("health", GOOD_HEALTH.replace("01273 123456", "phone"), "gp_phone"),
    ("health", GOOD_HEALTH.replace("2015-04-01,", "2015-04-01,2015-03-01"), "registered_to"),
    ("health", GOOD_HEALTH.replace("g81001", "G8100"), "gp_ods_code"),
    ("health", GOOD_HEALTH.replace("bn71aa", "BN7"), "postcode"),
    ("health", GOOD_HEALTH.replace("HL1", ""), "source_ref"),
])
def test_field_errors_name_the_feed_column(feed: str, line: str, column: str) -> None:
    header = SERVICES_HEADER if feed == "services" else HEALTH_HEADER
    result = parse_feed_text(feed, [header, line])
    assert result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(2, column)], result.errors


def test_school_urn_must_be_six_digits() -> None:
    header = "source_ref,given_name,family_name,dob,school_urn,school_name\n"
    result = parse_feed_text("education", [header, "E1,Amy,Smith,2015-01-02,12345,X School\n"])
    assert [(e.line, e.column) for e in result.errors] == [(2, "school_urn")]


def test_line_shape_duplicates_and_unknown_columns() -> None:
    header = "source_ref,given_name,family_name,dob,case_notes\n"
    result = parse_feed_text("health", [
        header,
        "H1,Amy,Smith,2015-01-02,private\n",
        "H2,Bo,Smith,2015-01-02\n",              # too few fields
        "\n",                                    # blank lines are skipped
        "H1,Cy,Smith,2016-01-02,\n",             # same source_ref again
        "H3,\"Dee\nAnn\",Smith,2017-01-02,\n",   # a quoted newline: reported at its first line
    ])
    # the name with a newline in it is not a name: the row loads without it
    assert [(r.source_ref, r.identity.given_name) for r in result.rows] == [
        ("H1", "Amy"), ("H3", None)]
    assert [(e.line, e.column) for e in result.errors] == [(3, ""), (5, "source_ref")]
    assert "duplicate of line 2" in result.errors[1].reason
    # the unknown column, and the name the row loaded without
    assert [(w.line, w.column) for w in result.warnings] == [(1, "case_notes"),
                                                             (6, "given_name")]


@pytest.mark.parametrize("lookalike", ["shield\u200bed", "ｓｈｉｅｌｄｅｄ", "\u2060shielded"])
def test_a_column_spelt_with_look_alike_characters_refuses_the_file(lookalike: str) -> None:
    """An unknown column is ignored with a warning; one that reads as a known column but is
    spelt with invisible or full-width characters refuses the file: ignoring a look-alike
    "shielded" would load every child it shields as not shielded."""
    header = SERVICES_HEADER.replace("consent,shielded,", f"consent,{lookalike},")
    row = ("SV1,9434765870,,Amelia,Okafor,2015-03-14,2,BN7 1AA,social_care,Family Support,"
           ",Dana Smith,Social worker,01273 000001,dana@esx.gov.uk,true,false,false,false,"
           "true,2024-01-01,\n")
    result = parse_feed_text("services", [header, row])
    assert result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(1, lookalike)]
    assert "looks like the column 'shielded'" in result.errors[0].reason


def test_file_with_bom_and_a_line_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "health.csv"
    path.write_bytes(
        "\ufeffsource_ref,given_name,family_name,dob\n".encode()
        + "H1,Zoë,Smith,2015-01-02\n".encode()
        + b"H2,Jos\xe9,Smith,2015-01-02\n"           # Latin-1, not UTF-8
        + "H3,Siân,Łukasz,2016-01-02\r\n".encode()
    )
    result = parse_feed("health", path)
    assert [(r.source_ref, r.identity.given_name) for r in result.rows] == [
        ("H1", "Zoë"), ("H3", "Siân")]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.line, error.column) == (3, "given_name")
    assert "not valid UTF-8" in error.reason
