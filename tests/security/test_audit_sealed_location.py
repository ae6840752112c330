"""An auditor reading the hub's log never learns where a shielded child lives.

East Sussex's index team looks up the child it shields by who it is *and* where it lives
(it knows both); a practitioner does the same with the postcode of Telford's copy. Both
answers hold the shielded child, so both entries keep the postcode sealed: the auditor's
subject access (JSON, page and CSV) shows that a postcode was given, not which. A
search whose answer holds no shielded child keeps its postcode readable. ``national-hub
audit unseal`` opens a sealed entry for an investigation, audited first with its reason,
and the log still verifies.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from local_node.app import PACKAGE
from protocol import keys as protocol_keys
from server_common.accounts import Role
from server_common.accounts.config import AccountsConfig
from server_common.audit.service import AuditLog
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade
from tests.leaks import shows
from tests.local_node.test_practitioner_api import running
from tests.national_hub.test_review import child, state
from tests.processes import script
from tests.security.test_hub_shielding import (  # noqa: F401 (attack: a fixture)
    ESX,
    PURPOSE,
    TFW,
    Attack,
    attack,
    open_pair,
)
from tests.security.test_node_shielding import ESX as NODE_COUNCIL
from tests.security.test_node_shielding import Node, _call, _load, _search
from tests.server_common.accounts_helpers import bearer_headers

LILY = {"given_name": "Lily", "family_name": "Hart", "dob": "2016-02-09"}


async def entries(attack: Attack, **asked: str) -> list[dict[str, Any]]:  # noqa: F811
    status, body = await attack.call("GET", "/v1/audit/entries",
                                     await attack.headers(Role.AUDITOR), params=asked)
    assert status == 200, body
    found: list[dict[str, Any]] = json.loads(body)["entries"]
    return found


async def hub_cli(attack: Attack, *args: str,  # noqa: F811
                  key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``national-hub ARGS`` on the attacked hub's database, with its keys (or another
    accounts key file)."""
    config = attack.hub.config
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": str(config.database.url),
        "NATIONAL_HUB__HUB__KEY_FILE": str(config.hub.key_file),
        "NATIONAL_HUB__ACCOUNTS__SECRET_KEY_FILE":
            str((key_file or config.accounts.secret_key_file).resolve())}
    return await asyncio.to_thread(subprocess.run, [script("national-hub"), *args], env=env,
                                   text=True, capture_output=True, timeout=120)


async def test_an_auditor_sees_that_a_postcode_was_given_not_which(
        attack: Attack) -> None:  # noqa: F811
    await open_pair(attack)
    shielded = (await state(attack.hub))[(ESX, "A1")][0]
    searches = [(Role.INDEX_TEAM, ESX, {**LILY, "postcode": "BN2 3CD"}),
                (Role.PRACTITIONER, None, {**LILY, "postcode": "TF1 2AB"}),
                (Role.PRACTITIONER, None, {"given_name": "Oliver", "family_name": "Smith",
                                           "dob": "2014-02-05", "postcode": "RH1 1AA"})]
    found = []
    for role, council, query in searches:
        status, body = await attack.call("GET", "/v1/search",
                                         await attack.headers(role, council),
                                         params={"purpose": PURPOSE, **query})
        assert status == 200, body
        found.append(json.loads(body)["results"])
    # the first two answers hold the shielded child (and Telford's copy, in review with
    # it, so shielded too); the bystander's does not
    assert [{h["shielded"] for h in hits} for hits in found] == [{True}, {True}, {False}]
    assert all(shielded in {h["national_id"] for h in hits} for hits in found[:2])

    about_child = [e for e in await entries(attack, child_id=shielded)
                   if e["action"] == "search"]
    assert [e["parameters"]["given_name"] for e in about_child] == ["Lily", "Lily"]
    assert all(e["parameters"]["postcode"].startswith("sealed:") for e in about_child)
    status, page = await attack.call("GET", "/audit", await attack.headers(Role.AUDITOR),
                                     params={"child_id": shielded})
    assert status == 200 and "the answer held a shielded child" in page
    status, csv = await attack.call("GET", "/audit/export.csv",
                                    await attack.headers(Role.AUDITOR),
                                    params={"child_id": shielded})
    assert status == 200 and "sealed:" in csv
    told = json.dumps(about_child) + page + csv
    for secret in ("BN2 3CD", "BN2", "TF1 2AB", "TF1"):
        assert not shows(told, secret), secret
    # a search that found no shielded child keeps what it asked readable
    (bystander_search,) = [e for e in await entries(attack, user="test-practitioner-all")
                           if e["parameters"].get("given_name") == "Oliver"]
    assert bystander_search["parameters"]["postcode"] == "RH1 1AA"

    # an investigation opens one entry, and says why, in the log
    team_search = about_child[0]
    opened = await hub_cli(attack, "audit", "unseal", str(team_search["seq"]),
                     "--reason", "IG case 41: complaint about an index team search")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["parameters"] == {**LILY, "postcode": "BN2 3CD"}
    (unsealed,) = [e for e in await entries(attack, child_id=shielded)
                   if e["action"] == "unseal_parameters"]
    assert unsealed["who"].startswith("cli:")
    assert unsealed["purpose"] == "IG case 41: complaint about an index team search"
    assert unsealed["parameters"] == {"seq": team_search["seq"], "parameters": ["postcode"]}
    assert not shows(json.dumps(unsealed), "BN2")

    # what cannot be opened says why, and opens nothing
    for args, why in (([str(bystander_search["seq"]), "--reason", "x"], "no sealed parameter"),
                      (["999999", "--reason", "x"], "no audit entry 999999"),
                      ([str(team_search["seq"]), "--reason", " "], "say why"),
                      ([str(team_search["seq"])], "--reason")):
        refused = await hub_cli(attack, "audit", "unseal", *args)
        assert refused.returncode != 0 and why in refused.stderr, refused.stderr
    assert len([e for e in await entries(attack, child_id=shielded)
                if e["action"] == "unseal_parameters"]) == 1

    # the sealed entries are ordinary leaves: the log still verifies
    await AuditLog(attack.hub.pool, protocol_keys.load_private_key(
        attack.hub.config.hub.key_file)).checkpoint()
    verified = await hub_cli(attack, "audit", "verify")
    assert verified.returncode == 0, verified.stderr


async def test_an_entry_sealed_under_another_key_does_not_open(
        attack: Attack, tmp_path: Path) -> None:  # noqa: F811
    await open_pair(attack)
    status, body = await attack.call("GET", "/v1/search",
                                     await attack.headers(Role.INDEX_TEAM, ESX),
                                     params={"purpose": PURPOSE, **LILY,
                                             "postcode": "BN2 3CD"})
    assert status == 200, body
    shielded = (await state(attack.hub))[(ESX, "A1")][0]
    (search,) = [e for e in await entries(attack, child_id=shielded)
                 if e["action"] == "search"]
    refused = await hub_cli(attack, "audit", "unseal", str(search["seq"]), "--reason",
                            "a copy of the database elsewhere", key_file=tmp_path / "other.key")
    assert refused.returncode != 0 and "cannot be opened" in refused.stderr
    assert "BN2" not in refused.stdout + refused.stderr
    assert TFW not in refused.stdout  # nothing of the entry is printed


async def test_the_same_at_a_node(make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A practitioner at East Sussex's node searches for Leon Marsh with the postcode he
    was moved to; the council's auditor reads the entry without it, and ``local-node
    audit unseal`` opens it, audited."""
    url = await make_database()
    await upgrade(url, PACKAGE)
    async with running(url, tmp_path) as (base, pool):
        node = Node(base, pool, await bearer_headers(pool, "pat", Role.PRACTITIONER),
                    await bearer_headers(pool, "ian", Role.INDEX_TEAM, NODE_COUNCIL),
                    await bearer_headers(pool, "ola", Role.INDEX_TEAM, "E06000020"))
        await _searched_and_unsealed(node, url, tmp_path)


async def _searched_and_unsealed(node: Node, url: str, tmp_path: Path) -> None:
    copies = await _load(node, tmp_path)
    leon = copies["merged with"]
    hits = await _search(node, node.practitioner, given_name="Leon", family_name="Marsh",
                         dob=leon.dob, postcode="BN2 3CD")
    assert [(h["local_id"], h["shielded"]) for h in hits] == [(leon.local_id, True)]
    nobody = await _search(node, node.practitioner, given_name="Ava", dob="2015-05-05",
                           postcode="RH1 1AA")
    assert nobody == []

    auditor = await bearer_headers(node.pool, "aud", Role.AUDITOR)
    status, body = await _call(node, "GET", "/v1/audit/entries", auditor,
                               params={"child_id": leon.local_id})
    assert status == 200, body
    (search,) = [e for e in body["entries"] if e["action"] == "search"]
    assert search["parameters"]["given_name"] == "Leon"
    assert search["parameters"]["postcode"].startswith("sealed:")
    status, page = await _call(node, "GET", "/audit", auditor,
                               params={"child_id": leon.local_id})
    assert status == 200 and "the answer held a shielded child" in page
    assert not shows(json.dumps(body) + page, "BN2")
    # no shielded child in the answer: what was asked stays readable
    status, body = await _call(node, "GET", "/v1/audit/entries", auditor,
                               params={"user": "pat"})
    assert [e["parameters"]["postcode"] for e in body["entries"]
            if e["parameters"].get("given_name") == "Ava"] == ["RH1 1AA"]

    env = dict(os.environ) | {"LOCAL_NODE__DATABASE__URL": url,
                              "LOCAL_NODE__COUNCIL__CODE": NODE_COUNCIL,
                              "LOCAL_NODE__ACCOUNTS__SECRET_KEY_FILE":
                                  str(AccountsConfig().secret_key_file.resolve())}
    opened = await asyncio.to_thread(
        subprocess.run, [script("local-node"), "audit", "unseal", str(search["seq"]),
                         "--reason", "IG case 7"], env=env, text=True, capture_output=True,
        timeout=120)
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["parameters"]["postcode"] == "BN2 3CD"
    status, body = await _call(node, "GET", "/v1/audit/entries", auditor,
                               params={"child_id": leon.local_id})
    assert [(e["action"], e["purpose"]) for e in body["entries"]
            if e["action"] == "unseal_parameters"] == [("unseal_parameters", "IG case 7")]


async def test_a_upn_and_the_length_of_a_postcode_are_sealed_too(
        attack: Attack) -> None:  # noqa: F811
    """A UPN's first digits name the authority that issued it (``protocol.disclosure``
    withholds it from a shielded child's view): a search by it whose answer holds the
    shielded child keeps it sealed, like the postcode. And a sealed value's length says
    nothing of what it seals: "N1 1AA", "BN2 3CD" and "TN22 1AA" are one length sealed
    (a postcode's length narrows its district)."""
    upn = "H801200001001"
    await attack.councils[ESX].send(child("A1", family="Hart", postcode="BN2 3CD",
                                          address_line="9 Quiet Road", shielded=True,
                                          upn=upn))
    shielded = (await state(attack.hub))[(ESX, "A1")][0]
    asked = [{"upn": upn}, *({**LILY, "postcode": p} for p in ("N1 1AA", "BN2 3CD",
                                                               "TN22 1AA"))]
    for query in asked:
        status, body = await attack.call("GET", "/v1/search",
                                         await attack.headers(Role.PRACTITIONER),
                                         params={"purpose": PURPOSE, **query})
        assert status == 200, body
        assert [h["shielded"] for h in json.loads(body)["results"]] == [True], body
    about_child = [e for e in await entries(attack, child_id=shielded)
                   if e["action"] == "search"]
    assert len(about_child) == 4
    status, csv = await attack.call("GET", "/audit/export.csv",
                                    await attack.headers(Role.AUDITOR),
                                    params={"child_id": shielded})
    assert status == 200
    told = json.dumps(about_child) + csv
    assert not shows(told, upn) and not shows(told, "H801")
    (by_upn,) = [e for e in about_child if "upn" in e["parameters"]]
    assert by_upn["parameters"]["upn"].startswith("sealed:")
    sealed = {len(e["parameters"][name]) for e in about_child
              for name in ("postcode", "upn") if name in e["parameters"]}
    assert len(sealed) == 1, sealed

    opened = await hub_cli(attack, "audit", "unseal", str(by_upn["seq"]), "--reason",
                           "IG case 42")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["parameters"]["upn"] == upn
    for entry in about_child:
        if "postcode" in entry["parameters"]:
            opened = await hub_cli(attack, "audit", "unseal", str(entry["seq"]),
                                   "--reason", "IG case 42")
            assert opened.returncode == 0, opened.stderr
            assert json.loads(opened.stdout)["parameters"]["postcode"] in (
                "N1 1AA", "BN2 3CD", "TN22 1AA")
