"""deploy/prometheus/alerts.yml: Prometheus's own promtool checks the rules and runs their
unit tests (alerts_test.yml), and every metric and label the rules use is one that the
hub's and a node's /metrics really export (promtool cannot know that)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestServer

from local_node.app import PACKAGE as NODE_PACKAGE
from local_node.app import create_app as create_node_app
from national_hub.services.councils import CouncilService
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import encoding, keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.federation import node_config
from tests.hub_harness import running_hub, upgrade
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.scrape import Scrape, scrape
from tests.server_common.accounts_helpers import bearer_headers

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
ESX = "E10000011"
METRIC = re.compile(r"\bsignpost_[a-z0-9_]+\b")
OVER_COUNTER = re.compile(r"\b(?:rate|irate|increase)\(\s*(signpost_[a-z0-9_]+)")
BY = re.compile(r"\bby\s*\(([^)]*)\)")
TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
ADDED_BY_PROMETHEUS = {"instance", "job"}


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed "
                    "(apt-get install --no-install-recommends prometheus)")
    return found


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    tool = promtool()
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run([tool, *args], cwd=RULES_DIR, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_every_rule_is_complete() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert METRIC.search(rule["expr"]), f"{rule['alert']} uses none of our metrics"


async def _scrape_hub_and_node(make_database: DatabaseFactory,
                               tmp_path: Path) -> tuple[Scrape, Scrape]:
    """A hub that applied, refused and heard from a council with an expiring key, and a
    node failing to reach its hub, so every family has samples (and labels) to check."""
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await CouncilService(hub.pool, CouncilStore(), HeartbeatStore()).enrol(
            ESX, "East Sussex", keys.public_pem(key.public_key()),
            not_after=datetime.now(UTC) + timedelta(days=100))
        esx = Client(hub, ESX, key)
        body, h1 = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1)], key)
        assert (await esx.send(body))[0] == 200
        gap, _ = batch_bytes(ESX, 30, h1, [UpsertOp.of(record("L2"), 1)], key)
        assert (await esx.send(gap))[0] == 409
        assert (await esx.send(encoding.pack({"head_seq": 1, "outbox_depth": 0}),
                               tail="heartbeats"))[0] == 200
        hub_metrics = await scrape(hub.url, await hub.operator())

        url = await make_database()
        await upgrade(url, NODE_PACKAGE)
        config = node_config(ESX, url, tmp_path / "node", hub, hub_url="http://127.0.0.1:9",
                             interval="0.05s", max_backoff="0.05s")
        keys.write_private_key(keys.generate(), config.key_file)
        server = TestServer(create_node_app(config), host="127.0.0.1")
        await server.start_server()
        prometheus = await bearer_headers(url, "prom", Role.OPERATOR)
        try:
            for _ in range(200):
                node_metrics = await scrape(str(server.make_url("")).rstrip("/"), prometheus)
                if node_metrics.series("signpost_node_publish_errors_total"):
                    break
                await asyncio.sleep(0.05)
        finally:
            await server.close()
    return hub_metrics, node_metrics


async def test_rules_use_only_metrics_and_labels_the_code_exports(make_database: DatabaseFactory,
                                                                  tmp_path: Path) -> None:
    hub_metrics, node_metrics = await _scrape_hub_and_node(make_database, tmp_path)
    exported = hub_metrics.names() | node_metrics.names()
    kinds = hub_metrics.families | node_metrics.families
    labels: dict[str, set[str]] = {}
    for m in (hub_metrics, node_metrics):
        for name, series in m.samples.items():
            for lbls, _ in series:
                labels.setdefault(name, set()).update(lbls)

    for rule in rules():
        alert, expr = rule["alert"], rule["expr"]
        used = set(METRIC.findall(expr))
        assert used <= exported, f"{alert} uses metrics no server exports: {used - exported}"
        for name in OVER_COUNTER.findall(expr):
            family = name.removesuffix("_total")
            assert name.endswith("_total") and kinds.get(family) == "counter", \
                f"{alert}: rate/increase over {name}, which is not a counter"
        have = set().union(*(labels.get(name, set()) for name in used)) | ADDED_BY_PROMETHEUS
        grouped = {g.strip() for clause in BY.findall(expr) for g in clause.split(",")
                   if g.strip()}
        assert grouped <= have, f"{alert} groups by labels the metrics lack: {grouped - have}"
        available = grouped or have  # an aggregation keeps only its ``by`` labels
        templated = {lbl for text in rule["annotations"].values()
                     for lbl in TEMPLATE_LABEL.findall(text)}
        assert templated <= available, \
            f"{alert} annotations use labels the alert will not have: {templated - available}"
