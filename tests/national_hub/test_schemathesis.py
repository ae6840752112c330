"""Schemathesis over ``/openapi.json`` (docs/security.md "The attack surface"):
generated requests — valid and invalid parameters, odd strings, wrong types — against
every documented operation of a running hub holding records, signed in with the role
each operation is for. No answer may be a server error, and every answer must match the
document (status, content type, schema). Seeded, so a failure reproduces."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from tests.conftest import DatabaseFactory
from tests.hub_harness import Hub, running_hub
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.processes import script

ROOT = Path(__file__).resolve().parents[2]
ESX = "E10000011"
SEED = 7
EXAMPLES = int(os.environ.get("SIGNPOST_FUZZ_EXAMPLES", "25"))
# Each tag of the document, and the role its operations are for (None: no login).
TAGS: dict[str, Role | None] = {
    "practitioners": Role.PRACTITIONER,
    "audit": Role.AUDITOR,
    "operations": Role.OPERATOR,
    "identity resolution": Role.OPERATOR,
    "accounts": Role.PRACTITIONER,
    "probes": None,
    "council nodes": None,
}
CHECKS = ",".join(["not_a_server_error", "status_code_conformance",
                   "content_type_conformance", "response_schema_conformance"])


@pytest.fixture
async def hub(make_database: DatabaseFactory, tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(await make_database(), tmp_path) as hub:
        key = keys.generate()
        await hub.enrol(ESX, keys.public_pem(key.public_key()))
        body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1),
                                                 UpsertOp.of(record("L2", nhs=None), 1)], key)
        assert (await Client(hub, ESX, key).send(body))[0] == 200
        yield hub


async def schemathesis(hub: Hub, tag: str, role: Role | None, tmp: Path) -> tuple[int, str]:
    headers = [] if role is None else [
        "-H", f"Authorization:{(await hub.as_role(role))['Authorization']}"]
    process = await asyncio.create_subprocess_exec(
        script("st"), "run", hub.url + "/openapi.json", "--include-tag", tag,
        "--checks", CHECKS, "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--workers", "1", "--no-color", *headers,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp,
        env=dict(os.environ) | {
            "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")]))})
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize("tag", list(TAGS))
async def test_no_server_error_and_answers_match_the_document(hub: Hub, tag: str,
                                                              tmp_path: Path) -> None:
    status, report = await schemathesis(hub, tag, TAGS[tag], tmp_path)
    assert status == 0, report
    assert "passed" in report.lower()
