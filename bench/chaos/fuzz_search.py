"""A seeded fuzz of the practitioner's side of a server over real HTTP: its search API,
child view and their pages, with a practitioner's bearer token. A :class:`Target`
says which server: the hub (``HUB``: ``GET /v1/search``, ``GET /v1/children/{id}``,
``/`` and ``/children/{id}``, national ids) or a council's node (``fuzz_node.NODE``:
the same with ``/search`` for the page, local ids).

Each case starts from a real query (the name, date of birth, postcode and NHS number
of a child the server holds, and a purpose) or a real child id, and mutates it: bit
flips in a value, wrong types (repeated keys, ``dob[]``, JSON where text belongs),
deep nesting, huge strings and arrays of repeated keys, bad UTF-8 and bad
percent-escapes, bad dates and identifiers, unknown parameters, a wrong purpose, a
mangled token, a token or session cookie that is not UTF-8 (sent on a raw
connection), a method the endpoint does not take. The URL is percent-encoded by
the fuzz, byte by byte, so what a mutation puts in reaches the server as is. Whatever
comes back (see ``fuzz.FAILURES``):

- never a 5xx;
- a refusal is a 4xx with a known code (the JSON error's, or a page's ``data-code``);
- an accepted request is well-formed: a search answer is ``{"results": [...]}`` with
  every field of the target's hit, of the right type; a child view names the child
  asked for and has the target's list (the hub's councils, the node's involvements);
  a redirect points to a child's address (a merged child's, to the child it was
  merged into); a page has its heading. An unmutated query finds the child it was
  made from (or the one it was merged into).

One thing is refused before any code of ours runs: a request line over aiohttp's
limit (8190 bytes), which its HTTP parser answers with a bare ``400`` and no code.
Those cases are sent on purpose ("over the line limit"), counted apart, and must be
a 4xx; the code rule applies to everything that reaches the application.

Example::

    fuzz = SearchFuzz(hub_url, {"Authorization": "Bearer …"}, known, seed=7)
    report = await fuzz.run(1000)
    node = SearchFuzz(node_url, headers, await fuzz_node.known_children(pool), 7, fuzz_node.NODE)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from bench.chaos.fuzz import BAD_DATES, FuzzReport, flip
from protocol import encoding
from protocol.batch import GENESIS, UpsertOp
from protocol.records import ChildRecord
from tests.national_hub.helpers import batch_bytes, record

LINE_LIMIT = 8190  # aiohttp's max_line_size: longer request lines never reach the app
_DATA_CODE = re.compile(r'data-code="([^"]*)"')
_HUB_HIT: dict[str, type | tuple[type, ...]] = {
    "national_id": str, "given_name": str, "family_name": str, "dob": str, "sex": int,
    "confidence": (int, float), "councils": list, "shielded": bool, "contact": list}
_BAD_BYTES = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\xf4\x90\x80\x80",
              b"\x1b[31m", "\u202e".encode(), "𝒜".encode(), b"\r\n"]
# a bearer token, session cookie or login cookie, then bytes that are not UTF-8
_RAW_CREDENTIALS = [b"Authorization: Bearer ", b"Cookie: signpost_session=",
                    b"Cookie: signpost_login_csrf="]
_NOT_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"]
_BAD_ESCAPES = ["%", "%zz", "%4", "%%41", "%u0041", "%C3%"]
_WRONG_VALUES = ["null", "true", "[1,2]", '{"a":1}', "1.5", "-1", "18446744073709551615",
                 "", " ", "0x10", "NaN"]
_FIELDS = ("given_name", "family_name", "dob", "postcode", "nhs_number", "upn")
ENDPOINTS = ("api_search", "api_child", "page_search", "page_child")
# Children to search for, published cleanly before a search fuzz
SAMPLE_CHILDREN = [("Amelia", "Okafor", date(2015, 3, 14), "9434765919"),
                   ("Jack", "Smith", date(2012, 7, 1), None),
                   ("Zoë", "O'Brien-Smith", date(2019, 11, 30), None),
                   ("Mohammed", "Khan", date(2010, 1, 5), "9434765870")]


def sample_batch(council: str, key: Ed25519PrivateKey) -> bytes:
    """The first batch of ``council``: the sample children, as a node would sign it."""
    ops = [UpsertOp.of(dataclasses.replace(record(f"S{i}", nhs=nhs), given_name=given,
                                           family_name=family, dob=dob), 1)
           for i, (given, family, dob, nhs) in enumerate(SAMPLE_CHILDREN)]
    body, _ = batch_bytes(council, 1, GENESIS, ops, key)
    return body


@dataclass(frozen=True)
class Target:
    """The server a search fuzz aims at: its practitioner endpoints' paths, and what a
    well-formed answer there looks like."""

    label: str  # before each endpoint in the report ("" for the hub, "node " for a node)
    id_field: str  # a hit's and a child view's id
    hit: Mapping[str, type | tuple[type, ...]]  # every field of a search hit, its type
    child_list: str  # a list every child view has
    search_page: str = "/"
    search_posts: bool = False  # the search page posts its form; the API also takes POST
    paths: Mapping[str, str] = field(default_factory=lambda: {
        "api_child": "/v1/children/", "page_child": "/children/", "api_search": "/v1/search"})

    def path(self, endpoint: str) -> str:
        return self.search_page if endpoint == "page_search" else self.paths[endpoint]


HUB = Target("", "national_id", _HUB_HIT, "councils")


@dataclass(frozen=True)
class Known:
    """A child the server holds: its id (national at the hub, local at a node) and a
    query that finds it; for a child merged into another, the id the query finds and
    its view redirects to."""

    id: str
    params: dict[str, str]
    found_as: str = ""


def query_of(given_name: str | None, family_name: str | None, dob: date | None,
             postcode: str | None, nhs_number: str | None) -> dict[str, str]:
    """The query a practitioner would type for a child: what it has of these."""
    params = {"given_name": given_name or "", "family_name": family_name or "",
              "dob": dob.isoformat() if dob else "", "postcode": postcode or "",
              "nhs_number": nhs_number or ""}
    return {k: v for k, v in params.items() if v}


async def known_children(pool: asyncpg.Pool, limit: int = 200) -> list[Known]:
    """Queries made from the live records the hub holds (their national ids, names,
    dates of birth, postcodes and NHS numbers)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT national_id, record FROM records"
                                " WHERE record IS NOT NULL AND national_id IS NOT NULL"
                                " ORDER BY council_code, local_id LIMIT $1", limit)
    out = []
    for row in rows:
        child = ChildRecord.from_wire(encoding.unpack(bytes(row["record"]), what="record"))
        out.append(Known(row["national_id"], query_of(child.given_name, child.family_name,
                                                      child.dob, child.postcode,
                                                      child.nhs_number)))
    return out


# In order, repeats allowed; bytes are percent-encoded when sent, a str goes as it is
Params = list[tuple[bytes, bytes | str]]


class SearchMutator:
    """Seeded query strings, ids and headers, most of them wrong in some way."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def params(self, known: Known) -> tuple[str, Params]:
        rng = self.rng
        base = dict(known.params) | {"purpose": "fuzz enquiry about a child"}
        fewer = rng.random() < 0.3  # some still enough to search, some not
        if fewer:
            for name in rng.sample(sorted(base), rng.randint(1, 3)):
                del base[name]
        params: Params = [(k.encode(), v.encode()) for k, v in base.items()]
        kind = rng.choice(["none", "none", "bad_date", "wrong_type", "repeated", "huge_string",
                           "huge_array", "deep", "bad_utf8", "bad_escape", "flip",
                           "identifier", "unknown_param", "purpose", "over_line_limit"])
        field = rng.choice(_FIELDS).encode()
        if kind == "bad_date":
            params = _set(params, b"dob", str(rng.choice(BAD_DATES)).encode())
        elif kind == "wrong_type":
            if rng.random() < 0.5:
                params = _set(params, field, rng.choice(_WRONG_VALUES).encode())
            else:  # the field as an "array" or "object", as some frameworks would take it
                suffix = rng.choice([b"[]", b"[0]", b"[a]", b".x"])
                params = [(k + suffix if k == field else k, v) for k, v in params]
        elif kind == "repeated":
            params = [*params, (field, b"2015-01-01" if field == b"dob" else b"Other")]
        elif kind == "huge_string":
            params = _set(params, field, b"A" * rng.choice([101, 1000, 7000]))
        elif kind == "huge_array":
            params = params + [(field, b"Smith")] * rng.choice([50, 300])
        elif kind == "deep":
            depth = rng.choice([100, 1000])
            if rng.random() < 0.5:
                params = _set(params, field, b"[" * depth + b"]" * depth)
            else:
                params = [*params, (b"a" + b"[b]" * depth, b"1")]
        elif kind == "bad_utf8":
            params = _set(params, field, b"Okafor" + rng.choice(_BAD_BYTES))
        elif kind == "bad_escape":  # left as it is: a broken escape in the URL
            params = [*params, (field, rng.choice(_BAD_ESCAPES))]
        elif kind == "flip" and params:
            i = rng.randrange(len(params))
            key, value = params[i]
            assert isinstance(value, bytes)
            params[i] = (key, flip(value or b"x", rng, rng.randint(1, 4)))
        elif kind == "identifier":
            params = _set(params, rng.choice([b"nhs_number", b"upn", b"postcode"]),
                          rng.choice([b"9434765918", b"943 476 5919 1", b"ABCDEFGHIJ", b"0",
                                      b"A123456789012", b"SW1A 1AAA", b"!!", b"0" * 90]))
        elif kind == "unknown_param":
            unknown = rng.choice([b"case_notes", b"Given_Name", b"", b"x" * 200])
            params = [*params, (unknown, b"secret")]
        elif kind == "purpose":
            params = _set(params, b"purpose", rng.choice(
                [b"", b"  ", b"ab", b"p" * 201, b"\x00\x01\x02", b"why\r\nX-Injected: 1"]))
        elif kind == "over_line_limit":
            params = _set(params, field, b"A" * rng.choice([LINE_LIMIT, 100_000]))
        return ("fewer" if fewer and kind == "none" else kind), params

    def child_id(self, known: Known) -> tuple[str, bytes]:
        rng = self.rng
        real = known.id.encode()
        kind = rng.choice(["none", "none", "flip", "unknown", "huge", "bad_utf8", "path",
                           "empty_like"])
        if kind == "flip":
            return kind, flip(real, rng, rng.randint(1, 3))
        if kind == "unknown":
            return kind, b"N" + bytes(rng.choice(b"0123456789ABCDEF") for _ in range(15))
        if kind == "huge":
            return kind, b"9" * rng.choice([200, 5000])
        if kind == "bad_utf8":
            return kind, real + rng.choice(_BAD_BYTES)
        if kind == "path":
            return kind, rng.choice([b"../../etc/passwd", b"a/b", b"%2e%2e", b"?x=1", b"#"])
        if kind == "empty_like":
            return kind, rng.choice([b" ", b".", b"null", b"0"])
        return kind, real


class SearchFuzz:
    """Sends mutated searches and child views to ``target`` (at ``url``) as one
    practitioner; checks each answer."""

    def __init__(self, url: str, headers: dict[str, str], known: list[Known],
                 seed: int, target: Target = HUB) -> None:
        assert known, "the server must hold a child to start from"
        self.url, self.headers, self.known, self.seed = url, headers, known, seed
        self.target = target
        self.rng = random.Random(f"{seed}:{target.label}search")
        self.mutator = SearchMutator(self.rng)
        self.report = FuzzReport(seed)

    async def run(self, cases: int) -> FuzzReport:
        timeout = aiohttp.ClientTimeout(total=60)
        # a login redirect echoes the path asked for, a long one when the fuzz made it so
        async with aiohttp.ClientSession(timeout=timeout, max_line_size=1 << 20,
                                         max_field_size=1 << 20) as http:
            for n in range(cases):
                await self.case(http, f"{self.target.label}search seed {self.seed} case {n}")
        return self.report

    def _headers(self) -> dict[str, str] | bytes:
        """The practitioner's token; now and then a mangled or missing one, or a
        credential that is not UTF-8 (a raw header line: aiohttp's client would not
        send it)."""
        roll = self.rng.random()
        if roll < 0.03:
            token = self.headers.get("Authorization", "")
            return {"Authorization": self.rng.choice(
                ["", "Bearer", "Bearer " + token[-10:], token + "x", "Basic Zm9vOmJhcg=="])}
        if roll < 0.06:
            return self.rng.choice(_RAW_CREDENTIALS) + self.rng.choice(_NOT_UTF8) + b"x"
        return dict(self.headers)

    async def case(self, http: aiohttp.ClientSession, where: str) -> None:
        rng, report, target = self.rng, self.report, self.target
        known = rng.choice(self.known)
        endpoint = rng.choice(ENDPOINTS)
        kind, params = self.mutator.params(known)
        method = "GET" if rng.random() > 0.03 else rng.choice(["POST", "PUT", "DELETE"])
        wanted = known.found_as or known.id
        path = target.path(endpoint)
        # where an unmutated view of a merged child must redirect to (a login aside)
        redirects: tuple[str, ...] = ("/v1/children/", "/children/", "/login?")
        if endpoint in ("api_child", "page_child"):
            id_kind, child_id = self.mutator.child_id(known)
            kind = f"id:{id_kind}" if id_kind != "none" else kind
            path += quote_from_bytes(child_id, safe="")
            if kind == "none":
                params = [(b"purpose", b"fuzz enquiry about a child")]
                if known.found_as:
                    redirects = (target.path(endpoint) + known.found_as + "?", "/login?")
            else:
                wanted = ""
        url = URL(self.url + path + "?" + _encode(params), encoded=True)
        headers = self._headers()
        body: bytes | None = None
        if target.search_posts and method == "GET" and isinstance(headers, dict) and \
                endpoint in ("page_search", "api_search") and \
                (endpoint == "page_search" or rng.random() < 0.5):
            # the search page's form is posted; the API takes a JSON body too (GET kept)
            url, method = URL(self.url + path, encoded=True), "POST"
            body, headers["Content-Type"] = (
                (_encode(params).encode(), "application/x-www-form-urlencoded")
                if endpoint == "page_search" else (_json_body(params), "application/json"))
        raw = "" if isinstance(headers, dict) else f", {headers!r}"
        where = f"{where} ({endpoint} {method} {kind}{raw})"
        endpoint = target.label + endpoint  # as the report counts it
        try:
            if isinstance(headers, bytes):
                report.outcomes[f"{target.label}sent a credential that is not UTF-8"] += 1
                status, body, content_type, location = await send_raw(method, url, headers)
            else:
                async with http.request(method, url, headers=headers, data=body,
                                        allow_redirects=False) as resp:
                    status, body = resp.status, await resp.read()
                    content_type = resp.content_type
                    location = resp.headers.get("Location", "")
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            report.fail("bad_answer", f"{where}: no answer ({type(exc).__name__}: {exc})")
            return
        report.case(endpoint, status)
        if status >= 500:
            report.fail("5xx", f"{where}: {status} {body[:300]!r}")
        elif isinstance(headers, bytes) and status < 300:
            report.fail("bad_answer", f"{where}: {status} without a valid credential")
        elif len(str(url)) - len(self.url) > LINE_LIMIT - 100 and status == 400 and \
                content_type == "text/plain":
            report.outcomes[f"{target.label}refused by the HTTP parser (over the line limit)"] += 1
        elif status >= 400:
            report.outcomes[f"{endpoint} refused"] += 1
            report.code(_error_code(body, content_type), where)
        elif 300 <= status < 400:
            report.outcomes[f"{endpoint} redirected"] += 1
            if not location.startswith(redirects):
                report.fail("bad_answer", f"{where}: {status} to {location!r}")
        else:
            report.outcomes[f"{endpoint} answered"] += 1
            problem = _check_answer(target, endpoint.removeprefix(target.label), body,
                                    content_type, wanted if kind == "none" else "")
            if problem:
                report.fail("bad_answer", f"{where}: {problem}")


async def send_raw(method: str, url: URL, header: bytes) -> tuple[int, bytes, str, str]:
    """``method url`` with one raw header line, on a connection of its own (HTTP/1.0,
    so the answer is not chunked): status, body, content type and Location."""
    assert url.host is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(b"%s %s HTTP/1.0\r\nHost: %s\r\nContent-Length: 0\r\n%s\r\n\r\n" % (
            method.encode(), url.raw_path_qs.encode("ascii"), url.host.encode(), header))
        answer = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return (int(lines[0].split(" ", 2)[1]), body,
            fields.get("content-type", "").split(";")[0], fields.get("location", ""))


def _set(params: Params, name: bytes, value: bytes | str) -> Params:
    out = [(k, value if k == name else v) for k, v in params]
    return out if any(k == name for k, _ in out) else [*out, (name, value)]


def _json_body(params: Params) -> bytes:
    """The search as a JSON object; when a value is not text (bad UTF-8), the bytes as
    they are, which are not JSON either."""
    try:
        return json.dumps({key.decode(): value if isinstance(value, str) else value.decode()
                           for key, value in params}).encode()
    except UnicodeDecodeError:
        return _encode(params).encode()


def _encode(params: Params) -> str:
    """Percent-encode every byte but the unreserved ones; a str value goes as it is
    (``%zz``: a broken escape the hub must cope with)."""
    return "&".join(quote_from_bytes(key, safe="") + "=" + (
        value if isinstance(value, str) else quote_from_bytes(value, safe=""))
        for key, value in params)


def _error_code(body: bytes, content_type: str) -> str | None:
    if content_type == "application/json":
        try:
            code = json.loads(body)["error"]["code"]
            return code if isinstance(code, str) else None
        except (ValueError, KeyError, TypeError):
            return None
    found = _DATA_CODE.search(body.decode(errors="replace"))
    return found.group(1) if found else None


def _check_answer(target: Target, endpoint: str, body: bytes, content_type: str,
                  wanted: str) -> str | None:
    """What is wrong with an accepted request's answer, or None."""
    if endpoint.startswith("page_"):
        text = body.decode(errors="replace")
        if content_type != "text/html":
            return f"a page as {content_type}"
        heading = "Find a child" if endpoint == "page_search" else "<h1"  # it has a class
        return None if heading in text else f"no {heading!r} in the page"
    if content_type != "application/json":
        return f"an API answer as {content_type}"
    try:
        answer: Any = json.loads(body)
    except ValueError:
        return "an API answer that is not JSON"
    if endpoint == "api_child":
        if not isinstance(answer, dict) or not isinstance(answer.get(target.child_list), list):
            return f"a child view without {target.child_list}: {str(answer)[:200]}"
        if wanted and answer.get(target.id_field) != wanted:
            return f"asked for {wanted}, shown {answer.get(target.id_field)}"
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        return f"a search answer without results: {str(answer)[:200]}"
    for hit in answer["results"]:
        for name, kind in target.hit.items():
            if not isinstance(hit, dict) or not isinstance(hit.get(name), kind):
                return f"a hit without a well-formed {name}: {str(hit)[:200]}"
        try:
            date.fromisoformat(hit["dob"])
        except ValueError:
            return f"a hit's dob is not a date: {hit['dob']!r}"
        if not 0 <= hit["confidence"] <= 1:
            return f"a hit's confidence is {hit['confidence']}"
    if wanted and wanted not in {h[target.id_field] for h in answer["results"]}:
        return f"the unmutated query did not find {wanted}"
    return None
