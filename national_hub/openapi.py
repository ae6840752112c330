"""The hub's OpenAPI 3.1 document, served at ``GET /openapi.json`` (docs/design.md §8).

Written out here rather than generated from handlers: the handlers stay thin, and the
document is the contract a council's or a supplier's client is built against.
``tests/national_hub/test_openapi.py`` keeps it true: every route the app serves under
``/v1/`` (and the probes, ``/metrics``, this document) must be described here, nothing
described may be missing from the app, and real responses — successes and refusals —
are validated against these schemas. Response objects list the fields a client may rely
on; servers may add fields (no ``additionalProperties: false``), so adding is not a
breaking change.

Node endpoints (``/v1/councils/{code}/…``) carry msgpack, specified byte for byte in
docs/PROTOCOL.md; they are listed here with their authentication headers and errors so
the document covers every endpoint.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from national_hub.services.health import MAX_HISTORY_HOURS
from protocol.errors import ErrorCode

JSON = "application/json"
MSGPACK = "application/msgpack"
Schema = dict[str, Any]


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None,
         description: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "required": sorted(required),
                      "properties": {**required, **(optional or {})}}
    if description:
        schema["description"] = description
    return schema


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
B64: Schema = {"type": "string", "contentEncoding": "base64"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": _obj(
        {"code": {"type": "string", "enum": sorted(str(c) for c in ErrorCode)},
         "message": STR, "retryable": BOOL},
        {"detail": {"type": "object"}})},
        description="Every refusal: a stable code, a message saying what, where and "
                    "why, and whether retrying the same request can succeed."),
    "Me": _obj({"user": STR, "role": {"type": "string", "enum": [
        "practitioner", "index_team", "operator", "auditor"]},
        "organisation": STR, "council": _nullable(STR)}),
    "Liveness": _obj({"status": {"const": "ok"}}),
    "Readiness": _obj({"status": {"enum": ["ready", "not_ready"]},
                       "checks": {"type": "object",
                                  "additionalProperties": {"type": "string"}}}),
    "HubKey": _obj({"kid": STR, "public_key_pem": STR}),
    "CouncilHealth": _obj({
        "code": STR, "name": STR, "status": {"enum": ["GOOD", "WARN", "BAD"]},
        "reasons": {"type": "array", "items": STR},
        "hub_seq": INT, "node_seq": _nullable(INT), "lag": _nullable(INT),
        "outbox_depth": _nullable(INT), "last_batch_at": _nullable(TIME),
        "seconds_since_heartbeat": _nullable(NUM),
        "rejected_24h": {"type": "object", "additionalProperties": INT},
        "forked": BOOL, "key_expiry_days": _nullable(NUM), "records": INT,
        "review_queue": INT, "resolution_queue": INT,
        "resolution_wait_seconds": _nullable(NUM),
        "notices_undelivered": INT, "notices_wait_seconds": _nullable(NUM)}),
    "FederationHealth": _obj({"generated_at": TIME,
                              "status": {"enum": ["GOOD", "WARN", "BAD"]},
                              "councils": {"type": "array",
                                           "items": _ref("CouncilHealth")}}),
    "FederationHistory": _obj({
        "hours": NUM, "bucket_seconds": INT,
        "councils": {"type": "object", "additionalProperties": {
            "type": "array", "items": _obj({"t": TIME, "lag": _nullable(INT),
                                            "hub_seq": INT, "records_applied": INT})}}}),
    "Checkpoint": _obj({"origin": STR, "tree_size": INT, "root_hash": B64, "time": STR,
                        "note": {"type": "string",
                                 "description": "The C2SP signed note, hub-signed"}}),
    "InclusionProof": _obj({"seq": INT, "tree_size": INT, "entry": STR, "leaf_hash": B64,
                            "root_hash": B64, "proof": {"type": "array", "items": B64}}),
    "ConsistencyProof": _obj({"first": INT, "second": INT, "first_root": B64,
                              "second_root": B64,
                              "proof": {"type": "array", "items": B64}}),
    "AuditEntry": _obj({"seq": INT, "who": STR, "role": STR, "organisation": STR,
                        "purpose": STR, "action": STR, "parameters": {"type": "object"},
                        "child_ids": {"type": "array", "items": STR}, "at": STR}),
    "AuditEntries": _obj({"entries": {"type": "array", "items": _ref("AuditEntry")}}),
    "FieldComparison": _obj({"field": STR, "level": STR, "weight": NUM,
                             "tf_adjustment": NUM}),
    "LinkExplanation": _obj({
        "council": STR, "local_id": STR, "national_id": _nullable(STR),
        "status": _nullable({"enum": ["linked", "review", "single"]}),
        "partners": {"type": "array", "items": _obj({
            # null: withheld, for a shielded child (protocol.disclosure)
            "partner": _obj({"council": _nullable(STR), "local_id": _nullable(STR),
                             "national_id": _nullable(STR)}),
            "relation": STR,
            "review": _nullable(_obj({"id": INT, "status": STR,
                                      "decided_by": _nullable(STR)})),
            "total": NUM, "probability": NUM, "decision": STR,
            "veto": _nullable(STR),
            "fields": {"type": "array", "items": _ref("FieldComparison")},
            "model_version": STR,
            "thresholds": _obj({"link": NUM, "review": NUM}),
        }, {"location_withheld": BOOL})}},
        description="A pair with a shielded record, for a caller who may not see where "
                    "both records' child lives, is scored without postcode and address "
                    "and lists no postcode or address comparison (location_withheld)"),
}

_DATE: Schema = {"type": "string", "format": "date"}
_CONTACT = _obj({"council": STR, "name": STR, "team": {"const": "index team"}},
                description="Whose index team to contact about a shielded child")
_SERVICE = _obj({
    "service_type": STR, "organisation_code": _nullable(STR),
    "organisation_name": _nullable(STR), "organisation_phone": _nullable(STR),
    "professional_name": _nullable(STR), "professional_role": _nullable(STR),
    "professional_phone": _nullable(STR), "professional_email": _nullable(STR),
    "start_date": _nullable(_DATE), "end_date": _nullable(_DATE),
    "lead_professional": BOOL, "caf_done": BOOL, "sensitive": BOOL})
SCHEMAS.update({
    "SearchResult": _obj({
        "national_id": STR, "given_name": STR, "family_name": STR, "dob": _DATE, "sex": INT,
        "confidence": NUM, "shielded": BOOL,
        "councils": {"type": "array", "items": _obj({
            "code": STR, "name": STR, "postcode_district": _nullable(STR)})},
        "contact": {"type": "array", "items": _CONTACT}},
        description="A national child; a shielded one (any of its records shielded, or "
                    "related to a shielded record) lists no councils and no postcode "
                    "district, only whose index team to contact"),
    "SearchResults": _obj({"results": {"type": "array", "items": _ref("SearchResult")}}),
    "Service": _SERVICE,
    "CouncilRecord": _obj(
        {"council": STR, "council_name": STR, "local_id": STR, "updated_at": TIME,
         "given_name": STR, "other_given_names": _nullable(STR), "family_name": STR,
         "former_family_names": {"type": "array", "items": STR}, "dob": _DATE, "sex": INT,
         "date_of_death": _nullable(_DATE), "nhs_number": _nullable(STR),
         "shielded": BOOL, "withheld": BOOL},
        {"address_line": _nullable(STR), "postcode": _nullable(STR), "upn": _nullable(STR),
         "parent_carer": _obj({"name": _nullable(STR), "phone": _nullable(STR)}),
         "services": {"type": "array", "items": _ref("Service")},
         "lead_professional": _nullable(_ref("Service")), "caf_done": BOOL},
        description="One council's record as the caller may see it: withheld (a shielded "
                    "child, not the caller's own council's index team) leaves out the "
                    "address, UPN, parent/carer and every service"),
    "NationalChild": _obj({
        "national_id": STR, "given_name": STR, "family_name": STR, "dob": _DATE, "sex": INT,
        "shielded": BOOL, "withheld": BOOL, "contact": {"type": "array", "items": _CONTACT},
        "councils": {"type": "array", "items": _ref("CouncilRecord")}},
        description="withheld: a shielded child's list of councils, local ids and update "
                    "times is kept from all but a shielding council's index team (the "
                    "caller's own council's record is still listed for its index team)"),
})


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": _ref("Error")}}}


ERRORS = {
    "400": _error("Malformed request: a parameter is missing or invalid"),
    "401": _error("No session or bearer token, or an expired or revoked token"),
    "403": _error("Signed in, but this role may not do this"),
}
UNAVAILABLE = {"503": _error("The database is unavailable; retry later")}
# Every endpoint but the probes is rate limited (server_common/ratelimit).
LIMITED = {"429": {**_error("Too many requests from this caller this minute"),
                   "headers": {"Retry-After": {"description": "Seconds until allowed again",
                                               "schema": INT}}}}
PROBES = {"/healthz", "/readyz"}


def _json(schema: Schema, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _query(name: str, description: str, *, required: bool = False,
           schema: Schema | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required,
            "description": description, "schema": schema or STR}


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": STR}


def _get(summary: str, ok: dict[str, Any], *, tag: str, roles: list[str] | None,
         parameters: list[dict[str, Any]] | None = None,
         errors: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag],
                                 "responses": {"200": ok, **(errors or {})}}
    if roles is None:
        operation["security"] = []  # open: probes, the key, this document
    else:
        operation["description"] = "Roles: " + ", ".join(roles) + "."
        operation["responses"].update({**ERRORS, **UNAVAILABLE, **(errors or {})})
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _node_endpoint(method: str, summary: str, request_body: bool) -> dict[str, Any]:
    signed = [{"name": h, "in": "header", "required": True, "schema": STR}
              for h in ("Signpost-Origin", "Signpost-Key-Id", "Signpost-Timestamp",
                        "Signpost-Nonce", "Signpost-Signature")]
    operation: dict[str, Any] = {
        "summary": summary, "tags": ["council nodes"], "security": [],
        "description": "Request signed with the council's enrolled Ed25519 key "
                       "(docs/PROTOCOL.md). msgpack in and out.",
        "parameters": [_path("code", "The council's ONS code"), *signed],
        "responses": {
            "200": {"description": "OK (msgpack)",
                    "content": {MSGPACK: {"schema": {"type": "string",
                                                     "format": "binary"}}}},
            "400": _error("Malformed msgpack or an invalid field"),
            "401": _error("The request signature, key, clock or nonce was refused"),
            "409": _error("Sequence gap, fork or chain mismatch"),
            "413": _error("Body larger than the configured limit"),
            **UNAVAILABLE,
            **LIMITED,
        },
    }
    if request_body:
        operation["requestBody"] = {"required": True, "content": {
            MSGPACK: {"schema": {"type": "string", "format": "binary"}}}}
    return {method: operation}


def _paths() -> dict[str, Any]:
    auditor = ["auditor"]
    practitioners = ["practitioner", "index_team"]
    not_found = {"404": _error("Nothing of that kind exists (yet)")}
    return {
        "/healthz": _get("The process answers", _json(_ref("Liveness")),
                         tag="probes", roles=None),
        "/readyz": _get("Database reachable, schema current, audit log writable",
                        _json(_ref("Readiness")), tag="probes", roles=None,
                        errors={"503": _json(_ref("Readiness"), "Not ready")}),
        "/openapi.json": _get("This document", _json({"type": "object"}),
                              tag="probes", roles=None),
        "/metrics": _get("Prometheus metrics (text format 0.0.4)", {
            "description": "OK", "content": {"text/plain": {"schema": STR}}},
            tag="operations", roles=["operator"]),
        "/v1/me": _get("Who the session or token belongs to", _json(_ref("Me")),
                       tag="accounts", roles=["any signed-in role"]),
        "/v1/hub/key": _get("The hub's receipt-signing public key",
                            _json(_ref("HubKey")), tag="council nodes", roles=None),
        "/v1/federation/health": _get(
            "Each council's sync state and the federation's status",
            _json(_ref("FederationHealth")), tag="operations", roles=["operator"]),
        "/v1/federation/history": _get(
            "Lag and records applied per council, in 5-minute buckets",
            _json(_ref("FederationHistory")), tag="operations", roles=["operator"],
            parameters=[_query("hours", f"How far back (0 < hours ≤ {MAX_HISTORY_HOURS:g}); "
                                        "default 6",
                               schema=NUM)]),
        "/v1/audit/checkpoint": _get(
            "The latest hub-signed checkpoint of the audit log",
            _json(_ref("Checkpoint")), tag="audit", roles=auditor, errors=not_found),
        "/v1/audit/proof/inclusion": _get(
            "Inclusion proof of one entry in a tree size",
            _json(_ref("InclusionProof")), tag="audit", roles=auditor, errors=not_found,
            parameters=[_query("seq", "The entry", required=True, schema=INT),
                        _query("tree_size", "A checkpointed size", required=True,
                               schema=INT)]),
        "/v1/audit/proof/consistency": _get(
            "Consistency proof between two tree sizes",
            _json(_ref("ConsistencyProof")), tag="audit", roles=auditor,
            errors=not_found,
            parameters=[_query("first", "The older size", required=True, schema=INT),
                        _query("second", "The newer size", required=True, schema=INT)]),
        "/v1/audit/entries": _get(
            "Every access to one child, or everything one user did (subject access)",
            _json(_ref("AuditEntries")), tag="audit", roles=auditor,
            parameters=[_query("child_id", "A national id (give this or user)"),
                        _query("user", "An account name (give this or child_id)")]),
        "/v1/links/{council}/{local_id}/explain": _get(
            "Why a record is linked: each field's level and weight, total, thresholds",
            _json(_ref("LinkExplanation")), tag="identity resolution",
            roles=["operator", "index_team (own council)"], errors=not_found,
            parameters=[_path("council", "Council code"),
                        _path("local_id", "The council's local id")]),
        "/v1/search": _get(
            "Find a child across every council: ranked national children, each with a "
            "confidence and only what tells children apart; every search is audited",
            _json(_ref("SearchResults")), tag="practitioners", roles=practitioners,
            parameters=[
                _query("purpose", "Why you are looking (3 to 200 characters; audited)",
                       required=True),
                _query("given_name", "Given name (nicknames and typos are found)"),
                _query("family_name", "Family name (a former surname is found too)"),
                _query("dob", "Date of birth, YYYY-MM-DD (a day–month swap is found)",
                       schema=_DATE),
                _query("postcode", "Full postcode (never finds a shielded child)"),
                _query("nhs_number", "NHS number"), _query("upn", "Unique pupil number")]),
        "/v1/children/{national_id}": _get(
            "One national child: per council, services and professionals with contacts, "
            "the lead professional and CAF, parent/carer contact; audited",
            _json(_ref("NationalChild")), tag="practitioners", roles=practitioners,
            errors={**not_found, "308": {
                "description": "A retired id: the surviving child's address, with the "
                               "same query string",
                "headers": {"Location": {"schema": STR}}}},
            parameters=[_path("national_id", "The national child id"),
                        _query("purpose", "Why you are looking (3 to 200 characters; "
                                          "audited)", required=True)]),
        "/v1/councils/{code}/batches": _node_endpoint(
            "post", "Apply a signed batch; answers with a signed receipt", True),
        "/v1/councils/{code}/cursor": _node_endpoint(
            "get", "The last applied seq and hash (where to resume)", False),
        "/v1/councils/{code}/keys": _node_endpoint(
            "post", "Announce the council's next key, signed by the current one", True),
        "/v1/councils/{code}/heartbeats": _node_endpoint(
            "post", "The node's head seq and outbox depth", True),
        "/v1/councils/{code}/digests": _node_endpoint(
            "post", "Anti-entropy: bucket digests of what the hub holds for the council",
            True),
        "/v1/councils/{code}/digests/records": _node_endpoint(
            "post", "Anti-entropy: every row the hub holds in the given buckets", True),
        "/v1/councils/{code}/audit/checkpoint": _node_endpoint(
            "get", "Witnessing: the latest signed audit checkpoint and a consistency proof "
                   "from ?from= (PROTOCOL §15)", False),
        "/v1/councils/{code}/audit/cosignatures": _node_endpoint(
            "post", "Witnessing: the council's cosignature of an audit checkpoint", True),
        "/v1/councils/{code}/audit/refusals": _node_endpoint(
            "post", "Witnessing: the council refused to cosign (truncation, rewrite, fork)",
            True),
        "/v1/councils/{code}/audit/node-log": {
            **_node_endpoint("get", "The hub's witness of the node's own audit log: the "
                                    "checkpoint of it the hub last kept (PROTOCOL §18)", False),
            **_node_endpoint("post", "The node's latest checkpoint of its own log and a "
                                     "consistency proof from the one the hub kept: kept, or "
                                     "refused as evidence (PROTOCOL §18)", True)},
        "/v1/councils/{code}/shielded": _node_endpoint(
            "get", "The council's local ids that another council's shielded record shields "
                   "(key-set pages: ?after=; PROTOCOL §16)", False),
        "/v1/councils/{code}/notices": _node_endpoint(
            "get", "The council's notices after its cursor ?after=N: another council or "
                   "service is involved with one of its children (PROTOCOL §17)", False),
    }


def _rate_limited(paths: dict[str, Any]) -> dict[str, Any]:
    for path, item in paths.items():
        if path not in PROBES:
            for operation in item.values():
                operation["responses"].update(LIMITED)
    return paths


@functools.cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Signpost national hub", "version": "1",
                 "description": "Search and child pointers for practitioners, federation "
                                "health for operators, the audit log for auditors, and "
                                "the signed msgpack endpoints council nodes call."},
        "paths": _rate_limited(_paths()),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API token (`national-hub users token`)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "signpost_session",
                            "description": "A web session after password and TOTP"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }


def document() -> dict[str, Any]:
    """A fresh copy of the document (callers may not change the cached one)."""
    return copy.deepcopy(_document())
