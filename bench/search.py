"""Practitioner search at a million children, 32 concurrent clients (docs/design.md §10).

Loads a hub with ``--children`` synthetic children (the generator's truth: one
national child per person, a mover's two council records sharing it), then runs the
real hub (``national-hub serve``, ``--hubs`` processes on one database) and 32
clients over HTTP with bearer tokens, each a practitioner searching with a purpose:
exact names, nicknames, typos, day–month swaps, a birth year keyed wrong (since
2026-12-07: figures before then were measured without it), NHS numbers, names with a
postcode.
Every search is audited by the hub before it answers. Prints p50/p95/p99 latency,
searches/s, how often the child searched for came first, and the audit entries
written (target: p99 < 50 ms, ≥ 1,000 searches/s).

Loading goes round the batch endpoint (a million signed records would take the
publish benchmark's time again): the rows are what batch intake writes — the exact
record bytes and columns of ``RecordStore``, blocking keys from
``protocol.matching.blocking_keys`` (both tables of ``national_hub.storage.key_sets``),
ids from ``new_national_id`` — copied in with COPY, ``record_keys``' primary key
rebuilt afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import aiohttp
import asyncpg
import click
from tqdm import tqdm

import synthetic
from bench.db import fetchval
from bench.publish import PeakMemory
from national_hub.app import PACKAGE as HUB_PACKAGE
from national_hub.services.councils import CouncilService
from national_hub.services.linking import new_national_id
from national_hub.storage import key_sets
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import encoding, keys
from protocol.matching import UK_DIMINUTIVES, IdentityFields, blocking_keys
from protocol.records import ChildRecord, Involvement
from server_common import database, embedded_pg
from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from server_common.readiness import wait_ready

# Five councils the generator knows, five it gives generic areas; loaded two at a time
# (movers go between the two of a round).
COUNCILS = ["E10000011", "E06000020", "E10000032", "E06000051", "E06000043",
            "E08000025", "E08000035", "E06000018", "E10000019", "E06000023"]
BASE_PORT = 8491
RECORD_COLUMNS = ("council_code", "local_id", "version", "record", "digest", "batch_seq",
                  "given_name", "family_name", "dob", "sex", "postcode", "nhs_number", "upn",
                  "shielded", "national_id", "link_status", "other_given_names",
                  "former_family_names", "address_line")
NICKNAMES = {formal.lower(): short for short, formals in UK_DIMINUTIVES.items()
             for formal in formals}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _involvements(presence: synthetic.Presence) -> tuple[Involvement, ...]:
    found = []
    if presence.school is not None:
        s = presence.school
        found.append(Involvement("school", s.urn, s.name, s.phone,
                                 start_date=presence.school_start, end_date=presence.school_end))
    if presence.practice is not None:
        p = presence.practice
        found.append(Involvement("gp", p.ods_code, p.name, p.phone,
                                 start_date=presence.registered_from,
                                 end_date=presence.registered_to))
    for inv in presence.services:
        if inv.sensitive and not inv.consent:
            continue  # a node never publishes it
        kind = inv.service.kind
        found.append(Involvement(
            kind.service_type, inv.service.organisation_code, inv.service.name,
            professional_name=inv.professional.name, professional_role=kind.role,
            professional_phone=inv.professional.phone,
            professional_email=inv.professional.email, start_date=inv.start,
            end_date=inv.end, lead_professional=inv.lead, caf_done=inv.caf,
            sensitive=inv.sensitive, consent=bool(inv.consent)))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Query:
    params: dict[str, str]
    national_id: str


def _in_year(day: date, year: int) -> date | None:
    """The same day and month in another year; None for 29 February in a year without."""
    try:
        return day.replace(year=year)
    except ValueError:
        return None


def _queries(rng: random.Random, record: ChildRecord, national_id: str) -> Query:
    """One practitioner's search for this child, with the noise practitioners bring."""
    # the generated population is complete: every record has its names and birth date
    assert record.dob and record.given_name and record.family_name, record.local_id
    dob = record.dob.isoformat()
    given, family = record.given_name, record.family_name
    kind = rng.randrange(7)
    if kind == 6:  # the last digit of the birth year keyed wrong (a date that can be)
        decade = record.dob.year - record.dob.year % 10
        days = [day for y in range(decade, decade + 10) if y != record.dob.year
                and (day := _in_year(record.dob, y)) is not None and day <= date.today()]
        if days:
            dob = rng.choice(days).isoformat()
    elif kind == 1 and given.lower() in NICKNAMES:
        given = NICKNAMES[given.lower()]
    elif kind == 2 and len(family) > 3:
        i = rng.randrange(1, len(family) - 2)
        family = family[:i] + family[i + 1] + family[i] + family[i + 2:]
    elif kind == 3 and record.dob.day <= 12 and record.dob.day != record.dob.month:
        dob = date(record.dob.year, record.dob.day, record.dob.month).isoformat()
    elif kind == 4 and record.nhs_number:
        return Query({"nhs_number": record.nhs_number}, national_id)
    elif kind == 5 and record.postcode and not record.shielded:
        return Query({"given_name": given, "dob": dob, "postcode": record.postcode},
                     national_id)
    return Query({"given_name": given, "family_name": family, "dob": dob}, national_id)


class Loader:
    """Builds the hub's rows from the generator, round by round, and copies them in.
    Local ids run on across rounds (and across ``bulk_load``s), so one council may be
    loaded in many rounds."""

    def __init__(self, conn: asyncpg.Connection, seed: int) -> None:
        self.conn = conn
        self.rng = random.Random(seed)
        self.nhs_seen: set[str] = set()
        self.queries: list[Query] = []
        self.records = self.keys = self.children = 0

    def _rows(self, population: synthetic.Population, only: frozenset[str] | None
              ) -> tuple[list[tuple[object, ...]], dict[str, dict[str, set[str]]], list[str]]:
        records: list[tuple[object, ...]] = []
        keys_by_council: dict[str, dict[str, set[str]]] = {}  # council → local_id → keys
        national_ids: list[str] = []
        for person in population.persons:
            presences = [p for p in person.presences if only is None or p.council in only]
            if not presences:
                continue
            national_id = new_national_id()
            national_ids.append(national_id)
            nhs: str | None = person.nhs_number
            if person.nhs_number in self.nhs_seen:  # rounds are generated apart: keep
                nhs = None                            # numbers unique
            else:
                self.nhs_seen.add(person.nhs_number)
            status = "linked" if len(presences) > 1 else "single"
            for presence in presences:
                local_id = f"L{self.records + len(records):08d}"
                record = ChildRecord(
                    local_id=local_id, given_name=person.given_name,
                    family_name=presence.family_name, dob=person.dob, sex=person.sex,
                    other_given_names=person.other_given_names,
                    former_family_names=((presence.former_family_name,)
                                         if presence.former_family_name else ()),
                    address_line=presence.address_line, postcode=presence.postcode,
                    nhs_number=nhs, upn=presence.upn, shielded=presence.shielded,
                    involvements=_involvements(presence))
                data = encoding.pack(record.to_wire())
                records.append((presence.council, local_id, 1, data, encoding.sha256_hex(data),
                                1, record.given_name, record.family_name, record.dob,
                                record.sex, record.postcode, record.nhs_number, record.upn,
                                record.shielded, national_id, status,
                                record.other_given_names, list(record.former_family_names),
                                record.address_line))
                keys_by_council.setdefault(presence.council, {})[local_id] = blocking_keys(
                    IdentityFields.from_record(record))
                if self.rng.random() < 0.02:
                    self.queries.append(_queries(self.rng, record, national_id))
        return records, keys_by_council, national_ids

    async def load_population(self, population: synthetic.Population,
                              only: frozenset[str] | None = None) -> None:
        """Copy in the population's records (only those in the councils ``only`` names,
        when given); inside ``bulk_load``."""
        records, keys_by_council, national_ids = self._rows(population, only)
        await self.conn.copy_records_to_table(
            "national_children", records=[(n,) for n in national_ids], columns=["national_id"])
        await self.conn.copy_records_to_table("bench_records", records=records,
                                              columns=RECORD_COLUMNS)
        for council, held in keys_by_council.items():
            await key_sets.copy(self.conn, council, held)
        self.records += len(records)
        self.keys += sum(len(ks) for held in keys_by_council.values() for ks in held.values())
        self.children += len(national_ids)

    async def load_round(self, councils: list[str], per_council: int, seed: int) -> None:
        population = synthetic.generate_population(councils, per_council, seed)
        await self.load_population(population)


async def prepare_hub(url: str) -> None:
    """The hub's schema, and the councils the loader's rounds use enrolled."""
    conn = await asyncpg.connect(url)
    try:
        await database.upgrade(conn, HUB_PACKAGE)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    service = CouncilService(pool, CouncilStore(), HeartbeatStore())
    for code in COUNCILS:
        await service.enrol(code, code, keys.public_pem(keys.generate().public_key()))
    await pool.close()


@contextlib.asynccontextmanager
async def bulk_load(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Around ``Loader`` rounds: ``record_keys`` loses its primary key and ``records`` is
    staged in an unlogged table, then both are indexed once at the end (one sort each,
    not 20 million inserts)."""
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = 'record_keys'::regclass AND contype = 'p'")
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'record_keys'"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint"
        " WHERE conrelid = 'record_keys'::regclass)")
    for c in constraints:
        await conn.execute(f"ALTER TABLE record_keys DROP CONSTRAINT {c['conname']}")
    for i in indexes:
        await conn.execute(f"DROP INDEX {i['indexname']}")
    await conn.execute("CREATE UNLOGGED TABLE bench_records (LIKE records INCLUDING DEFAULTS)")
    yield
    started = time.perf_counter()
    click.echo("indexing…")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    cols = ", ".join(RECORD_COLUMNS)
    await conn.execute(
        f"INSERT INTO records ({cols}, fingerprint) SELECT {cols}, record_fingerprint("
        "given_name, family_name, dob, sex, postcode, nhs_number, upn, shielded,"
        " other_given_names, former_family_names, address_line) FROM bench_records")
    await conn.execute("DROP TABLE bench_records")
    for c in constraints:
        await conn.execute(f"ALTER TABLE record_keys ADD CONSTRAINT {c['conname']} "
                           f"{c['def']}")
    for i in indexes:
        await conn.execute(i["indexdef"])
    await conn.execute("ANALYZE")
    click.echo(f"indexed in {time.perf_counter() - started:.0f} s")


async def _load(url: str, children: int, seed: int) -> list[Query]:
    await prepare_hub(url)
    conn = await asyncpg.connect(url)
    try:
        loader = Loader(conn, seed)
        rounds = [COUNCILS[i:i + 2] for i in range(0, len(COUNCILS), 2)]
        per_council = max(1, children // (2 * len(rounds)))
        async with bulk_load(conn):
            with tqdm(total=children, desc="children", unit="child") as bar:
                for n, pair in enumerate(rounds):
                    await loader.load_round(pair, per_council, seed + n)
                    bar.update(2 * per_council)
            click.echo(f"copied {loader.records:,} records, {loader.keys:,} blocking keys")
        return loader.queries
    finally:
        await conn.close()


async def practitioner_tokens(url: str, clients: int, prefix: str = "bench") -> list[str]:
    async with asyncpg.create_pool(url, min_size=1, max_size=2) as pool:
        accounts = AccountService(pool, AccountsConfig())
        tokens = []
        for i in range(clients):
            await accounts.add_user(f"{prefix}{i:02d}", Role.PRACTITIONER, organisation="Bench")
            tokens.append((await accounts.create_token(f"{prefix}{i:02d}"))[0])
        return tokens


def save_queries(path: Path, queries: list[Query]) -> None:
    path.write_text(json.dumps([[q.params, q.national_id] for q in queries]))


def saved_queries(path: Path) -> list[Query]:
    return [Query(params, national_id) for params, national_id in json.loads(path.read_text())]


@dataclass
class Run:
    latencies: list[float]
    errors: dict[int, int]
    first: int  # searches whose first result was the child searched for
    found: int  # searches that listed the child at all
    seconds: float
    # CPU seconds the hub processes and PostgreSQL used in the measured time (None: not
    # measured): what a search costs, whatever else shares the machine
    hub_cpu: float | None = None
    postgres_cpu: float | None = None


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (Linux ``/proc``); gone ones count 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(pg_dir: Path | None) -> list[int]:
    """The embedded PostgreSQL's postmaster in ``pg_dir`` and its children (backends,
    WAL writer…); empty when it is not a local server of ours."""
    try:
        assert pg_dir is not None
        postmaster = int((pg_dir / "postmaster.pid").read_text().split()[0])
        children = [int(p) for p in Path(f"/proc/{postmaster}/task/{postmaster}/children")
                    .read_text().split()]
    except (AssertionError, OSError, ValueError, IndexError):
        return []
    return [postmaster, *children]


async def _clients(urls: list[str], tokens: list[str], queries: list[Query],
                   seconds: float, warmup: float, hub_pids: Sequence[int] = (),
                   pg_dir: Path | None = None) -> Run:
    run = Run([], {}, 0, 0, seconds)
    deadline_warm = time.perf_counter() + warmup
    deadline = deadline_warm + seconds
    connector = aiohttp.TCPConnector(limit=len(tokens))

    async def cpu_meter() -> None:
        await asyncio.sleep(warmup)
        pg = postgres_pids(pg_dir)
        hub0, pg0 = cpu_seconds(list(hub_pids)), cpu_seconds(pg)
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        run.hub_cpu = cpu_seconds(list(hub_pids)) - hub0 if hub_pids else None
        run.postgres_cpu = cpu_seconds(pg) - pg0 if pg else None

    async def client(n: int, http: aiohttp.ClientSession) -> None:
        rng = random.Random(n)
        headers = {"Authorization": f"Bearer {tokens[n]}"}
        while (now := time.perf_counter()) < deadline:
            query = rng.choice(queries)
            started = time.perf_counter()
            async with http.get(f"{urls[n % len(urls)]}/v1/search", headers=headers,
                                params={"purpose": "bench: section 17 enquiry",
                                        **query.params}) as resp:
                body = await resp.json() if resp.status == 200 else None
            elapsed = time.perf_counter() - started
            if now < deadline_warm:
                continue
            if body is None:
                run.errors[resp.status] = run.errors.get(resp.status, 0) + 1
                continue
            run.latencies.append(elapsed)
            ids = [r["national_id"] for r in body["results"]]
            run.first += bool(ids) and ids[0] == query.national_id
            run.found += query.national_id in ids

    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(cpu_meter(), *(client(n, http) for n in range(len(tokens))))
    return run


def ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] * 1000


@dataclass(frozen=True, slots=True)
class Measured:
    run: Run
    audited: int  # audit entries written (warm-up included)
    peak_rss: int  # the largest hub process's peak resident memory, bytes


def search_run(url: str, data_dir: Path, tokens: list[str], queries: list[Query], *,
               hubs: int, seconds: float, warmup: float, base_port: int = BASE_PORT,
               hub_key_file: Path | None = None, pg_dir: Path | None = None) -> Measured:
    """Start ``hubs`` fresh hub processes on the database (logs in ``data_dir``), search
    through them with one client per token for ``warmup`` + ``seconds``, stop them.
    ``pg_dir``: the embedded PostgreSQL's data, to count its CPU time too."""
    env = dict(os.environ) | {
        "NATIONAL_HUB__DATABASE__URL": url,
        "NATIONAL_HUB__HUB__KEY_FILE": str(hub_key_file or data_dir / "hub" / "hub_key.pem"),
        "NATIONAL_HUB__DATABASE__POOL_MAX": str(max(4, len(tokens) // hubs + 2)),
        # 32 clients searching flat out are a load test, not 32 people: no per-user limit
        "NATIONAL_HUB__RATE_LIMITS__PER_USER": "0",
    }
    servers, urls, memory = [], [], []
    try:
        for n in range(hubs):
            port = base_port + n
            servers.append(subprocess.Popen(
                [_bin("national-hub"), "serve"], env=env | {
                    "NATIONAL_HUB__SERVER__PORT": str(port)},
                stderr=(data_dir / f"hub-{n}.log").open("wb"), stdout=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}")
        for u in urls:
            wait_ready(u, timeout=120)
        for proc in servers:
            memory.append(PeakMemory(proc.pid))
            memory[-1].start()
        audited_before = asyncio.run(_audit_size(url))
        run = asyncio.run(_clients(urls, tokens, queries, seconds, warmup,
                                   [p.pid for p in servers], pg_dir))
        audited = asyncio.run(_audit_size(url)) - audited_before
    finally:
        for m in memory:
            m.running = False
        for proc in servers:
            proc.terminate()
        for proc in servers:
            proc.wait(timeout=30)
    if not run.latencies:
        raise click.ClickException(f"no search succeeded: {run.errors}; see {data_dir}/hub-*.log")
    return Measured(run, audited, max(m.peak for m in memory))


def latency_line(latencies: list[float]) -> str:
    return (f"p50 {ms(latencies, 0.5):.1f} ms, p95 {ms(latencies, 0.95):.1f} ms, "
            f"p99 {ms(latencies, 0.99):.1f} ms")


@click.command(help=__doc__)
@click.option("--children", default=1_000_000, show_default=True)
@click.option("--clients", default=32, show_default=True)
@click.option("--hubs", default=2, show_default=True,
              help="Hub processes on the one database (clients spread over them).")
@click.option("--seconds", default=30.0, show_default=True, help="Measured time.")
@click.option("--warmup", default=5.0, show_default=True)
@click.option("--seed", default=11, show_default=True)
@click.option("--data-dir", default=".data/bench-search", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--reuse", is_flag=True,
              help="Search the hub a previous run loaded in --data-dir (its --children "
                   "and --seed), if there is one, instead of loading it again: to compare "
                   "code on the same database.")
def main(children: int, clients: int, hubs: int, seconds: float, warmup: float, seed: int,
         data_dir: Path, reuse: bool) -> None:
    saved = data_dir / "queries.json"
    reusing = reuse and saved.exists()
    if data_dir.exists() and not reusing:
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    base = embedded_pg.start(data_dir / "pg")
    url = asyncio.run(embedded_pg.ensure_database(base, "bench_search_hub"))
    started = time.perf_counter()
    if reusing:
        queries = saved_queries(saved)
        click.echo(f"reusing the hub loaded in {data_dir}; {len(queries):,} distinct "
                   "searches to draw from")
    else:
        queries = asyncio.run(_load(url, children, seed))
        save_queries(saved, queries)
        click.echo(f"loaded the hub in {time.perf_counter() - started:.0f} s; "
                   f"{len(queries):,} distinct searches to draw from")
    tokens = asyncio.run(practitioner_tokens(url, clients, prefix=f"bench{int(time.time())}-"))
    measured = search_run(url, data_dir, tokens, queries, hubs=hubs, seconds=seconds,
                          warmup=warmup, pg_dir=data_dir / "pg")
    run = measured.run
    done = len(run.latencies)
    click.echo(f"\n== practitioner search, {children:,} children, {clients} clients, "
               f"{hubs} hub process(es) (target p99 < 50 ms, ≥ 1,000 searches/s)")
    click.echo(f"searches       {done:,} in {seconds:.0f} s (after {warmup:.0f} s warm-up), "
               f"errors {run.errors or 0}")
    click.echo(f"throughput     {done / seconds:,.0f} searches/s")
    click.echo(f"latency        {latency_line(run.latencies)}")
    click.echo(f"quality        child first {run.first / done:.1%}, listed {run.found / done:.1%}")
    click.echo(f"audited        {measured.audited:,} entries written (warm-up included)")
    if run.hub_cpu is not None and run.postgres_cpu is not None:
        click.echo(f"CPU per search hub {1000 * run.hub_cpu / done:.2f} ms, PostgreSQL "
                   f"{1000 * run.postgres_cpu / done:.2f} ms (what a search costs, however "
                   "busy the machine)")


async def _audit_size(url: str) -> int:
    return int(await fetchval(url, "SELECT next_seq FROM audit_head"))


if __name__ == "__main__":
    main()
