"""Training the matching model from the records the hub holds (``national-hub model train``).

u by random sampling of record pairs, m by EM in sessions on candidate pairs (pairs
sharing a blocking key, as resolution scores them), then the prior by EM over every
pair of the hub's records, never below the one the hub measures (NHS numbers, or exact
names): :func:`protocol.matching.train`. Pairs a hard rule forbids (different NHS
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

import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import numpy as np

from national_hub.services.linking import (
    MAX_PRIOR,
    RESOLUTION_BLOCK_LIMIT,
    identity_of,
    measured_prior,
    with_prior,
)
from national_hub.storage.models import ModelStore, StoredModel
from national_hub.storage.resolution import ResolutionStore
from protocol.errors import ConflictError, ErrorCode
from protocol.matching import DEFAULT_MODEL, Model
from protocol.matching.bulk import Columns
from protocol.matching.bulk import random_pairs as draw_random_pairs
from protocol.matching.bulk_score import PairScores, decision_counts
from protocol.matching.training import EM_ITERATIONS, level_weights, train_columns

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
                    candidate_pairs: int = CANDIDATE_PAIRS, iterations: int = EM_ITERATIONS,
                    seed: int | None = None, progress: Progress | None = None) -> StoredModel:
        """Estimate a model from the live records and store it as the newest version.
        Starts from the newest stored model (or the default) for the levels the data
        cannot measure."""
        say = progress or (lambda _: None)
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        async with self.pool.acquire() as conn:
            newest = await self.models.latest_version(conn)
            stored = await self.models.get(conn, newest) if newest else None
            start = Model.from_dict(stored.parameters) if stored else DEFAULT_MODEL
            sample = [identity_of(r) for r in
                      await self.resolution.random_identities(conn, SAMPLED_RECORDS,
                                                              seed)]
            if len(sample) < MIN_RECORDS:
                raise ConflictError(f"the hub holds {len(sample)} live records; training "
                                    f"needs at least {MIN_RECORDS}",
                                    code=ErrorCode.TOO_FEW_RECORDS)
            say(f"sampled {len(sample):,} records")
            pairs, every_pair = await self.resolution.random_candidate_pairs(
                conn, RESOLUTION_BLOCK_LIMIT, candidate_pairs, seed)
            wanted = sorted({rk for pair in pairs for rk in pair})
            found = {(r["council_code"], r["local_id"]): identity_of(r)
                     for r in await self.resolution.identities(conn, wanted)}
            version_number = await self.models.count(conn) + 1
            rate = await self.resolution.partner_rate(conn)
            prior = measured_prior(start, rate)
        held = sorted(found)  # not the order the database returned them in
        index = {rk: n for n, rk in enumerate(held)}
        compared = [(index[a], index[b]) for a, b in pairs if a in found and b in found]
        version = f"em-{version_number}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        # Every comparison in bulk (protocol.matching.bulk), equal to compare_all's
        # pair for pair: a pair at a time took 80-140 s at 45,000 records. The prior by
        # EM too, never below the measured one: where no record holds an NHS number,
        # exact names and date of birth miss every partner a typo hides.
        run = train_columns(
            Columns.of(sample), draw_random_pairs(len(sample), random_pairs, rng),
            Columns.of([found[rk] for rk in held]),
            (np.array([x for x, _ in compared], dtype=np.int64),
             np.array([y for _, y in compared], dtype=np.int64)),
            start, version, deciding=lambda m: with_prior(m, rate), say=say,
            prior=prior, records=rate[0], scale=every_pair / len(pairs) if pairs else 1.0,
            max_prior=MAX_PRIOR, iterations=iterations)
        model, summary = run.model, run.summary
        everything = len(pairs) == every_pair  # the sample is every candidate pair
        before = decisions(run.start_scores, rate[0], everything)
        after = decisions(run.trained_scores, rate[0], everything)
        say(_quality_line(len(compared), before, after))
        quality = {"pairs": len(compared), "all_candidate_pairs": everything,
                   "start": before, "trained": after, "weights": level_weights(model)}
        details = {**summary.to_dict(), "records": rate[0],
                   "records_sampled": len(sample), "started_from":
                   start.version, "prior": prior, "quality": quality,
                   "seconds": round(time.perf_counter() - started, 2)}
        async with self.pool.acquire() as conn:
            return await self.models.add(conn, model.version, model.to_dict(), details)

    async def list(self) -> list[StoredModel]:
        async with self.pool.acquire() as conn:
            return await self.models.list(conn)


def decisions(scores: PairScores, records: int, everything: bool) -> dict[str, object]:
    """How the pairs decide (:func:`~protocol.matching.bulk_score.decision_counts`;
    names not adjusted by frequency); with every candidate pair scored, the reviews per
    10,000 of the hub's ``records`` too."""
    out = decision_counts(scores)
    if everything and records:
        out["review_per_10k_records"] = round(out["review"] * 10_000 / records, 1)
    return out


def _quality_line(pairs: int, start: dict[str, object], trained: dict[str, object]) -> str:
    per = trained.get("review_per_10k_records")
    return (f"of {pairs:,} candidate pairs: link {start['link']:,} -> "
            f"{trained['link']:,}, review {start['review']:,} -> {trained['review']:,}"
            + (f" ({per} per 10,000 records)" if per is not None else "")
            + " (starting model -> trained model)")
