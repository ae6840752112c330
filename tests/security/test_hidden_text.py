"""A name cannot be made to display as another (protocol.hidden_text): a right-to-left
override, a directional isolate or mark, a zero-width space, a C1 control or a line
separator in a record's text is kept out where the record enters — the hub's batch
intake rejects that record alone (``invalid_record``, naming the field), a node's feed
loading removes it and loads the row with a warning — and a page shows any already
stored as U+FFFD. The zero-width joiner and non-joiner, which spell names in Persian and the
Indic scripts, pass."""

from __future__ import annotations

import doctest
import importlib
import re
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from local_node.app import PACKAGE, ingest_service
from local_node.feeds import parse_feed
from protocol import encoding
from protocol.batch import GENESIS, Receipt, UpsertOp
from protocol.record_codec import decode_record, fast_record
from protocol.records import ChildRecord, Involvement
from protocol.signing import Envelope
from server_common.accounts.config import AccountsConfig
from server_common.accounts.principal import Role
from server_common.accounts.service import AccountService
from tests.browser import check_page
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, upgrade
from tests.local_node.test_practitioner_api import running
from tests.local_node.test_search_page import FEED
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.security.surface import hub_with_child
from tests.server_common.accounts_helpers import (
    PASSWORD,
    browser_session,
    code_at,
    csrf_in,
    login,
)

ESX = "E10000011"
# "Ahmed" then "demhA" overridden right to left: it displays as "AhmedAhmed"
OVERRIDE = "Ahmed\u202edemhA"
PERSIAN = "\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627"  # Mohammad-Reza, with a ZWNJ


@pytest.mark.parametrize("module", ["protocol.hidden_text", "protocol.records",
                                    "server_common.pages", "server_common.csv_cells"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


async def test_the_hub_rejects_each_disguised_record_alone(hub: Hub, esx: Client) -> None:
    school = Involvement(service_type="school", organisation_code="114580")
    bad = {
        "L1": replace(record("L1", nhs=None), family_name=OVERRIDE),
        "L2": replace(record("L2", nhs=None), given_name="Ame\u2066lia\u2069"),
        "L3": replace(record("L3", nhs=None), other_given_names="Jo\u200bhn"),
        "L4": replace(record("L4", nhs=None), address_line="1 Sea Lane\u0085Hove"),
        "L5": replace(record("L5", nhs=None), former_family_names=("Smith", "Jo\u200fnes")),
        "L6": replace(record("L6", nhs=None), involvements=(
            school, replace(school, professional_name="Dr \u202bAli"))),
        "L7": replace(record("L7", nhs=None), parent_carer_name="Mum\u2028Dad"),
    }
    good = {"G1": record("G1"),
            "G2": replace(record("G2", nhs=None), given_name=PERSIAN)}
    ops = [UpsertOp.of(r, 1) for r in (*bad.values(), *good.values())]
    body, _ = batch_bytes(ESX, 1, GENESIS, ops, esx.key)
    status, data, _ = await esx.send(body)
    assert status == 200, data
    results = {r.local_id: r for r in Receipt.decode(Envelope.decode(data).payload).results}
    fields = {"L1": "family_name", "L2": "given_name", "L3": "other_given_names",
              "L4": "address_line", "L5": "former_family_names[1]",
              "L6": "involvements[1].professional_name", "L7": "parent_carer_name"}
    for local_id, field in fields.items():
        result = results[local_id]
        assert (result.status, result.code) == ("rejected", "invalid_record"), local_id
        assert (result.message or "").startswith(f"{field}: holds U+"), result.message
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in (results["L1"].message or "")
    assert [results[g].status for g in good] == ["applied", "applied"]
    assert set(await hub.digests(ESX)) == set(good)


@pytest.mark.parametrize("name", [OVERRIDE, "Ame\u2067lia", "Ame\u00adlia", PERSIAN])
def test_both_decoders_read_a_stored_name_alike(name: str) -> None:
    """The record's own check still reads such a record (a record the hub stored before
    intake refused them), and the compiled decoder reads it as the reference does."""
    data = encoding.pack(ChildRecord(local_id="A1", given_name=name).to_wire())
    reference = ChildRecord.from_wire(encoding.unpack(data))
    assert fast_record(data) == reference == decode_record(data)
    assert reference.given_name == name


def test_a_feed_row_with_a_disguised_name_loads_without_the_hidden_character(
        tmp_path: Path) -> None:
    """Refused, the row's child would be missing from the index for a zero-width space
    pasted into a name; loaded with it, a name could read as another. The character is
    removed and the row loads, with a warning naming the line, column and character."""
    header = ("source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
              "gp_ods_code,gp_name")
    rows = [f"H1,,Amelia,{OVERRIDE},2015-03-14,F,1 Sea Lane,BN1 1AA,G81001,Surgery",
            "H2,,Ben,Okafor,2016-01-02,M,1 Sea Lane,BN1 1AA,G81001,Sea\u2066 Lane Surgery",
            "H3,,Zo\u200be,Smith,2016-01-02,F,,,,",
            f"H4,,{PERSIAN},Karimi,2016-01-02,M,,,,",
            "H5,,Amelia,Okafor,2015-03-14,F,1 Sea Lane,BN1 1AA,G81001,Sea Lane Surgery"]
    path = tmp_path / "health.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    result = parse_feed("health", path)
    assert result.errors == []
    assert [(w.line, w.column) for w in result.warnings] == [
        (2, "family_name"), (3, "gp_name"), (4, "given_name")]
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in result.warnings[0].reason
    assert "U+200B ZERO WIDTH SPACE" in result.warnings[2].reason
    assert all("removed" in w.reason for w in result.warnings)
    assert [(r.source_ref, r.identity.given_name, r.identity.family_name)
            for r in result.rows] == [
        ("H1", "Amelia", OVERRIDE.replace("\u202e", "")), ("H2", "Ben", "Okafor"),
        ("H3", "Zoe", "Smith"), ("H4", PERSIAN, "Karimi"), ("H5", "Amelia", "Okafor")]
    (gp,) = [r.involvement for r in result.rows if r.source_ref == "H2"]
    assert gp is not None and gp.organisation_name == "Sea Lane Surgery"


async def test_a_stored_disguised_name_shows_as_a_replacement_character(
        make_database: DatabaseFactory, tmp_path: Path, browser: Browser) -> None:
    """A node that loaded a name before feed loading removed such characters still
    holds it: its pages show each as U+FFFD, in the results and on the child's page."""
    url = await make_database()
    await upgrade(url, PACKAGE)
    feed = tmp_path / "health.csv"
    feed.write_text(FEED, encoding="utf-8")
    async with running(url, tmp_path) as (base, pool):
        assert (await ingest_service(pool).ingest_file("health", feed)).errors == []
        async with pool.acquire() as conn:
            await conn.execute("UPDATE children SET family_name = $1", "Reilly\u202eyellieR")
            await conn.execute("UPDATE involvements SET professional_name = $1",
                               "Dr \u2067Ali\u2069")
        user = await AccountService(pool, AccountsConfig()).add_user(
            "nadia", Role.PRACTITIONER, organisation="Hove Park School", password=PASSWORD)
        async with browser_session() as http:
            await login(http, base, "nadia", PASSWORD, code_at(user.totp_secret))
            token = csrf_in(await (await http.get(f"{base}/search")).text())
            async with http.post(f"{base}/search", data={
                    "given_name": "Isabella", "dob-day": "14/03/2015", "purpose": "s17",
                    "csrf_token": token}) as resp:
                results = await resp.text()
            assert "1 child found" in results
            local_id = re.search(r'data-local-id="(L\d+)"', results)
            assert local_id is not None
            async with http.get(f"{base}/children/{local_id.group(1)}",
                                params={"purpose": "s17"}) as resp:
                assert resp.status == 200
                child = await resp.text()
        for page in (results, child):
            assert "\u202e" not in page and "Reilly\ufffdyellieR" in page
        assert "\u2067" not in child and "Dr \ufffdAli\ufffd" in child
        # and as a browser draws it: the heading's text holds no override
        other = await AccountService(pool, AccountsConfig()).add_user(
            "nora", Role.PRACTITIONER, organisation="Hove Park School", password=PASSWORD)
        tab = await browser.new_page()
        await tab.goto(f"{base}/children/{local_id.group(1)}?purpose=s17")
        await tab.fill("#name", "nora")
        await tab.fill("#password", PASSWORD)
        await tab.fill("#totp", code_at(other.totp_secret))
        await tab.click("button[type=submit]")
        await tab.get_by_label("Another reason", exact=True).check()  # the way back
        await tab.fill("#purpose_other", "Attendance concern")     # after signing in
        await tab.locator("main button[type=submit]").click()   # carries no purpose
        await expect(tab.locator("h1")).to_have_text("Isabella Reilly\ufffdyellieR")
        await check_page(tab, "node-child-hidden-characters")


async def test_a_disguised_search_reads_plainly_in_the_audit_export(hub: Hub) -> None:
    """A practitioner's search is data too: the auditor's CSV (a file for people, opened
    in a spreadsheet) shows its hidden characters as U+FFFD, as the audit page does."""
    practitioner = await hub.as_role(Role.PRACTITIONER)
    async with aiohttp.ClientSession() as http:
        async with http.get(hub.url + "/v1/search", headers=practitioner, params={
                "given_name": OVERRIDE, "dob": "2015-03-14", "purpose": "s17"}) as resp:
            assert resp.status == 200, await resp.text()
        auditor = await hub.as_role(Role.AUDITOR)
        async with http.get(hub.url + "/audit/export.csv", headers=auditor,
                            params={"user": "test-practitioner-all"}) as resp:
            assert resp.status == 200
            export = await resp.text()
        async with http.get(hub.url + "/audit", headers={**auditor, "Accept": "text/html"},
                            params={"user": "test-practitioner-all"}) as resp:
            assert resp.status == 200
            page = await resp.text()
    for shown in (export, page):
        assert "\u202e" not in shown and "Ahmed\ufffddemhA" in shown


async def test_a_pasted_soft_hyphen_searches_the_same_on_the_way_back(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """A name pasted from another system with a soft hyphen finds the child (the matcher
    drops it); the page writes the search back into its forms without it, not as the
    U+FFFD a page shows for it, so the way back to the results searches the same."""
    async with hub_with_child(await make_database(), tmp_path) as (hub, _, _child):
        headers = {**await hub.as_role(Role.PRACTITIONER), "Accept": "text/html"}
        form = {"given_name": "Ame\u00adlia", "family_name": "Oka\u200bfor",
                "dob-day": "14", "dob-month": "3", "dob-year": "2015", "purpose": "s17"}
        async with aiohttp.ClientSession() as http, http.post(
                hub.url + "/", data=form, headers=headers) as resp:
            page = await resp.text()
        assert resp.status == 200 and "1 child found" in page
        assert "\ufffd" not in page
        carried = dict(re.findall(r'name="(given_name|family_name)" value="([^"]*)"', page))
        assert carried == {"given_name": "Amelia", "family_name": "Okafor"}
