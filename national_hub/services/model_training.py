"""Training the matching model from the records the hub holds (``national-hub model train``).

u by random sampling of record pairs, m by EM on candidate pairs (pairs sharing a
blocking key, as resolution scores them) with the prior the hub measures from NHS
numbers: :func:`protocol.matching.train`. Pairs a hard rule forbids (different NHS
numbers or UPNs, twins) are left out: they are never one child, and counting them
would teach the model what twins look like. The
result is stored as a new version; every Linker takes it up at its next batch, and
explanations and reviews name it. Records are not re-linked here: ``national-hub
links resolve COUNCIL`` does that with the new model.

The stored summary (printed by ``model train``) says what the new model would do: how
the sampled candidate pairs decide under the starting model and under the new one
(link, review, new child, and how many a hard rule vetoed or capped), with the reviews
scaled to every 10,000 live records when the sample is every candidate pair, and each
level's match weight, so an operator sees a model that would flood the review queue
or link far more than the last before re-linking anything with it.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
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
    score,
    train,
)
from protocol.matching.training import level_weights

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
            rate = await self.resolution.partner_rate(conn)
            prior = with_prior(start, rate).prior
        random_vectors = [compare_all(*pick) for pick in _random_pairs(sample, random_pairs, rng)]
        say(f"compared {len(random_vectors):,} random pairs")
        candidate_vectors = []
        compared = [(found[a], found[b]) for a, b in pairs if a in found and b in found]
        for x, y in compared:
            vector = compare_all(x, y)
            if hard_rules(x, y, vector)[0] is None:
                candidate_vectors.append(vector)
        say(f"compared {len(pairs):,} candidate pairs, {len(candidate_vectors):,} not "
            "vetoed by a hard rule")
        version = f"em-{version_number}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        model, summary = train(random_vectors, candidate_vectors, start, version,
                               prior=prior, iterations=iterations)
        everything = len(pairs) < candidate_pairs  # the sample is every candidate pair
        before = decisions(compared, with_prior(start, rate), rate[0], everything)
        after = decisions(compared, with_prior(model, rate), rate[0], everything)
        say(_quality_line(len(compared), before, after))
        quality = {"pairs": len(compared), "all_candidate_pairs": everything,
                   "start": before, "trained": after, "weights": level_weights(model)}
        details = {**summary.to_dict(), "records_sampled": len(sample), "started_from":
                   start.version, "prior": prior, "quality": quality,
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


def decisions(pairs: Sequence[tuple[IdentityFields, IdentityFields]], model: Model,
              records: int, everything: bool) -> dict[str, object]:
    """How the pairs decide under ``model`` (hard rules included; names not adjusted by
    frequency): link, review, new, and the rules hit. With every candidate pair in
    ``pairs``, the reviews per 10,000 of the hub's ``records`` too."""
    counts: Counter[str] = Counter()
    for a, b in pairs:
        explained = score(a, b, model)
        counts[explained.decision().value] += 1
        if explained.veto or explained.cap:
            counts[f"rule:{explained.veto or explained.cap}"] += 1
    out: dict[str, object] = {"link": counts["link"], "review": counts["review"],
                              "new": counts["new"],
                              "rules": {k[5:]: v for k, v in sorted(counts.items())
                                        if k.startswith("rule:")}}
    if everything and records:
        out["review_per_10k_records"] = round(counts["review"] * 10_000 / records, 1)
    return out


def _quality_line(pairs: int, start: dict[str, object], trained: dict[str, object]) -> str:
    per = trained.get("review_per_10k_records")
    return (f"of {pairs:,} candidate pairs: link {start['link']:,} -> "
            f"{trained['link']:,}, review {start['review']:,} -> {trained['review']:,}"
            + (f" ({per} per 10,000 records)" if per is not None else "")
            + " (starting model -> trained model)")
