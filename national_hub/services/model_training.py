"""Training the matching model from the records the hub holds (``national-hub model train``).

u by random sampling of record pairs, m by EM on candidate pairs (pairs sharing a
blocking key, as resolution scores them) with the prior the hub measures from NHS
numbers: :func:`protocol.matching.train`. Pairs a hard rule forbids (different NHS
numbers or UPNs, twins) are left out: they are never one child, and counting them
would teach the model what twins look like. The
result is stored as a new version; every Linker takes it up at its next batch, and
explanations and reviews name it. Records are not re-linked here: ``national-hub
links resolve COUNCIL`` does that with the new model.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from national_hub.services.linking import RESOLUTION_BLOCK_LIMIT, identity_of, with_prior
from national_hub.storage.models import ModelStore, StoredModel
from national_hub.storage.resolution import ResolutionStore
from protocol.errors import ConflictError, ErrorCode
from protocol.matching import (
    DEFAULT_MODEL,
    IdentityFields,
    Model,
    compare_all,
    hard_rules,
    train,
)

RANDOM_PAIRS = 300_000     # as Splink's estimate_u_using_random_sampling samples ~1e6
CANDIDATE_PAIRS = 300_000  # for EM; a sample is as good as all of them and bounded
MIN_RECORDS = 100          # fewer records say nothing a default does not say better
SAMPLED_RECORDS = 50_000   # random pairs are drawn among this many random records

Progress = Callable[[str], None]


class ModelTrainer:
    def __init__(self, pool: asyncpg.Pool, resolution: ResolutionStore | None = None,
                 models: ModelStore | None = None) -> None:
        self.pool = pool
        self.resolution = resolution or ResolutionStore()
        self.models = models or ModelStore()

    async def train(self, *, random_pairs: int = RANDOM_PAIRS,
                    candidate_pairs: int = CANDIDATE_PAIRS, iterations: int = 1,
                    seed: int | None = None, progress: Progress | None = None) -> StoredModel:
        """Estimate a model from the live records and store it as the newest version.
        Starts from the newest stored model (or the default) for the levels the data
        cannot measure."""
        say = progress or (lambda _: None)
        started = time.perf_counter()
        rng = random.Random(seed)
        async with self.pool.acquire() as conn:
            newest = await self.models.latest_version(conn)
            stored = await self.models.get(conn, newest) if newest else None
            start = Model.from_dict(stored.parameters) if stored else DEFAULT_MODEL
            sample = [identity_of(r) for r in
                      await self.resolution.random_identities(conn, SAMPLED_RECORDS)]
            if len(sample) < MIN_RECORDS:
                raise ConflictError(f"the hub holds {len(sample)} live records; training "
                                    f"needs at least {MIN_RECORDS}",
                                    code=ErrorCode.TOO_FEW_RECORDS)
            say(f"sampled {len(sample):,} records")
            pairs = await self.resolution.random_candidate_pairs(conn, RESOLUTION_BLOCK_LIMIT,
                                                                 candidate_pairs)
            wanted = sorted({rk for pair in pairs for rk in pair})
            found = {(r["council_code"], r["local_id"]): identity_of(r)
                     for r in await self.resolution.identities(conn, wanted)}
            version_number = await self.models.count(conn) + 1
            prior = with_prior(start, await self.resolution.partner_rate(conn)).prior
        random_vectors = [compare_all(*pick) for pick in _random_pairs(sample, random_pairs, rng)]
        say(f"compared {len(random_vectors):,} random pairs")
        candidate_vectors = []
        for a, b in pairs:
            if a in found and b in found:
                vector = compare_all(found[a], found[b])
                if hard_rules(found[a], found[b], vector)[0] is None:
                    candidate_vectors.append(vector)
        say(f"compared {len(pairs):,} candidate pairs, {len(candidate_vectors):,} not "
            "vetoed by a hard rule")
        version = f"em-{version_number}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        model, summary = train(random_vectors, candidate_vectors, start, version,
                               prior=prior, iterations=iterations)
        details = {**summary.to_dict(), "records_sampled": len(sample), "started_from":
                   start.version, "prior": prior,
                   "seconds": round(time.perf_counter() - started, 2)}
        async with self.pool.acquire() as conn:
            return await self.models.add(conn, model.version, model.to_dict(), details)

    async def list(self) -> list[StoredModel]:
        async with self.pool.acquire() as conn:
            return await self.models.list(conn)


def _random_pairs(records: list[IdentityFields], n: int,
                  rng: random.Random) -> list[tuple[IdentityFields, IdentityFields]]:
    """``n`` pairs of two different records, each drawn uniformly."""
    size = len(records)
    out = []
    for _ in range(n):
        i = rng.randrange(size)
        j = rng.randrange(size - 1)
        out.append((records[i], records[j + (j >= i)]))
    return out

