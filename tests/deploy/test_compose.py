"""deploy/compose.yaml and what it mounts. No Docker engine runs here, so: the file is
checked against the Compose specification's JSON schema (vendored, see data/README.md),
everything it references is checked to exist and agree (files, services, volumes,
databases, ports, tokens), Prometheus's config goes through promtool, and the one-shot
enrol script is run for real against PostgreSQL and the real console scripts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import yaml

from local_node.config import ENV_PREFIX as NODE_PREFIX
from local_node.config import NodeConfig
from national_hub.config import ENV_PREFIX as HUB_PREFIX
from national_hub.config import HubConfig
from protocol import keys
from server_common import config as config_module
from server_common import embedded_pg
from tests.conftest import DatabaseFactory
from tests.deploy.test_alert_rules import promtool
from tests.hub_harness import upgrade
from tests.processes import script

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCHEMA = Path(__file__).with_name("data") / "compose-spec.json"
COUNCIL = re.compile(r"^E\d{8}$")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume entry."""
    return [(m.split(":")[0], m.split(":")[1]) for m in service.get("volumes", [])]


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = [f"{e.json_path}: {e.message}"
              for e in jsonschema.Draft201909Validator(schema).iter_errors(compose())]
    assert errors == []


def test_everything_compose_references_exists_and_agrees() -> None:
    doc = compose()
    svc = services()
    assert {"postgres", "hub", "node-esx", "node-wsx", "prometheus"} <= set(svc)
    built = [name for name, service in svc.items() if "build" in service]
    assert built == ["hub"]  # the one image, built once; the others never pull it
    for name, service in svc.items():
        if service.get("image") == "signpost:local" and name != "hub":
            assert service["pull_policy"] == "never", name
    build = svc["hub"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == \
        DEPLOY / "Dockerfile"
    for name, service in svc.items():
        for source, _ in mounts(service):
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in doc["volumes"], f"{name} uses undeclared volume {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in svc, f"{name} depends on unknown service {dependency}"
        if service.get("image") == "signpost:local" or "build" in service:
            command = service.get("command", ["national-hub"])
            assert any(tool in " ".join(command) for tool in ("national-hub", "local-node",
                                                              "enrol.sh")), name

    # two councils, each on its own database that the postgres init script creates
    created = set(re.findall(r"CREATE DATABASE (\w+)",
                             (DEPLOY / "compose" / "initdb.sql").read_text(encoding="utf-8")))
    created.add(svc["postgres"]["environment"]["POSTGRES_DB"])
    assert svc["hub"]["environment"]["NATIONAL_HUB__DATABASE__URL"].rsplit("/", 1)[1] in created
    codes = set()
    for name in ("node-esx", "node-wsx"):
        env = svc[name]["environment"]
        code = env["LOCAL_NODE__COUNCIL__CODE"]
        assert COUNCIL.match(code)
        codes.add(code)
        assert env["LOCAL_NODE__DATABASE__URL"].endswith(f"/signpost_node_{code.lower()}")
        assert f"signpost_node_{code.lower()}" in created
        assert env["LOCAL_NODE__HUB__URL"] == "http://hub:8400"
        # the hub's public key, from the hub's volume, where the hub writes its key
        hub_key = Path(svc["hub"]["environment"]["NATIONAL_HUB__HUB__KEY_FILE"])
        assert ("hub-data", "/hub") in mounts(svc[name])
        assert Path(env["LOCAL_NODE__HUB__PUBLIC_KEY_FILE"]) == \
            Path("/hub") / keys.public_path_for(hub_key).relative_to("/var/lib/signpost")
        assert env["SIGNPOST_HEALTHCHECK_URL"].endswith(":8500/healthz")
    assert len(codes) == 2
    enrol_councils = svc["enrol"]["environment"]["COUNCILS"]
    assert {entry.split("=")[0] for entry in enrol_councils.split(";")} == codes


def test_prometheus_config_loads_the_alert_rules_and_scrapes_every_server(
        tmp_path: Path) -> None:
    svc = services()
    prom_mounts = dict(mounts(svc["prometheus"]))
    assert prom_mounts["./prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    config_path = Path(prom_mounts["./prometheus/prometheus.yml"])
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert [config_path.parent / r for r in config["rule_files"]] == \
        [Path("/etc/prometheus/alerts.yml")]

    token_dir = Path(prom_mounts["prometheus-tokens"])
    codes = {svc[n]["environment"]["LOCAL_NODE__COUNCIL__CODE"]: n
             for n in ("node-esx", "node-wsx")}
    expected = {"hub:8400": "hub.token"} | {f"{name}:8500": f"{code}.token"
                                            for code, name in codes.items()}
    scraped = {}
    for job in config["scrape_configs"]:
        token = Path(job["authorization"]["credentials_file"])
        assert token.parent == token_dir, f"{job['job_name']}: token not on the mounted volume"
        for target in (t for group in job["static_configs"] for t in group["targets"]):
            scraped[target] = token.name
    assert scraped == expected  # every server, each with the token enrol.sh writes for it

    # promtool checks the whole config and loads the rules; the tokens are made here.
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    for name in expected.values():
        (tmp_path / name).write_text("token\n", encoding="utf-8")
    (tmp_path / "prometheus.yml").write_text(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text().replace(
            str(token_dir), str(tmp_path)), encoding="utf-8")
    result = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


async def _create(base_url: str, name: str) -> str:
    conn = await asyncpg.connect(embedded_pg.with_database(base_url, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return embedded_pg.with_database(base_url, name)


async def _drop(base_url: str, name: str) -> None:
    conn = await asyncpg.connect(embedded_pg.with_database(base_url, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def test_enrol_script_enrols_councils_and_makes_tokens_once(
        make_database: DatabaseFactory, pg_base_url: str, tmp_path: Path) -> None:
    hub_db = await make_database()
    await upgrade(hub_db, "national_hub")
    stem = "t_" + secrets.token_hex(4)
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": hub_db,
        "NODE_DATABASE_URL_TEMPLATE": embedded_pg.with_database(pg_base_url,
                                                                f"{stem}_{{council}}"),
        "TOKEN_DIR": str(tmp_path / "tokens"),
        # as in the image, the console scripts are on the PATH
        "PATH": f"{Path(script('national-hub')).parent}{os.pathsep}{os.environ['PATH']}",
    }
    (tmp_path / "tokens").mkdir()
    councils = {"E10000011": "East Sussex", "E10000032": "West Sussex"}
    entries = []
    try:
        for code, name in councils.items():
            await upgrade(await _create(pg_base_url, f"{stem}_{code.lower()}"), "local_node")
            folder = tmp_path / code
            keys.write_private_key(keys.generate(), folder / "council_key.pem")
            entries.append(f"{code}={name}={folder}")
        env["COUNCILS"] = ";".join(entries)

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(["sh", str(DEPLOY / "compose" / "enrol.sh")], env=env,
                                  capture_output=True, text=True, timeout=300)

        first = await asyncio.to_thread(run)
        assert first.returncode == 0, first.stderr + first.stdout
        conn = await asyncpg.connect(hub_db)
        try:
            enrolled = {r["code"]: r["name"] for r in await conn.fetch(
                "SELECT code, name FROM councils")}
            council_keys = await conn.fetchval("SELECT count(*) FROM council_keys")
        finally:
            await conn.close()
        assert enrolled == councils and council_keys == 2
        tokens = {p.name: p.read_text().strip() for p in (tmp_path / "tokens").iterdir()}
        assert set(tokens) == {"hub.token", "E10000011.token", "E10000032.token"}
        assert all(re.fullmatch(r"[A-Za-z0-9_\-]{20,}", t) for t in tokens.values()), tokens
        assert len(set(tokens.values())) == 3

        again = await asyncio.to_thread(run)  # every `docker compose up` runs it again
        assert again.returncode == 0, again.stderr + again.stdout
        assert again.stdout.count("is enrolled already") == 2
        assert {p.name: p.read_text().strip()
                for p in (tmp_path / "tokens").iterdir()} == tokens
    finally:
        for code in councils:
            await _drop(pg_base_url, f"{stem}_{code.lower()}")


def test_every_setting_compose_sets_is_a_real_one() -> None:
    """A misspelt NATIONAL_HUB__… or LOCAL_NODE__… variable stops the server at start-up;
    catch it here instead."""
    checked = 0
    for service in services().values():
        env = service.get("environment", {})
        for prefix, cls in ((HUB_PREFIX, HubConfig), (NODE_PREFIX, NodeConfig)):
            settings = {k: str(v) for k, v in env.items() if k.startswith(prefix + "__")}
            if settings:
                config_module.load(cls, prefix, None, environ=settings)
                checked += len(settings)
    assert checked >= 8
