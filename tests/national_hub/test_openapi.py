"""``/openapi.json`` against the running hub: the document is valid OpenAPI 3.1, it
describes exactly the JSON endpoints the app serves, and real answers — successes and
refusals, over real HTTP — match the schemas it gives for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate

from national_hub.app import create_app
from protocol import keys
from protocol.batch import GENESIS, UpsertOp
from server_common.accounts import Role
from server_common.audit.service import AuditLog
from tests.hub_harness import Hub, hub_config
from tests.national_hub.helpers import Client, batch_bytes, record

ESX = "E10000011"
# Served, but as pages or page assets (HTML, JS, CSS, form posts), not JSON endpoints.
PAGES = {"/", "/login", "/logout", "/ops", "/ops/ops.js", "/ops/ops.css", "/audit",
         "/children/{national_id}", "/review", "/review/{review_id}",
         "/review/{review_id}/undo", "/audit/export.csv", "/static/{name}"}
NOT_PAGES = {"/healthz", "/readyz", "/metrics", "/openapi.json"}


def served(app: web.Application) -> set[tuple[str, str]]:
    return {(route.method.lower(), route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None}


def test_document_is_valid_and_describes_every_json_endpoint(tmp_path: Path) -> None:
    from national_hub import openapi

    document = openapi.document()
    validate(document)  # raises on an invalid OpenAPI document
    app = create_app(hub_config("postgresql://unused/", tmp_path))
    routes = served(app)
    unclassified = {p for _, p in routes
                    if p not in PAGES and p not in NOT_PAGES and not p.startswith("/v1/")}
    assert unclassified == set(), "a new route: describe it in national_hub/openapi.py " \
                                  "or, if it is a page, add it to PAGES"
    json_routes = {(m, p) for m, p in routes if p not in PAGES}
    described = {(method, path) for path, item in document["paths"].items()
                 for method in item}
    assert described == json_routes


class Checked:
    """Calls the hub over HTTP and validates each answer against the served document."""

    def __init__(self, hub: Hub, document: dict[str, Any]) -> None:
        self.hub, self.openapi = hub, OpenAPI.from_dict(document)
        self.checked: set[tuple[str, int]] = set()

    async def get(self, path: str, headers: dict[str, str] | None = None,
                  **query: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession(headers=headers or {}) as http, \
                http.get(self.hub.url + path, params=query) as resp:
            body = await resp.read()
            status, content_type = resp.status, resp.content_type
        request = MockRequest(self.hub.url, "get", path, args=query)
        self.openapi.validate_response(request, MockResponse(
            body, status_code=status, content_type=content_type))
        self.checked.add((path, status))
        return status, json.loads(body) if content_type == "application/json" else body


async def test_real_answers_match_the_document(hub: Hub) -> None:
    async with aiohttp.ClientSession() as http, http.get(hub.url + "/openapi.json") as resp:
        assert resp.status == 200  # no login needed to read the description
        document = await resp.json()
    api = Checked(hub, document)

    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    body, _ = batch_bytes(ESX, 1, GENESIS, [UpsertOp.of(record("L1"), 1),
                                             UpsertOp.of(record("L2", nhs=None), 1)], key)
    assert (await Client(hub, ESX, key).send(body))[0] == 200
    await hub.resolved()
    operator, auditor = await hub.operator(), await hub.as_role(Role.AUDITOR)
    practitioner = await hub.as_role(Role.PRACTITIONER)
    audit = AuditLog(hub.pool, keys.load_private_key(hub.config.hub.key_file))

    assert (await api.get("/healthz"))[0] == 200
    assert (await api.get("/readyz"))[0] == 200
    assert (await api.get("/v1/hub/key"))[0] == 200
    assert (await api.get("/v1/me", practitioner))[1]["role"] == "practitioner"
    assert (await api.get("/v1/me"))[0] == 401
    assert (await api.get("/metrics", operator))[0] == 200
    status, health = await api.get("/v1/federation/health", operator)
    assert status == 200 and health["councils"][0]["code"] == ESX
    assert (await api.get("/v1/federation/health", practitioner))[0] == 403
    assert (await api.get("/v1/federation/history", operator, hours="1"))[0] == 200
    assert (await api.get("/v1/federation/history", operator, hours="-1"))[0] == 400
    status, why = await api.get(f"/v1/links/{ESX}/L1/explain", operator)
    assert status == 200 and why["local_id"] == "L1"
    assert (await api.get(f"/v1/links/{ESX}/NOPE/explain", operator))[0] == 404

    assert (await api.get("/v1/audit/checkpoint", auditor))[0] == 404  # none signed yet
    assert (await api.get("/v1/audit/entries", auditor, user="nobody"))[0] == 200
    assert (await api.get("/v1/audit/entries", auditor, child_id="N1"))[0] == 200
    assert (await api.get("/v1/audit/entries", auditor))[0] == 400
    first = await audit.checkpoint()
    await api.get("/v1/audit/entries", auditor, user="somebody")  # one more entry
    second = await audit.checkpoint()
    assert first is not None and second is not None
    assert (await api.get("/v1/audit/checkpoint", auditor))[0] == 200
    assert (await api.get("/v1/audit/proof/inclusion", auditor, seq="0",
                          tree_size=str(second.size)))[0] == 200
    assert (await api.get("/v1/audit/proof/consistency", auditor, first=str(first.size),
                          second=str(second.size)))[0] == 200
    assert (await api.get("/v1/audit/proof/consistency", auditor, first="x",
                          second="2"))[0] == 400
    assert (await api.get("/openapi.json"))[0] == 200

    status, found = await api.get("/v1/search", practitioner, purpose="s17 assessment",
                                  nhs_number="9434765919")
    assert status == 200 and found["results"][0]["given_name"] == "Amelia"
    assert (await api.get("/v1/search", practitioner, nhs_number="9434765919"))[0] == 400
    assert (await api.get("/v1/search", operator, purpose="checking",
                          nhs_number="9434765919"))[0] == 403
    child = found["results"][0]["national_id"]
    status, view = await api.get(f"/v1/children/{child}", practitioner, purpose="s17")
    assert status == 200 and view["councils"][0]["services"][0]["service_type"] == "school"
    assert (await api.get("/v1/children/NC0", practitioner, purpose="s17"))[0] == 404

    json_paths = {p for p in document["paths"] if not p.startswith("/v1/councils/")}
    seen = {path for path, _ in api.checked}
    templated = {p for p in json_paths if "{" in p}
    assert json_paths - templated <= seen  # every JSON endpoint answered and checked
