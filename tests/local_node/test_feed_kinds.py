"""Feed kinds are one table (``local_node.feed_kinds``): the parser, the identity rules,
the CLI and docs/feeds.md all read it, and a feed not in it is refused by name."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from local_node.feed_kinds import FEED_KINDS, FEEDS, UnknownFeed, columns_markdown, feed_kind
from local_node.feeds import COLUMNS, REQUIRED, parse_feed, parse_feed_text
from local_node.services.identity import apply_rules, source_trust
from local_node.storage.children import ChildRow
from tests.processes import script

DOCS = Path(__file__).resolve().parents[2] / "docs" / "feeds.md"


def test_the_parser_reads_its_columns_from_the_table() -> None:
    assert FEEDS == ("education", "health", "services")
    for kind in FEED_KINDS.values():
        assert COLUMNS[kind.name] == kind.column_names
        assert REQUIRED[kind.name] == kind.required
        assert len(set(kind.column_names)) == len(kind.column_names)
        # every column a pointer is read from is a column of the feed
        assert set(kind.pointer_columns.values()) <= set(kind.column_names)
    # health over education over services, as the identity rules promise
    assert [source_trust(f) for f in ("health", "education", "services")] == [3, 2, 1]


def test_each_feed_labels_its_pointers_from_the_table() -> None:
    education = parse_feed_text("education", [
        "source_ref,given_name,family_name,dob,school_urn\n",
        "ED1,Amelia,Okafor,2015-03-14,114582\n"])
    health = parse_feed_text("health", [
        "source_ref,given_name,family_name,dob,gp_ods_code\n",
        "HL1,Amelia,Okafor,2015-03-14,G81001\n"])
    services = parse_feed_text("services", [
        "source_ref,given_name,family_name,dob,service_type\n",
        "SV1,Amelia,Okafor,2015-03-14,early_help\n"])
    types = [r.rows[0].involvement.service_type for r in (education, health, services)
             if r.rows[0].involvement is not None]
    assert types == ["school", "gp", "early_help"]


@pytest.mark.parametrize("name", ["gp", "Health", "", "social_care"])
def test_an_unknown_feed_is_refused_everywhere(name: str, tmp_path: Path) -> None:
    with pytest.raises(UnknownFeed, match=f"unknown feed {name!r}: expected one of "
                                          "education, health, services"):
        feed_kind(name)
    path = tmp_path / "feed.csv"
    path.write_text("source_ref,given_name,family_name,dob\nX1,Ann,Lee,2015-01-01\n")
    with pytest.raises(UnknownFeed):
        parse_feed(name, path)
    with pytest.raises(UnknownFeed):
        parse_feed_text(name, ["source_ref\n"])
    # a source row from a feed the table does not know is not quietly ranked lowest
    child = ChildRow(local_id="L1", given_name=None, family_name=None, dob=None)
    row = {"source": name, "received_at": datetime(2026, 1, 1), "identity": "{}"}
    with pytest.raises(UnknownFeed):
        apply_rules(child, [row])


def test_cli_ingest_refuses_an_unknown_feed(tmp_path: Path) -> None:
    path = tmp_path / "gp.csv"
    path.write_text("source_ref,given_name,family_name,dob\nX1,Ann,Lee,2015-01-01\n")
    # refused before any database is opened: the URL points nowhere
    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": "postgresql://127.0.0.1:9/none",
                              "LOCAL_NODE__COUNCIL__CODE": "E10000011"}
    result = subprocess.run([script("local-node"), "ingest", "--feed", "gp", str(path)],
                            env=env, text=True, capture_output=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value for '--feed'" in result.stderr
    assert "'gp' is not one of 'education', 'health', 'services'" in result.stderr


def test_docs_show_every_feed_as_the_table_says() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = re.findall(r"^## The (\w+) feed$", text, flags=re.MULTILINE)
    assert documented == list(FEEDS)
    for kind in FEED_KINDS.values():
        assert columns_markdown(kind) in text, (
            f"docs/feeds.md: the {kind.name} table differs from local_node.feed_kinds; "
            f"run python -m local_node.feed_kinds and paste its output")
