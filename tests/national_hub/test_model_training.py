"""Weights estimated from the hub's own records: ``national-hub model train`` stores a
versioned model (u by random sampling, m by EM), ``links resolve`` re-links with it,
and the explain endpoint and the review queue name the version. Precision and recall
on the generated population still meet DESIGN §10."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import aiohttp

from national_hub.handlers import appkeys as k
from protocol.matching import DEFAULT_MODEL
from tests.hub_harness import running_hub
from tests.national_hub.test_resolution import COUNCILS, check, hub_links, send_population
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("national-hub"), *args], env=env, text=True,
                          capture_output=True, timeout=600, check=False)


async def test_trained_model_is_stored_versioned_and_used(make_database,
                                                          tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB_DATABASE_URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "k.pem")}

    def cli(*args: str) -> str:
        done = run(env, *args)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    async with running_hub(url, tmp_path) as hub:
        assert "built-in default" in cli("model", "list")
        sent = await send_population(hub, tmp_path / "feeds")

        out = cli("model", "train", "--seed", "7", "--random-pairs", "60000",
                  "--candidate-pairs", "20000")
        (stored,) = json.loads(cli("model", "list", "--json"))
        version = stored["version"]
        assert version in out and version.startswith("em-1-")
        summary = stored["summary"]
        assert summary["random_pairs"] == 60000 and 0 < summary["candidate_pairs"] <= 20000
        assert summary["started_from"] == DEFAULT_MODEL.version
        fields = stored["parameters"]["fields"]
        # Estimated, not copied: EM moved m and the sample measured u.
        assert fields["dob"]["EXACT"]["m"] != DEFAULT_MODEL.fields["dob"]["EXACT"][0]
        assert fields["sex"]["AGREE"]["u"] != DEFAULT_MODEL.fields["sex"]["AGREE"][1]
        assert "EXACT" in summary["u_measured"]["given_name"]

        for council in COUNCILS:
            cli("links", "resolve", council)
        links = await hub_links(hub)
        check(sent, links, f"re-resolved with {version}")

        async with hub.pool.acquire() as conn:
            rows = await conn.fetch("SELECT explanation::text AS e FROM review_queue"
                                    " WHERE status = 'open'")
            linked = await conn.fetchrow("SELECT council_code, local_id FROM records"
                                         " WHERE link_status = 'linked' LIMIT 1")
        assert rows, "some grey-zone pairs are queued"
        assert all(json.loads(r["e"])["model_version"].startswith(version) for r in rows)

        operator = await bearer_headers(hub.pool, "olu", "operator")
        async with aiohttp.ClientSession() as http, http.get(
                f"{hub.url}/v1/links/{linked[0]}/{linked[1]}/explain",
                headers=operator) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["partners"] and all(p["model_version"].startswith(version)
                                        for p in body["partners"])
        # The serving hub's own resolver took the stored model up too.
        assert hub.server.app[k.REVIEW].linker.base.version == version


async def test_training_refuses_an_empty_hub(make_database, tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB_DATABASE_URL": url}
    assert run(env, "db", "upgrade").returncode == 0
    done = run(env, "model", "train")
    assert done.returncode == 1 and "too_few_records" in done.stderr
