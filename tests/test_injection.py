"""SQL- and script-injection attempts in every text field of the feeds, of search and of
the pages come back harmless (docs/security.md "The attack surface"): a feed row
carrying them loads as plain text, travels to the hub as data, and every page shows it
escaped — a real browser opening those pages runs no injected script; searches carrying
them are answered (or refused with a stable 4xx), never 5xx, and no table is touched."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from local_node.app import create_app as create_node_app
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import running_hub, running_node
from tests.server_common.accounts_helpers import sign_in

ESX = "E10000011"
SQL = ["Robert'); DROP TABLE records;--", "x' OR '1'='1", "1; DELETE FROM audit_log",
       "' UNION SELECT password_hash FROM users--", "%' OR national_id LIKE '%"]
SCRIPT = ['<script>window.injected=1</script>', '"><img src=x onerror="window.injected=1">',
          "javascript:window.injected=1", "</td></tr><script>window.injected=1</script>"]
ALL = SQL + SCRIPT
NHS = "9434765919"


def services_feed() -> str:
    """One child whose every free-text field carries an injection attempt."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["source_ref", "nhs_number", "given_name", "family_name", "dob", "sex",
                     "postcode", "service_type", "service_name", "professional_name",
                     "professional_role", "professional_phone", "professional_email",
                     "lead_professional", "caf_done", "start_date"])
    writer.writerow(["S1", NHS, "Amelia", SCRIPT[0], "2015-03-14", "F", "BN1 1AA",
                     "early_help", SCRIPT[1], SQL[0], SCRIPT[3], "01273 333333",
                     "a@example.org", "Y", "N", "2023-01-10"])
    return out.getvalue()


async def table_counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}"))
            for t in ("records", "national_children", "users", "audit_log")}


async def test_injection_attempts_are_only_data(make_database: DatabaseFactory, tmp_path: Path,
                                                browser: Browser) -> None:
    async with running_hub(await make_database(), tmp_path) as hub, \
            running_node(ESX, await make_database(), tmp_path, hub) as node:
        feed = tmp_path / "services.csv"
        feed.write_text(services_feed(), encoding="utf-8")
        report = await node.ingest("services", feed)
        assert report.errors == [] and report.rows_loaded == 1
        assert (await node.publish()).records_rejected == 0
        await hub.resolved()
        national_id = await hub.fetchval("SELECT national_id FROM records")
        assert await hub.fetchval("SELECT family_name FROM records") == SCRIPT[0]  # as data

        practitioner = await hub.as_role(Role.PRACTITIONER)
        before = await table_counts(hub.pool)
        async with aiohttp.ClientSession(hub.url, headers=practitioner) as http:
            for field in ("given_name", "family_name", "postcode", "nhs_number", "upn",
                          "dob", "purpose"):
                for attempt in ALL:
                    params = {"given_name": "Amelia", "dob": "2015-03-14",
                              "purpose": "s47 enquiry", field: attempt}
                    for path in ("/v1/search", "/"):
                        async with http.get(path, params=params) as resp:
                            body = await resp.text()
                            assert resp.status in (200, 400), (field, attempt, resp.status)
                            if path == "/":  # the page echoes the query: escaped
                                assert attempt not in body or "<" not in attempt, attempt
            async with http.get("/v1/search", params={
                    "family_name": SCRIPT[0], "dob": "2015-03-14",
                    "purpose": "s47 enquiry"}) as resp:
                found = (await resp.json())["results"]
                assert [r["national_id"] for r in found] == [national_id]
                assert found[0]["family_name"] == SCRIPT[0]  # JSON carries it as text
        after = await table_counts(hub.pool)
        assert after["records"] == before["records"] and after["users"] == before["users"]
        assert after["national_children"] == before["national_children"]
        assert after["audit_log"] > before["audit_log"]  # each look audited, nothing removed

        # the pages at hub and node, in a real browser: text on screen, no script run
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_in(page, hub.url, f"/children/{national_id}?purpose=check", "pia",
                      Role.PRACTITIONER, hub.pool)
        assert SCRIPT[0] in await page.inner_text("body")
        assert SQL[0] in await page.inner_text("body")
        await page.goto(f"{hub.url}/?given_name=Amelia&dob=2015-03-14&purpose=check"
                        f"&family_name={SCRIPT[1]}")
        assert await page.evaluate("window.injected") is None
        local_id = await node.fetchval("SELECT local_id FROM children")
        node_server = TestServer(create_node_app(node.config, publish=False), host="127.0.0.1")
        await node_server.start_server()
        base = str(node_server.make_url("")).rstrip("/")
        node_page = await browser.new_page()
        node_page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_in(node_page, base, f"/children/{local_id}?purpose=check", "nia",
                      Role.PRACTITIONER, node.pool)
        assert SCRIPT[0] in await node_page.inner_text("body")
        assert await node_page.evaluate("window.injected") is None
        assert await page.evaluate("window.injected") is None and dialogs == []
        await node_server.close()

