"""Practitioners searching the hub over HTTP: ``concurrency`` clients, each sending
``GET /v1/search`` (a purpose, a family name and a date of birth from the feeds) one
after another, and every tenth time opening a child found, until stopped. Latency
of every answer and every status are kept; a refused connection counts as ``0``."""

from __future__ import annotations

import asyncio
import csv
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp


def queries_from(feeds: Path, limit: int = 5000) -> list[dict[str, str]]:
    """Search parameters of children in the health feeds (name and date of birth)."""
    out = []
    for path in sorted(feeds.glob("*/health.csv")):
        with path.open(newline="") as fh:
            for row in itertools.islice(csv.DictReader(fh), limit):
                out.append({"family_name": row["family_name"], "dob": row["dob"]})
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Searchers:
    urls: list[str]
    headers: dict[str, str]
    queries: list[dict[str, str]]
    concurrency: int = 4
    seed: int = 0
    pause: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.get_running_loop().create_task(self._client(i))
                       for i in range(self.concurrency)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    async def _client(self, index: int) -> None:
        rng = random.Random(f"{self.seed}:search:{index}")
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(headers=self.headers, timeout=timeout) as http:
            for n in itertools.count():
                url = self.urls[(index + n) % len(self.urls)]
                params = rng.choice(self.queries) | {"purpose": "soak test enquiry"}
                found = await self._get(http, f"{url}/v1/search", params)
                if found and n % 10 == 0 and found.get("results"):
                    child = found["results"][0]["national_id"]
                    await self._get(http, f"{url}/v1/children/{child}",
                                    {"purpose": "soak test enquiry"})
                if self.pause:
                    await asyncio.sleep(self.pause)

    async def _get(self, http: aiohttp.ClientSession, url: str,
                   params: dict[str, str]) -> dict | None:
        started = time.perf_counter()
        try:
            async with http.get(url, params=params) as resp:
                body = await resp.json() if resp.status == 200 else None
                self.statuses[resp.status] += 1
                if resp.status == 200:
                    self.latencies.append(time.perf_counter() - started)
                return body
        except (aiohttp.ClientError, TimeoutError):
            self.statuses[0] += 1
            await asyncio.sleep(0.2)
            return None
