"""Weights estimated from the hub's own records: ``national-hub model train`` stores a
versioned model (u by random sampling, m by EM), ``links resolve`` re-links with it,
and the explain endpoint and the review queue name the version. Precision and recall
on the generated population still meet docs/design.md §10."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from national_hub.handlers import appkeys as k
from national_hub.services.model_training import ModelTrainer
from national_hub.storage.resolution import ResolutionStore
from protocol.matching import DEFAULT_MODEL
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub
from tests.national_hub.test_resolution import COUNCILS, check, hub_links, send_population
from tests.processes import script
from tests.server_common.accounts_helpers import bearer_headers


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([script("national-hub"), *args], env=env, text=True,
                          capture_output=True, timeout=600, check=False)


VETOES = {"nhs_number_differs", "upn_differs", "twins"}  # hard rules training leaves out


async def test_trained_model_is_stored_versioned_and_used(make_database: DatabaseFactory,
                                                          tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "k.pem")}

    async def cli(*args: str) -> str:
        # in a thread: the hub serving in this process keeps its loop, so its background
        # tasks (the notice job, the resolver) finish the transactions the command waits on
        done = await asyncio.to_thread(run, env, *args)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    async with running_hub(url, tmp_path) as hub:
        assert "built-in default" in await cli("model", "list")
        sent = await send_population(hub, tmp_path / "feeds")

        trained = await asyncio.to_thread(run, env, "model", "train", "--seed", "7",
                                          "--random-pairs", "60000", "--candidate-pairs", "20000")
        assert trained.returncode == 0, trained.stderr
        out = trained.stdout
        (stored,) = json.loads(await cli("model", "list", "--json"))
        version = stored["version"]
        assert version in out and version.startswith("em-1-")
        summary = stored["summary"]
        assert summary["random_pairs"] == 60000 and 0 < summary["candidate_pairs"] <= 20000
        assert summary["started_from"] == DEFAULT_MODEL.version
        fields = stored["parameters"]["fields"]
        # Estimated, not copied: EM moved m and the sample measured u.
        assert fields["dob"]["EXACT"]["m"] != DEFAULT_MODEL.fields["dob"]["EXACT"][0]
        # (the sample's u of a level may land on the default's by nature: two random
        # children share a sex half the time; so ask that u was measured somewhere)
        measured = [(f, level) for f, levels in fields.items() for level, p in levels.items()
                    if p["u"] != DEFAULT_MODEL.fields.get(f, {}).get(level, (None, None))[1]]
        assert len(measured) > len(fields)
        assert "EXACT" in summary["u_measured"]["given_name"]
        # The prior by EM over every pair of the hub's records, never below the one the
        # hub measures on NHS numbers; the stored model carries it as a partner share
        # (times the records), and its own prior stays the default's.
        assert summary["prior_estimated"] >= summary["prior"] > DEFAULT_MODEL.prior
        assert stored["parameters"]["prior"] == DEFAULT_MODEL.prior
        assert stored["parameters"]["partner_share"] == pytest.approx(
            summary["prior_estimated"] * summary["records"])
        # A quality summary, printed and stored: how the sampled candidate pairs decide
        # under the starting model and the trained one, and each level's weight.
        quality = summary["quality"]
        assert quality["pairs"] == summary["candidate_pairs"] + sum(
            n for rule, n in quality["trained"]["rules"].items() if rule in VETOES)
        for model_name in ("start", "trained"):
            decided = quality[model_name]
            assert decided["link"] + decided["review"] + decided["new"] == quality["pairs"]
            assert decided["link"] > 0 and decided["new"] > 0
        assert quality["trained"]["rules"]["nhs_number_differs"] > 0
        if quality["all_candidate_pairs"]:
            per = quality["trained"]["review_per_10k_records"]
            assert per == round(quality["trained"]["review"] * 10_000 / len(sent.person), 1)
        assert quality["weights"]["dob"]["EXACT"] > 0 > quality["weights"]["dob"]["OTHER"]
        assert set(quality["weights"]["given_name"]) == set(fields["given_name"])
        assert f"link {quality['start']['link']:,} -> {quality['trained']['link']:,}" in (
            trained.stderr)

        before = tmp_path / "before.csv"
        await cli("links", "export", "--out", str(before))
        for council in COUNCILS:
            await cli("links", "resolve", council)
        links = await hub_links(hub)
        check(sent, links, f"re-resolved with {version}")
        # Each link names the model that decided it: the default before, the trained
        # one after (across councils when the deciding pair was of two councils).
        after = tmp_path / "after.csv"
        await cli("links", "export", "--out", str(after))
        for path, decided_by in ((before, DEFAULT_MODEL.version), (after, version)):
            rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
            assert rows and all(r["model_version"].startswith(decided_by) for r in rows)
            linked_across = [r for r in rows if r["model_version"].endswith("across-councils")]
            assert linked_across and all(r["status"] == "linked" for r in linked_across)

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

        # Training again starts from the trained model, but its floor is the measured
        # prior alone: the first training's EM estimate is not a floor the next cannot
        # go below.
        again = await asyncio.to_thread(run, env, "model", "train", "--seed", "8",
                                        "--random-pairs", "60000", "--candidate-pairs", "20000")
        assert again.returncode == 0, again.stderr
        second = json.loads(await cli("model", "list", "--json"))[-1]["summary"]
        assert second["started_from"] == version
        assert second["prior"] == pytest.approx(summary["prior"])
        assert summary["prior_estimated"] > summary["prior"]


async def test_training_refuses_an_empty_hub(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url}
    assert run(env, "db", "upgrade").returncode == 0
    done = run(env, "model", "train")
    assert done.returncode == 1 and "too_few_records" in done.stderr


async def test_the_same_seed_draws_the_same_sample_and_trains_the_same_model(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    """``model train --seed N`` twice on the same records: the same records and
    candidate pairs drawn, in an order fixed by the seed and each row's key (not by
    where PostgreSQL keeps the rows), and so the same model; another seed draws others."""
    async with running_hub(await make_database(), tmp_path) as hub:
        await send_population(hub, tmp_path / "feeds")
        store = ResolutionStore()
        async with hub.pool.acquire() as conn:
            drawn = [(r["council_code"], r["local_id"])
                     for r in await store.random_identities(conn, 100, seed=7)]
            again = [(r["council_code"], r["local_id"])
                     for r in await store.random_identities(conn, 100, seed=7)]
            other = [(r["council_code"], r["local_id"])
                     for r in await store.random_identities(conn, 100, seed=8)]
            every = [(r[0], r[1]) for r in await conn.fetch(
                "SELECT council_code, local_id FROM records WHERE record IS NOT NULL")]
            pairs, total = await store.random_candidate_pairs(conn, 200, 50, seed=7)
            assert (pairs, total) == await store.random_candidate_pairs(conn, 200, 50, seed=7)
            assert pairs != (await store.random_candidate_pairs(conn, 200, 50, seed=8))[0]
        assert drawn == again != other and len(drawn) == 100
        assert drawn == sorted(every, key=lambda rk: hashlib.md5(
            f"7:{rk[0]}:{rk[1]}".encode()).hexdigest())[:100]

        trainer = ModelTrainer(hub.pool)
        first = await trainer.train(seed=7, random_pairs=20_000, candidate_pairs=5_000)
        await hub.fetchval("DELETE FROM match_models")  # the second starts from the same model
        second = await trainer.train(seed=7, random_pairs=20_000, candidate_pairs=5_000)
        assert ({**first.parameters, "version": ""} == {**second.parameters, "version": ""})
