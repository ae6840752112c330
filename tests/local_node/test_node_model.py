"""The node's matching model trained from the council's own records (``local-node model
train`` / ``model list``), retrained after a bulk load, and named by every placement
and review item it decided (``index export``, ``review list``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

import synthetic
from tests.conftest import DatabaseFactory
from tests.processes import script

ESX = "E10000011"


def run(args: list[str], env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, text=True, capture_output=True, timeout=300)
    assert (result.returncode == 0) == ok, result.stderr + result.stdout
    return result


def exported(node: str, env: dict[str, str], out: Path) -> dict[str, dict[str, str]]:
    run([node, "index", "export", "--out", str(out)], env)
    return {r["source_ref"]: r for r in csv.DictReader(out.read_text().splitlines())}


@pytest.mark.timeout(300)  # nine commands, each its own process
async def test_bulk_load_trains_a_model_that_decides_and_is_named(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem"),
        "LOCAL_NODE__MATCHING__RETRAIN_ROWS": "150",
        "LOCAL_NODE__MATCHING__RANDOM_PAIRS": "20000",
    }
    node = script("local-node")
    run([node, "db", "upgrade"], env)
    assert "no stored model" in run([node, "model", "list"], env).stdout
    population = synthetic.generate_population([ESX], 400, seed=41)
    synthetic.write_feeds(population, tmp_path / "feeds")
    feeds = tmp_path / "feeds" / ESX

    # a bulk load into a node with no model: the default matches, then training
    first = run([node, "ingest", "--feed", "education", str(feeds / "education.csv")], env)
    assert "matched by model signpost-default-1" in first.stdout
    assert "retraining the matching model: a feed of" in first.stderr
    assert "stored model node-em-1-" in first.stdout
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    # one feed: its rows all carry UPNs, so its candidate pairs of two children are
    # vetoed (different UPNs) and EM has little to go by; u is measured all the same
    assert summary["random_pairs"] > 0 and summary["u_measured"]["dob"]
    assert set(summary["quality"]["trained"]) >= {"link", "review", "new", "rules"}
    assert summary["children"] > 0 and 0 < summary["prior"] < 1
    listed = run([node, "model", "list"], env).stdout.strip().splitlines()
    assert len(listed) == 1 and listed[0].startswith("node-em-1-")
    version = listed[0].split("\t")[0]

    # the next feed is matched by the trained model, and each placement says so; the
    # index did not grow by half, so no training is due
    second = run([node, "ingest", "--feed", "health", str(feeds / "health.csv")], env)
    assert f"matched by model {version}" in second.stdout
    assert "stored model" not in second.stdout and "due for training" not in second.stdout
    rows = exported(node, env, tmp_path / "index.csv")
    health = [r for r in rows.values() if r["source"] == "health"]
    assert {r["model_version"] for r in health} <= {"", version}
    assert any(r["model_version"] == version for r in health)
    # the education rows were placed by the default, before training
    assert {r["model_version"] for r in rows.values() if r["source"] == "education"} <= {
        "", "signpost-default-1"}

    # trained again by hand: a second version, from the first; ingest takes the newest
    trained = run([node, "model", "train", "--seed", "7"], env)
    assert "stored model node-em-2-" in trained.stdout
    again = json.loads(trained.stdout.strip().splitlines()[-1])
    assert again["started_from"] == version
    assert again["candidate_pairs"] > 0   # rows of two feeds: pairs an identifier allows
    assert len(run([node, "model", "list"], env).stdout.strip().splitlines()) == 2
    listed_json = json.loads(run([node, "model", "list", "--json"], env).stdout)
    assert listed_json[0]["version"] == version
    assert "parameters" in listed_json[1]

    # the same seed, from the same model, on the same rows: the same sample, the same model
    conn = await asyncpg.connect(env["LOCAL_NODE__DATABASE__URL"])
    try:
        await conn.execute("DELETE FROM match_models WHERE version = $1",
                           listed_json[1]["version"])
    finally:
        await conn.close()
    run([node, "model", "train", "--seed", "7"], env)
    redone = json.loads(run([node, "model", "list", "--json"], env).stdout)[1]
    assert ({**redone["parameters"], "version": ""}
            == {**listed_json[1]["parameters"], "version": ""})


async def test_a_bulk_load_with_no_train_prints_the_command(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "key.pem"),
        "LOCAL_NODE__MATCHING__RETRAIN_ROWS": "20",
    }
    node = script("local-node")
    run([node, "db", "upgrade"], env)
    health = tmp_path / "health.csv"
    health.write_text("source_ref,nhs_number,given_name,family_name,dob,sex,postcode\n" + "".join(
        f"H{i},,Child{i},Family{i % 7},2015-01-{1 + i % 28:02d},F,BN7 2AA\n"
        for i in range(30)), encoding="utf-8")
    result = run([node, "ingest", "--no-train", "--feed", "health", str(health)], env)
    assert ("the matching model is due for training (a feed of 30 rows into a node with no "
            "trained model): run 'local-node model train'") in result.stdout
    # too few rows to learn from: refused, and nothing stored
    refused = run([node, "model", "train"], env, ok=False)
    assert "training needs at least 100" in refused.stderr
    assert "no stored model" in run([node, "model", "list"], env).stdout
