"""The soak's fuzz phase: ``national-hub serve`` and a council's ``local-node serve`` on
a PostgreSQL of their own, then ``batch_cases`` mutated batches (``fuzz_batch``) from
one council and ``search_cases`` mutated searches and child views (``fuzz_search``)
from a practitioner at the hub, and ``node_cases`` at the node (``fuzz_node``), over
HTTP. Rate limits are off for the fuzz's callers, so every case reaches the code it
aims at rather than a 429.

The hub's searches start from the children it holds once the batches are resolved:
the sample children a second council publishes cleanly, and whatever the batch fuzz
left applied (and the node's, which its publisher sends). The node's start from its
index: the sample children, loaded with ``local-node ingest``, one of them merged
with a second record of it (its old id redirects). Both server processes
must still be up at the end.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg

from bench.chaos import fuzz_node, reaper
from bench.chaos.federation import Federation
from bench.chaos.fuzz import FuzzReport
from bench.chaos.fuzz_batch import BatchFuzz, send_batch
from bench.chaos.fuzz_search import SearchFuzz, known_children, sample_batch
from bench.chaos.postgres import KillablePostgres
from national_hub.services.councils import CouncilService
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import keys

FUZZED, SAMPLE, NODE = "E10000011", "E06000020", "E10000032"
_NO_LIMITS = {"RATE_LIMITS__PER_USER": "0", "RATE_LIMITS__PER_COUNCIL": "0"}


async def fuzz_run(seed: int, batch_cases: int, search_cases: int, node_cases: int,
                   say: Callable[[str], None] = print) -> FuzzReport:
    say(f"fuzz run: seed {seed}, {batch_cases} batches and {search_cases} searches "
        f"against national-hub serve, {node_cases} searches against local-node serve")
    report = FuzzReport(seed)
    with tempfile.TemporaryDirectory(prefix="signpost-fuzz-") as tmp:
        reaper.track_dir(Path(tmp))
        pg = await asyncio.to_thread(KillablePostgres)
        fed = Federation(pg, Path(tmp), [NODE], hubs=1, seed=seed, say=say,
                         hub_env_extra={f"NATIONAL_HUB__{k}": v for k, v in _NO_LIMITS.items()})
        try:
            await fed.setup()
            council_keys = {code: keys.generate() for code in (FUZZED, SAMPLE)}
            async with asyncpg.create_pool(fed.hub_db, min_size=1, max_size=2) as pool:
                service = CouncilService(pool, CouncilStore(), HeartbeatStore())
                for code, key in council_keys.items():
                    await service.enrol(code, code, keys.public_pem(key.public_key()))
                await fed.start()  # the node's settings name the hub from here on
                for feed, text in (("services", fuzz_node.sample_feed()),
                                   ("education", fuzz_node.MERGE_FEED)):
                    (Path(tmp) / f"node-{feed}.csv").write_text(text, encoding="utf-8")
                    await fed.ingest(NODE, feed, Path(tmp) / f"node-{feed}.csv", limit=120)
                node_url = await fed.serve(NODE, {f"LOCAL_NODE__{k}": v
                                                  for k, v in _NO_LIMITS.items()})
                url = fed.hub_urls[0]
                hub_public = keys.load_public_key(
                    keys.public_path_for(Path(tmp) / "hub" / "hub_key.pem").read_bytes())
                async with aiohttp.ClientSession() as http:
                    status, data = await send_batch(http, url, SAMPLE, council_keys[SAMPLE],
                                                    sample_batch(SAMPLE, council_keys[SAMPLE]))
                if status != 200:
                    raise RuntimeError(f"the sample batch was refused: {status} {data[:300]!r}")
                report += await BatchFuzz(url, pool, FUZZED, council_keys[FUZZED], hub_public,
                                          seed).run(batch_cases)
                deadline = time.monotonic() + 300
                while not await fed.synced():  # every record resolved: ids that stay put
                    if time.monotonic() > deadline:
                        raise RuntimeError("the hub did not resolve the fuzz's records")
                    await asyncio.sleep(0.5)
                known = await known_children(pool)
                report += await SearchFuzz(url, await fed.practitioner_headers(), known,
                                           seed).run(search_cases)
            node_db = fed.nodes[NODE].database_url
            async with asyncpg.create_pool(node_db, min_size=1, max_size=2) as pool:
                await fuzz_node.merge_reviewed(pool)  # a merged child, whose id redirects
                known = await fuzz_node.known_children(pool)
            report += await SearchFuzz(node_url, await fed.practitioner_headers(node_db),
                                       known, seed, fuzz_node.NODE).run(node_cases)
            for name, process in fed.processes().items():
                if name.startswith(("hub-", "serve-")) and not process.alive():
                    report.fail("bad_answer", f"{name} exited during the fuzz")
        finally:
            await fed.close()
            await asyncio.to_thread(pg.close)
    for line in report.lines():
        say(line)
    for problem in report.problems:
        say(f"  PROBLEM {problem}")
    return report
