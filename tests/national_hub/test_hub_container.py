"""One place builds the hub's services (national_hub.services.container): the running
app takes every service from one container, whose stores the services share, and every
``national-hub`` command that touches the database builds its services through it."""

from __future__ import annotations

import ast
import inspect
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import national_hub.audit_cli
import national_hub.cli
from national_hub.cli import main as hub_cli
from national_hub.handlers import appkeys as k
from national_hub.handlers.witness import WITNESSES
from national_hub.services import container
from national_hub.services.container import HubServices
from protocol import keys
from tests.conftest import DatabaseFactory
from tests.hub_harness import running_hub

ESX = "E10000011"


async def test_create_app_takes_every_service_from_one_container(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    async with running_hub(await make_database(), tmp_path) as hub:
        app = hub.server.app
        services = app[k.SERVICES]
        assert isinstance(services, HubServices) and services.hub_key is app[k.HUB_KEY]
        pairs = {k.NODE_AUTH: services.node_auth, k.COUNCILS: services.councils,
                 k.ROTATION: services.rotation, k.RESOLVER: services.resolver,
                 k.INTAKE: services.intake, k.HEALTH: services.health,
                 k.ANTI_ENTROPY: services.anti_entropy, k.AUDIT: services.audit,
                 k.SHIELDED_ELSEWHERE: services.shielded_elsewhere,
                 k.REVIEW: services.review, k.SEARCH: services.search,
                 WITNESSES: services.witnesses}
        for key, service in pairs.items():
            assert app[key] is service, key  # type: ignore[call-overload]
        # one store of each kind, passed in: the services share it
        stores = services.stores
        assert (services.node_auth.councils is services.review.councils
                is services.intake.councils is services.retention.councils is stores.councils)
        assert (services.review.queue is services.retention.queue
                is services.health.queue is services.resolver.queue is stores.queue)
        assert services.review.records is services.intake.records is stores.records
        # and what the app built works: the background resolver drains the empty queue
        assert await services.resolver.drain() == 0


def test_the_cli_constructs_no_service_and_no_store() -> None:
    """Service and store classes are built only in the container: the CLI calls none."""
    built = {name for module in (container,) for name, obj in vars(module).items()
             if inspect.isclass(obj) and obj.__module__.startswith(
                 ("national_hub.services.", "national_hub.storage."))
             and obj.__module__ != container.__name__}
    assert {"ReviewService", "RecordStore", "Resolver"} <= built
    calls = [f"{source.name}:{node.lineno}: {node.func.id}(…)"
             for source in (Path(national_hub.cli.__file__),
                            Path(national_hub.audit_cli.__file__))
             for node in ast.walk(ast.parse(source.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in built]
    assert not calls, "\n".join(calls)


@pytest.fixture
async def hub_env(make_database: DatabaseFactory, tmp_path: Path
                  ) -> AsyncIterator[dict[str, str]]:
    # The CLI runs in this process and sets up its own logging: put the root logger back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": await make_database(),
        "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "hub_key.pem"),
    }
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[HubServices]]:
    """Every container the CLI builds, in order (the real class, only counted)."""
    seen: list[HubServices] = []

    class Counted(HubServices):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

    monkeypatch.setattr(national_hub.cli, "HubServices", Counted)
    yield seen


def test_every_command_gets_its_services_from_the_container(
        hub_env: dict[str, str], built: list[HubServices], tmp_path: Path) -> None:
    public = tmp_path / "esx.pub.pem"
    public.write_bytes(keys.public_pem(keys.generate().public_key()))
    runner = CliRunner()
    assert runner.invoke(hub_cli, ["db", "upgrade"], env=hub_env).exit_code == 0
    commands = [
        ["councils", "add", ESX, "--name", "East Sussex", "--public-key", str(public)],
        ["councils", "list"],
        ["councils", "unflag", ESX],
        ["links", "export", "--out", str(tmp_path / "links.csv")],
        ["links", "resolve", ESX],
        ["links", "drain"],
        ["links", "shield"],
        ["model", "list"],
        ["review", "list"],
        ["status", "--json"],
        ["audit", "checkpoint"],
        ["audit", "verify"],
        ["retention", "run"],
    ]
    for args in commands:
        before = len(built)
        result = runner.invoke(hub_cli, args, env=hub_env)
        assert result.exit_code == 0, (args, result.output)
        assert len(built) == before + 1, f"{' '.join(args)} built no HubServices"
        assert built[-1].actor is not None  # changes are audited as the command's user
    # what the commands did went through those services: the enrolment is in the log
    listing = runner.invoke(hub_cli, ["councils", "list"], env=hub_env).output
    assert ESX in listing
    verify = runner.invoke(hub_cli, ["audit", "verify"], env=hub_env).output
    assert "audit log verified" in verify and "0 entries" not in verify
