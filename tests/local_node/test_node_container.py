"""One place builds a node's services (local_node.services.container): the running app
takes its services from one container, whose stores they share, and every ``local-node``
command that touches the database builds its services through it."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

import local_node.app
from local_node.app import PACKAGE, create_app
from local_node.cli import main as node_cli
from local_node.handlers.appkeys import SEARCH, SERVICES
from local_node.services import container
from local_node.services.container import NodeServices
from protocol import keys
from server_common.refusals import AUDIT_LOG
from tests.conftest import DatabaseFactory
from tests.federation import node_config
from tests.hub_harness import upgrade
from tests.local_node.test_practitioner_api import ESX, FEED


async def test_create_app_takes_its_services_from_one_container(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    await upgrade(url, PACKAGE)
    config = node_config(ESX, url, tmp_path, None)
    keys.write_private_key(keys.generate(), config.key_file)
    server = TestServer(create_app(config, publish=False), host="127.0.0.1")
    await server.start_server()
    try:
        services = server.app[SERVICES]
        assert isinstance(services, NodeServices) and services.signing is not None
        assert server.app[SEARCH] is services.search
        assert server.app[AUDIT_LOG] is services.audit
        stores = services.stores
        assert (services.search.children is services.ingest.children
                is services.review.children is services.retention.children
                is stores.children)
        assert services.search.shields is stores.shields
        assert services.ingest.projector is services.review.projector
        # and it works: a feed ingested through it is searchable through the app's search
        feed = tmp_path / "services.csv"
        feed.write_text(FEED, encoding="utf-8")
        report = await services.ingest.ingest_file("services", feed)
        assert report.rows_loaded > 0 and not report.errors
    finally:
        await server.close()


def _constructed_in(source: Path) -> list[str]:
    built = {name for name, obj in vars(container).items()
             if inspect.isclass(obj) and obj.__module__.startswith(
                 ("local_node.services.", "local_node.storage."))
             and obj.__module__ != container.__name__}
    assert {"IngestService", "ChildStore", "Witness"} <= built
    return [f"{source.name}:{node.lineno}: {node.func.id}(…)"
            for node in ast.walk(ast.parse(source.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in built]


@pytest.mark.parametrize("module", ["local_node.cli", "local_node.audit_cli",
                                    "local_node.app"])
def test_no_service_or_store_is_built_outside_the_container(module: str) -> None:
    spec = __import__(module, fromlist=["_"])
    assert spec.__file__ is not None
    calls = _constructed_in(Path(spec.__file__))
    assert not calls, "\n".join(calls)


@pytest.fixture
async def node_env(make_database: DatabaseFactory, tmp_path: Path
                   ) -> AsyncIterator[dict[str, str]]:
    # The CLI runs in this process and sets up its own logging: put the root logger back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(),
        "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "node" / "council_key.pem"),
    }
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[NodeServices]]:
    """Every container the commands build, in order (the real class, only counted)."""
    seen: list[NodeServices] = []

    class Counted(NodeServices):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(local_node.app, "NodeServices", Counted)
    yield seen


def test_every_command_gets_its_services_from_the_container(
        node_env: dict[str, str], built: list[NodeServices], tmp_path: Path) -> None:
    feed = tmp_path / "services.csv"
    feed.write_text(FEED, encoding="utf-8")
    runner = CliRunner()
    for args in (["db", "upgrade"], ["keys", "generate"]):
        assert runner.invoke(node_cli, args, env=node_env).exit_code == 0
    assert built == []  # neither needs a service
    commands = [
        ["ingest", "--feed", "services", str(feed)],
        ["status", "--json"],
        ["index", "export", "--out", str(tmp_path / "index.csv")],
        ["review", "list"],
        ["retention", "run"],
        ["audit", "checkpoint"],
        ["audit", "verify"],
    ]
    for args in commands:
        before = len(built)
        result = runner.invoke(node_cli, args, env=node_env)
        assert result.exit_code == 0, (args, result.output)
        assert len(built) == before + 1, f"{' '.join(args)} built no NodeServices"
    status = json.loads(runner.invoke(node_cli, ["status", "--json"], env=node_env).output)
    assert status["children"] > 0 and status["outbox"]["depth"] > 0
