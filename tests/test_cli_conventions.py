"""Conventions both console scripts share, run as an operator would run them: one
environment naming scheme (the old names read as aliases, with a note), ``--expires``
always a moment, ``status --json`` on both, node review decisions audited like the
hub's, configuration problems as one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import asyncpg

from server_common.audit.entry import AuditEntry
from tests.conftest import DatabaseFactory
from tests.processes import script

ESX = "E10000011"
HUB, NODE = script("national-hub"), script("local-node")


def run(args: list[str], env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, text=True, capture_output=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def clean_environment() -> dict[str, str]:
    """The test process's environment without any setting of either server."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("NATIONAL_HUB", "LOCAL_NODE"))}


def node_env(url: str, tmp_path: Path) -> dict[str, str]:
    return clean_environment() | {
        "LOCAL_NODE__DATABASE__URL": url, "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "node" / "key.pem")}


async def test_one_environment_scheme_and_the_old_names_as_aliases(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    hub = clean_environment() | {"NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "k.pem")}
    upgraded = run([HUB, "db", "upgrade"], hub | {"NATIONAL_HUB__DATABASE__URL": url})
    assert "applied" in upgraded.stdout and "note:" not in upgraded.stderr

    old = run([HUB, "status", "--json"], hub | {"NATIONAL_HUB_DATABASE_URL": url})
    assert json.loads(old.stdout)["councils"] == []
    assert ("NATIONAL_HUB_DATABASE_URL is the old name of NATIONAL_HUB__DATABASE__URL"
            in old.stderr)
    both = run([HUB, "status"], hub | {"NATIONAL_HUB_DATABASE_URL": url,
                                       "NATIONAL_HUB__DATABASE__URL": url + "x"}, ok=False)
    assert both.returncode == 1 and "disagree" in both.stderr

    # the node: its council code by its old name too
    node = node_env(await make_database(), tmp_path)
    code = node.pop("LOCAL_NODE__COUNCIL__CODE")
    run([NODE, "db", "upgrade"], node | {"LOCAL_NODE_COUNCIL": code})
    status = json.loads(run([NODE, "status", "--json"], node | {"LOCAL_NODE_COUNCIL": code}).stdout)
    assert status["council"] == ESX
    # no council at all: one line naming the setting, no traceback
    missing = run([NODE, "keys", "generate"], node, ok=False)
    assert missing.returncode == 1 and "configuration:" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_node_status_json(make_database: DatabaseFactory, tmp_path: Path) -> None:
    env = node_env(await make_database(), tmp_path)
    run([NODE, "db", "upgrade"], env)
    kid = run([NODE, "keys", "generate"], env).stdout.split()[1]
    feed = tmp_path / "education.csv"
    feed.write_text("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
                    "E1,,Amelia,Okafor,2015-03-14,F,BN1 1AA\n"
                    "E2,,Dan,Jones,2013-07-08,M,BN2 2BB\n", encoding="utf-8")
    run([NODE, "ingest", "--feed", "education", str(feed)], env)
    status = json.loads(run([NODE, "status", "--json"], env).stdout)
    assert status["council"] == ESX and status["children"] == 2
    assert status["outbox"]["depth"] == 2 and status["outbox"]["head_seq"] == 0
    assert status["outbox"]["last_receipt_at"] is None
    assert status["key"] == {"kid": kid, "reported": False, "not_after": None}
    assert status["hub_audit_log"]["witnessing"] is None  # never witnessed yet
    text = run([NODE, "status"], env).stdout
    assert "children         2" in text and kid in text


async def test_node_review_decisions_are_audited(make_database: DatabaseFactory,
                                                 tmp_path: Path) -> None:
    url = await make_database()
    env = node_env(url, tmp_path)
    run([NODE, "db", "upgrade"], env)
    feed = tmp_path / "education.csv"
    # a short name and a birthday, at another address: two pairs for the index team
    feed.write_text("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
                    "E1,,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA\n"
                    "E2,,Bella,Okonkwo-Reilly,2015-03-14,F,TN2 2BB\n"
                    "E3,,Alexander,Pemberton-Hale,2012-09-30,M,BN3 3CC\n"
                    "E4,,Alex,Pemberton-Hale,2012-09-30,M,TN4 4DD\n", encoding="utf-8")
    run([NODE, "ingest", "--feed", "education", str(feed)], env)
    # social care shields Bella: where she lives is no one's to read off a listing
    services = tmp_path / "services.csv"
    services.write_text("source_ref,given_name,family_name,dob,sex,postcode,service_type,"
                        "service_name,shielded\n"
                        "S1,Bella,Okonkwo-Reilly,2015-03-14,F,TN2 2BB,social_care,"
                        "Children's Social Care,Y\n", encoding="utf-8")
    run([NODE, "ingest", "--feed", "services", str(services)], env)
    listed = run([NODE, "review", "list"], env).stdout
    items = [int(m) for m in re.findall(r"^#(\d+)", listed, re.M)]
    assert len(items) == 2, "both pairs go to review"
    # an operator's listing, as the hub's: no postcode of a pair with a shielded child
    assert "TN2 2BB" not in listed and "BN1 1AA" not in listed
    assert listed.count("postcode withheld (shielded)") == 2
    assert "BN3 3CC" in listed and "TN4 4DD" in listed
    merged = run([NODE, "review", "accept", str(items[0]), "--by", "ian"], env).stdout
    assert "merged" in merged
    run([NODE, "review", "reject", str(items[1]), "--by", "ian"], env)
    again = run([NODE, "review", "reject", str(items[1])], env, ok=False)
    assert again.returncode == 1 and "already rejected" in again.stderr

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT entry FROM audit_log ORDER BY seq")
        pairs = {r["id"]: {r["local_id"], r["candidate_id"]} for r in await conn.fetch(
            "SELECT id, local_id, candidate_id FROM review_items")}
    finally:
        await conn.close()
    entries = [AuditEntry.from_bytes(bytes(r["entry"])) for r in rows]
    assert [e.action for e in entries] == ["review.queue", "review.accept", "review.reject"]
    # the listing is audited before it is shown, as the index team's page is
    looked = entries.pop(0)
    assert looked.who.startswith("cli:") and looked.parameters["items"] == items
    assert set(looked.child_ids) == pairs[items[0]] | pairs[items[1]]
    for entry, item in zip(entries, items, strict=True):
        assert entry.who.startswith("cli:") and entry.role == "operator"
        assert entry.organisation == ESX and entry.purpose == "identity resolution"
        assert entry.parameters["item"] == item and entry.parameters["decided_by"] == "ian"
        assert set(entry.child_ids) == pairs[item]


async def test_expires_is_a_moment_everywhere(make_database: DatabaseFactory,
                                              tmp_path: Path) -> None:
    env = clean_environment() | {"NATIONAL_HUB__DATABASE__URL": await make_database(),
                                 "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "k.pem")}
    run([HUB, "db", "upgrade"], env)
    run([HUB, "users", "add", "amy", "--role", "practitioner", "--organisation", "GP",
         "--generate-password"], env)
    dated = run([HUB, "users", "token", "amy", "--expires", "2099-01-31"], env).stdout
    assert "expires 2099-01-31 00:00:00Z" in dated
    lasting = run([HUB, "users", "token", "amy", "--lifetime", "12h"], env).stdout
    assert "expires " in lasting
    duration = run([HUB, "users", "token", "amy", "--expires", "30d"], env, ok=False)
    assert duration.returncode == 2 and "--lifetime" in duration.stderr
    past = run([HUB, "users", "token", "amy", "--expires", "2001-01-01"], env, ok=False)
    assert past.returncode == 2 and "in the past" in past.stderr
    for command in (["councils", "add"], ["users", "token"]):
        assert "DATE" in run([HUB, *command, "--help"], env).stdout
    assert "DATE" in run([NODE, "keys", "rotate", "--help"], clean_environment()).stdout
