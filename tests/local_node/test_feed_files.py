"""Feed files as other organisations' systems write them (docs/feeds.md, "The file"):
UTF-16 with its byte-order mark, semicolon- or tab-separated, blank lines before the
header, an address on several lines, a date exported as a midnight timestamp load; a
quote left open loses its own row only; a header that is not text, or a file refused
whole, says so, and ``local-node ingest`` prints every warning and exits non-zero when
it loaded nothing because of the header."""

from __future__ import annotations

import os
import subprocess
from datetime import date
from pathlib import Path

import pytest

from local_node.feeds import parse_feed
from tests.conftest import DatabaseFactory
from tests.processes import script

HEADER = "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,gp_ods_code,gp_name"
ROWS = ["H1,943 476 5870,Amelia,Okafor,2015-03-14,F,bn71aa,G81001,Lewes Surgery",
        "H2,,Zoë,Smith,2016-01-02,M,BN7 1AA,,"]


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "health.csv"
    path.write_bytes(data)
    return path


def _loaded(path: Path) -> list[tuple[str, str | None, date | None]]:
    return [(r.source_ref, r.identity.given_name, r.identity.dob)
            for r in parse_feed("health", path).rows]


GOOD = [("H1", "Amelia", date(2015, 3, 14)), ("H2", "Zoë", date(2016, 1, 2))]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_utf16_file_with_its_byte_order_mark_loads(tmp_path: Path, codec: str) -> None:
    text = "\ufeff" + "\r\n".join([HEADER, *ROWS]) + "\r\n"
    path = _write(tmp_path, text.encode(codec))
    assert _loaded(path) == GOOD
    assert parse_feed("health", path).errors == []


def test_a_header_that_is_not_text_refuses_the_file_saying_why(tmp_path: Path) -> None:
    # UTF-16 without its mark: every other byte a NUL
    result = parse_feed("health", _write(tmp_path, "\n".join([HEADER, *ROWS]).encode(
        "utf-16-le")))
    assert result.refused and result.rows == []
    assert [(e.line, e.column) for e in result.errors] == [(1, "")]
    assert "NUL" in result.errors[0].reason and "UTF-16" in result.errors[0].reason
    # a control character inside a column's name is a look-alike, not an unknown column
    # quietly ignored (the GP names would all be dropped)
    header = HEADER.replace("gp_name", "gp_\x01name")
    result = parse_feed("health", _write(tmp_path, "\n".join([header, *ROWS]).encode()))
    assert result.refused and [(e.line, e.column) for e in result.errors] == [
        (1, "gp_\x01name")]
    assert "looks like the column 'gp_name'" in result.errors[0].reason


def test_a_latin1_line_is_refused_saying_how_to_save_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "\r\n".join([HEADER, *ROWS]).encode("cp1252"))
    result = parse_feed("health", path)
    assert [r.source_ref for r in result.rows] == ["H1"]
    assert [(e.line, e.column) for e in result.errors] == [(3, "given_name")]
    assert "not valid UTF-8" in result.errors[0].reason
    assert "CSV UTF-8" in result.errors[0].reason


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_file_separated_by_semicolons_or_tabs_loads(tmp_path: Path, delimiter: str) -> None:
    rows = [line.split(",") for line in [HEADER, *ROWS]]
    rows.append(["H3", "", "Cara", "Jones", "2016-01-03", "F", "", "", '"Surgery, The"'])
    text = "\n".join(delimiter.join(fields) for fields in rows)
    path = _write(tmp_path, text.encode())
    result = parse_feed("health", path)
    assert result.errors == [] and result.warnings == []
    assert [(r.source_ref, r.involvement and r.involvement.organisation_name)
            for r in result.rows] == [("H1", "Lewes Surgery"), ("H2", None),
                                      ("H3", "Surgery, The")]


def test_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, ("\r\n\r\n" + "\r\n".join([HEADER, *ROWS])).encode())
    assert _loaded(path) == GOOD
    bad = _write(tmp_path, b"\n\nsource_ref,given_name\nH1,Amy\n")
    result = parse_feed("health", bad)
    assert {(e.line, e.column) for e in result.errors} == {(3, "family_name"), (3, "dob")}


def test_a_quote_left_open_loses_its_own_row_only(tmp_path: Path) -> None:
    lines = [HEADER, ROWS[0], 'H3,,"Cara,Jones,2016-01-03,F,,,', ROWS[1],
             'H4,,Dan,"Lee,2016-01-04,M,,,', "H5,,Eve,Moss,2016-01-05,F,,,"]
    result = parse_feed("health", _write(tmp_path, "\n".join(lines).encode()))
    assert [r.source_ref for r in result.rows] == ["H1", "H2", "H5"]
    assert [(e.line, e.column) for e in result.errors] == [(3, ""), (5, "")]
    assert "a quote opened on this line is not closed" in result.errors[0].reason


def test_a_quote_left_open_before_a_field_limit_of_rows_loses_its_own_row_only(
        tmp_path: Path) -> None:
    # the open quote swallows rows until the field is over csv's limit (128 KiB)
    rows = [f"R{i},,Amy,Smith{i},2016-01-02,F,,," for i in range(5000)]
    lines = [HEADER, 'H0,,"Open,Quote,2016-01-02,F,,,', *rows]
    result = parse_feed("health", _write(tmp_path, "\n".join(lines).encode()))
    assert [(e.line, e.column) for e in result.errors] == [(2, "")]
    assert len(result.rows) == 5000


def test_a_midnight_timestamp_is_a_date_and_any_other_time_is_refused(
        tmp_path: Path) -> None:
    header = "source_ref,given_name,family_name,dob,gp_ods_code,registered_from,registered_to"
    lines = [header,
             "H1,Amy,Ali,2015-03-14 00:00:00,G81001,2015-04-01T00:00:00.000Z,2016-01-01 00:00",
             "H2,Bea,Bo,2015-03-14T00:00:00+01:00,,,",
             # 23:00 in UTC is midnight in summer time: the day would be one early
             "H3,Cy,Cox,2015-03-13T23:00:00Z,,,",
             "H4,Di,Dee,2015-03-14,G81001,2015-04-01 09:30,"]
    result = parse_feed("health", _write(tmp_path, "\n".join(lines).encode()))
    by_ref = {r.source_ref: r for r in result.rows}
    assert by_ref["H1"].identity.dob == by_ref["H2"].identity.dob == date(2015, 3, 14)
    pointer = by_ref["H1"].involvement
    assert pointer is not None
    assert (pointer.start_date, pointer.end_date) == (date(2015, 4, 1), date(2016, 1, 1))
    assert by_ref["H3"].identity.dob is None  # loaded incomplete, and said where
    assert [(w.line, w.column) for w in result.warnings] == [(4, "dob")]
    assert "not midnight" in result.warnings[0].reason
    assert [(e.line, e.column) for e in result.errors] == [(5, "registered_from")]
    assert "not midnight" in result.errors[0].reason


def test_an_address_on_several_lines_is_one_line(tmp_path: Path) -> None:
    header = "source_ref,given_name,family_name,dob,address_line,postcode"
    text = header + '\r\nH1,Amy,Ali,2015-03-14,"12 Church Lane\r\nLewes\r\n",BN7 1AA\r\n'
    result = parse_feed("health", _write(tmp_path, text.encode()))
    assert result.errors == []
    assert result.rows[0].identity.address_line == "12 Church Lane, Lewes"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, text=True, capture_output=True, timeout=120)


async def test_ingest_prints_each_warning_and_a_refused_file_fails(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": "E10000011",
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem"),
    }
    node = script("local-node")
    assert _run([node, "db", "upgrade"], env).returncode == 0
    # Excel's "Unicode text": UTF-16, tab-separated; an unknown column, a date of birth
    # in another format, a quote left open
    feed = tmp_path / "health.csv"
    lines = [HEADER + ",case_notes", *(row + ",x" for row in ROWS),
             'H3,,"Cara,Jones,2016-01-03,F,,,,x', "H4,,Dan,Lee,14/03/2015,M,,,,x"]
    feed.write_bytes(("\ufeff" + "\r\n".join(lines).replace(",", "\t")).encode("utf-16"))
    result = _run([node, "ingest", "--feed", "health", str(feed)], env)
    assert result.returncode == 0, result.stderr
    assert "3 of 4 rows loaded, 1 rejected" in result.stdout
    assert "line 4: has 3 fields but the header has 10" in result.stderr
    assert "warning: line 1, column case_notes: not a column of the health feed" \
        in result.stderr
    assert ("warning: line 5, column dob: must be an ISO date YYYY-MM-DD, got '14/03/2015'; "
            "the row is loaded without it, flagged incomplete") in result.stderr

    # a required column missing: nothing is read, and the command fails
    refused = tmp_path / "refused.csv"
    refused.write_text("source_ref,given_name,family_name\nH9,Amy,Ali\n", encoding="utf-8")
    result = _run([node, "ingest", "--feed", "health", str(refused)], env)
    assert result.returncode == 1
    assert "line 1, column dob: required column missing from the header" in result.stderr
    assert "the file is refused, nothing is loaded" in result.stderr
    assert "Traceback" not in result.stderr


def test_blank_or_ignored_columns_twice_do_not_refuse_the_file(tmp_path: Path) -> None:
    # a spreadsheet's empty columns at the end, and an unknown column twice: ignored
    text = "\n".join([HEADER + ",notes,notes,,", *(row + ",a,b,," for row in ROWS)])
    result = parse_feed("health", _write(tmp_path, text.encode()))
    assert [r.source_ref for r in result.rows] == ["H1", "H2"] and result.errors == []
    assert [(w.line, w.column) for w in result.warnings] == [(1, "notes")]
    # a column of the feed twice still refuses it: which one holds the date of birth?
    text = "\n".join([HEADER + ",dob", *(row + ",2001-01-01" for row in ROWS)])
    result = parse_feed("health", _write(tmp_path, text.encode()))
    assert result.refused and [(e.line, e.column) for e in result.errors] == [(1, "dob")]


def test_sex_may_be_written_as_a_word(tmp_path: Path) -> None:
    header = "source_ref,given_name,family_name,dob,sex"
    lines = [header, "H1,Amy,Ali,2015-03-14,Female", "H2,Bo,Ali,2015-03-14,MALE",
             "H3,Cy,Ali,2015-03-14,Not  Known", "H4,Di,Ali,2015-03-14,not specified",
             "H5,Ed,Ali,2015-03-14,Boy"]
    result = parse_feed("health", _write(tmp_path, "\n".join(lines).encode()))
    assert [(r.source_ref, r.identity.sex) for r in result.rows] == [
        ("H1", 2), ("H2", 1), ("H3", 0), ("H4", 9)]
    assert [(e.line, e.column) for e in result.errors] == [(6, "sex")]


def test_a_header_repeated_inside_the_file_is_not_a_child(tmp_path: Path) -> None:
    header = "source_ref,upn,given_name,family_name,dob"
    lines = [header, "E1,,Amy,Ali,2015-03-14", header.upper(), "E2,,Bo,Ali,2015-03-14"]
    path = tmp_path / "education.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = parse_feed("education", path)
    assert [r.source_ref for r in result.rows] == ["E1", "E2"]
    assert [(e.line, e.column) for e in result.errors] == [(3, "")]
    assert "repeats the header row" in result.errors[0].reason


async def test_an_endless_or_oversized_feed_is_refused(make_database: DatabaseFactory,
                                                        tmp_path: Path) -> None:
    """``local-node ingest /dev/zero`` read for ever (into memory); now a feed is read up
    to ``ingest.max_feed_bytes`` and refused past it, with a clear error and exit 1."""
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": "E10000011",
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem"),
        "LOCAL_NODE__INGEST__MAX_FEED_BYTES": "65536",
    }
    node = script("local-node")
    assert _run([node, "db", "upgrade"], env).returncode == 0
    big = _write(tmp_path, ("\n".join([HEADER, *ROWS]) + "\n").encode() * 1000)
    for path in (Path("/dev/zero"), big):
        result = _run([node, "ingest", "--feed", "health", str(path)], env)
        assert result.returncode == 1, result.stdout
        assert f"{path}: line 1: the file is over 65,536 bytes (ingest.max_feed_bytes)" \
            in result.stderr
        assert "the file is refused, nothing is loaded" in result.stderr
        assert "Traceback" not in result.stderr
    # a feed under the limit loads as ever
    result = _run([node, "ingest", "--feed", "health", str(_write(tmp_path, "\n".join(
        [HEADER, *ROWS]).encode()))], env)
    assert result.returncode == 0 and "2 of 2 rows loaded" in result.stdout, result.stderr
