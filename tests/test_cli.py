"""The console scripts, run as a council and an operator would run them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DatabaseFactory
from tests.processes import free_port, hub_process, script, wait_ready

ESX = "E10000011"


def run(args: list[str], env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, text=True, capture_output=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


Envs = tuple[dict[str, str], dict[str, str]]  # the hub's and a node's environment


@pytest.fixture
async def envs(make_database: DatabaseFactory, tmp_path: Path) -> Envs:
    hub_env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": await make_database(),
        "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "hub_key.pem"),
    }
    node_env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "node" / "key.pem"),
        "LOCAL_NODE__HUB__PUBLIC_KEY_FILE": str(tmp_path / "hub" / "hub_key.pub.pem"),
        "LOCAL_NODE__PUBLISHER__BATCH_SIZE": "2",
    }
    return hub_env, node_env


COMMANDS = [(tool, command) for tool, commands in {
    "national-hub": [[], ["serve"], ["db", "upgrade"], ["councils", "add"],
                     ["councils", "list"], ["councils", "set-contact"], ["keys", "revoke"],
                     ["links", "export"],
                     ["links", "resolve"], ["links", "drain"], ["status"],
                     ["model", "train"], ["model", "list"], ["retention", "run"],
                     ["audit", "unseal"]],
    "local-node": [[], ["serve"], ["db", "upgrade"], ["keys", "generate"], ["keys", "rotate"],
                   ["ingest"], ["publish"], ["reconcile"], ["retention", "run"],
                   ["index", "export"], ["status"], ["audit", "unseal"]],
}.items() for command in commands]


# One test a command: each starts a process (about 2 s on a quiet machine), and 27 in one
# test came near its timeout on a loaded one.
@pytest.mark.parametrize(("tool", "command"), COMMANDS,
                         ids=[" ".join([tool, *command]) for tool, command in COMMANDS])
def test_every_command_has_help(tool: str, command: list[str]) -> None:
    result = run([script(tool), *command, "--help"], dict(os.environ))
    assert "Usage:" in result.stdout


TOO_BIG = str(2**64)  # past what PostgreSQL's bigint holds
OUT_OF_RANGE = [
    ("national-hub", ["serve", "--port", "99999"], "--port"),
    ("national-hub", ["model", "train", "--seed", "-1"], "--seed"),
    ("national-hub", ["model", "train", "--seed", TOO_BIG], "--seed"),
    ("national-hub", ["model", "train", "--random-pairs", "0"], "--random-pairs"),
    ("national-hub", ["model", "train", "--iterations", "-3"], "--iterations"),
    ("national-hub", ["review", "list", "--limit", "-1"], "--limit"),
    ("national-hub", ["review", "link", TOO_BIG, "--for-council", ESX], "REVIEW_ID"),
    ("national-hub", ["audit", "unseal", TOO_BIG, "--reason", "a test"], "SEQ"),
    ("local-node", ["serve", "--port", "65536"], "--port"),
    ("local-node", ["review", "accept", TOO_BIG], "ITEM_ID"),
    ("local-node", ["review", "reject", "0"], "ITEM_ID"),
    ("local-node", ["model", "train", "--seed", "-1"], "--seed"),
    ("local-node", ["model", "train", "--candidate-pairs", "0"], "--candidate-pairs"),
]


# One process each, as above. Each of these was a traceback (asyncpg's int64 range,
# numpy's seed, the socket's port) or ran on with a nonsense number.
@pytest.mark.parametrize(("tool", "command", "named"), OUT_OF_RANGE,
                         ids=[" ".join([tool, *command]) for tool, command, _ in OUT_OF_RANGE])
def test_a_number_out_of_range_is_a_usage_error_naming_it(
        envs: Envs, tool: str, command: list[str], named: str) -> None:
    hub_env, node_env = envs
    result = run([script(tool), *command], hub_env if tool == "national-hub" else node_env,
                 ok=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"Invalid value for '{named}'" in result.stderr


def test_a_configured_port_out_of_range_is_named(envs: Envs) -> None:
    hub_env, _ = envs
    result = run([script("national-hub"), "serve"],
                 hub_env | {"NATIONAL_HUB__SERVER__PORT": "70000"}, ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "server.port must be a TCP port" in result.stderr


def test_serve_refuses_an_unmigrated_database(envs: Envs, tmp_path: Path) -> None:
    hub_env, _ = envs
    result = run([script("national-hub"), "serve", "--port", str(free_port())], hub_env,
                 ok=False)
    assert result.returncode != 0 and "db upgrade" in result.stderr


def test_bad_config_value_is_named(envs: Envs) -> None:
    hub_env, _ = envs
    result = run([script("national-hub"), "status"],
                 hub_env | {"NATIONAL_HUB__DATABASE__POOL_MAX": "many"}, ok=False)
    assert result.returncode != 0 and "database.pool_max" in result.stderr


def test_council_workflow_end_to_end(envs: Envs, tmp_path: Path) -> None:
    hub_env, node_env = envs
    hub_cli, node_cli = script("national-hub"), script("local-node")
    run([hub_cli, "db", "upgrade"], hub_env)
    run([node_cli, "db", "upgrade"], node_env)
    generated = run([node_cli, "keys", "generate"], node_env).stdout
    kid = generated.split()[1]
    assert run([node_cli, "keys", "generate"], node_env, ok=False).returncode != 0  # no clobber

    feed = tmp_path / "education.csv"
    feed.write_text(
        "source_ref,upn,given_name,family_name,dob,sex,postcode,school_urn,school_name\n"
        "E1,B801200005001,Amelia,Okafor,2015-03-14,F,BN1 1AA,114580,Hove Park\n"
        "E2,,,,2015-13-40,M,BN1 1AA,114580,Hove Park\n"  # a bad DOB and nothing else
        "E3,,Cara,Smith,2014-05-06,X,BN1 1AA,114580,Hove Park\n"
        "E4,,Dan,Jones,2013-07-08,M,BN2 2BB,114580,Hove Park\n", encoding="utf-8")
    result = run([node_cli, "ingest", "--feed", "education", str(feed)], node_env)
    assert "line 3, column dob" in result.stderr
    assert "line 4, column sex" in result.stderr
    assert "2 of 4 rows loaded" in result.stdout

    # a row whose UPN is already known updates that child rather than adding one
    update = tmp_path / "education2.csv"
    update.write_text("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
                      "X9,B801200005001,Amelia,Okafor,2015-03-14,F,BN3 3CC\n", encoding="utf-8")
    assert "0 children created, 1 updated" in run(
        [node_cli, "ingest", "--feed", "education", str(update)], node_env).stdout

    out = tmp_path / "index.csv"
    run([node_cli, "index", "export", "--out", str(out)], node_env)
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0]) == ["local_id", "source", "source_ref", "incomplete", "model_version"]
    by_ref = {r["source_ref"]: r["local_id"] for r in rows}
    assert set(by_ref) == {"E1", "E4", "X9"} and by_ref["E1"] == by_ref["X9"]

    # enrol at the hub, serve it, publish once
    pub = tmp_path / "node" / "key.pub.pem"
    assert kid in run([hub_cli, "councils", "add", ESX, "--name", "East Sussex",
                       "--public-key", str(pub)], hub_env).stdout
    port = free_port()
    hub = hub_process(hub_env["NATIONAL_HUB__DATABASE__URL"], port, tmp_path).start()
    follower: subprocess.Popen[str] | None = None
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        node_env["LOCAL_NODE__HUB__URL"] = f"http://127.0.0.1:{port}"
        # an operator's initial load: a bulk drain that follows the publishing, started
        # first, returns once the queue has stayed empty for its idle time
        follower = subprocess.Popen([hub_cli, "links", "drain", "--bulk", "--until-idle", "2"],
                                    env=hub_env, stdout=subprocess.PIPE, text=True)
        sent = run([node_cli, "publish", "--once"], node_env).stdout
        assert "records" in sent and "0 rejected" in sent
        status = run([node_cli, "status"], node_env).stdout
        assert "outbox depth     0" in status and "children         2" in status

        followed, _ = follower.communicate(timeout=60)
        assert follower.returncode == 0 and "the queue is empty" in followed
        # the hub resolves in the background; drain returns once nothing is queued
        assert "the queue is empty" in run([hub_cli, "links", "drain", "--bulk"],
                                           hub_env).stdout
        health = json.loads(run([hub_cli, "status", "--json"], hub_env).stdout)
        esx = next(c for c in health["councils"] if c["code"] == ESX)
        assert esx["hub_seq"] == esx["node_seq"]  # node head seq, from the heartbeat
        assert esx["records"] == 2 and esx["status"] == "GOOD", esx
        assert (esx["resolution_queue"], esx["resolution_wait_seconds"]) == (0, None)
        table = run([hub_cli, "status"], hub_env).stdout
        assert "resolving" in table.splitlines()[1]
        assert any(line.startswith(ESX) and "GOOD" in line for line in table.splitlines())

        links = tmp_path / "links.csv"
        run([hub_cli, "links", "export", "--out", str(links)], hub_env)
        link_rows = list(csv.DictReader(links.read_text().splitlines()))
        assert [list(link_rows[0])] == [["council", "local_id", "national_id", "status",
                                         "model_version"]]
        assert {r["status"] for r in link_rows} == {"single"} and len(link_rows) == 2

        listing = run([hub_cli, "councils", "list"], hub_env).stdout
        assert ESX in listing and kid in listing and "active" in listing
        assert "revoked" in run([hub_cli, "keys", "revoke", kid], hub_env).stdout

        # after revocation the node's next publish is refused, with the reason
        update.write_text("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
                          "X9,B801200005001,Amelia,Okafor,2015-03-14,F,BN4 4DD\n",
                          encoding="utf-8")
        run([node_cli, "ingest", "--feed", "education", str(update)], node_env)
        refused = run([node_cli, "publish", "--once"], node_env, ok=False)
        assert refused.returncode != 0 and "key_revoked" in refused.stderr
    finally:
        hub.kill()
        if follower is not None and follower.poll() is None:  # a failed step left it
            follower.kill()
            follower.wait()


def test_a_file_that_cannot_be_written_is_named_not_blamed_on_the_database(
        envs: Envs, tmp_path: Path) -> None:
    _, node_env = envs
    run([script("local-node"), "db", "upgrade"], node_env)
    out = tmp_path / "no such folder" / "index.csv"
    result = run([script("local-node"), "index", "export", "--out", str(out)], node_env,
                 ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{out}: No such file or directory" in result.stderr
    assert "database" not in result.stderr
