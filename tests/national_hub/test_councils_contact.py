"""The council registry holds how to reach each index team (docs/pages.md): set by
``national-hub councils set-contact`` (checked, audited; an option left out keeps its
value, an empty one clears it) and shown by ``councils list``; run as an operator would."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

from national_hub.cli import cli_actor
from protocol import keys
from server_common.audit.service import AuditLog
from tests.conftest import DatabaseFactory
from tests.processes import script
from tests.test_cli import run

ESX = "E10000011"


async def test_set_contact_and_list(make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub_key.pem")}
    hub = script("national-hub")
    private = tmp_path / "council.pem"
    keys.write_private_key(keys.generate(), private)
    run([hub, "db", "upgrade"], env)
    run([hub, "councils", "add", ESX, "--name", "East Sussex", "--public-key",
         str(keys.public_path_for(private))], env)
    listing = run([hub, "councils", "list"], env).stdout
    assert "index team no contact set" in listing

    out = run([hub, "councils", "set-contact", ESX, "--email", "index.team@esx.gov.uk",
               "--phone", "01273 481000"], env).stdout
    assert out.strip() == (f"index team of {ESX} (East Sussex): 01273 481000 · "
                           "index.team@esx.gov.uk")
    assert "01273 481000 · index.team@esx.gov.uk" in run([hub, "councils", "list"], env).stdout
    # an option left out is kept; an empty one clears
    run([hub, "councils", "set-contact", ESX, "--phone", ""], env)
    assert "index team index.team@esx.gov.uk" in run([hub, "councils", "list"], env).stdout

    for args, said in (([ESX, "--email", "not an address"], "--email: not an email address"),
                       ([ESX, "--phone", "call me"], "--phone: not a phone number"),
                       (["E99999999", "--phone", "01273 481000"], "unknown_council"),
                       ([ESX], "give --email, --phone or both")):
        refused = run([hub, "councils", "set-contact", *args], env, ok=False)
        assert refused.returncode != 0 and said in refused.stderr, refused.stderr
    assert "index team index.team@esx.gov.uk" in run([hub, "councils", "list"], env).stdout

    async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
        entries = [r.entry for r in await AuditLog(pool, None).entries_by_user(
            cli_actor().who)]
    changes = [e.parameters for e in entries if e.action == "council.contact"]
    assert changes == [
        {"council": ESX, "email": "index.team@esx.gov.uk", "phone": "01273 481000"},
        {"council": ESX, "email": "index.team@esx.gov.uk", "phone": ""}]
