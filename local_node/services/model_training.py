"""Training the node's matching model from the council's own records (``local-node model
train``), as the hub trains its own (docs/matching-engine.md).

The records are the council's source rows as their feeds gave them (what local matching
compares a new row with). u is measured on pairs of rows drawn at random, m by EM in
sessions on candidate pairs (rows sharing a blocking key); the prior stays the starting
model's, and the summary reports the one the index itself shows (the share of pairs of
rows it placed with one child). Both through
:func:`protocol.matching.train`; pairs a hard rule vetoes (different NHS numbers or UPNs,
twins) are left out. Comparison vectors and decisions come from the bulk engine
(:mod:`protocol.matching.bulk_score`).

The stored summary (printed by ``model train``) says how the candidate pairs decide
under the starting model and under the new one (link, review, new child, the rules hit),
with the reviews per 10,000 children when the sample is every candidate pair, and each
level's match weight. Ingest uses the newest model from its next feed on; children
already placed stay where they are.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import numpy as np

from local_node.services.ingest import keys_for
from local_node.storage.children import ChildStore
from local_node.storage.models import ModelStore, StoredModel
from protocol.errors import ConflictError, ErrorCode
from protocol.matching import DEFAULT_MODEL, IdentityFields, Model
from protocol.matching.blocking import memberships, pairs_within
from protocol.matching.bulk import Columns
from protocol.matching.bulk import random_pairs as draw_random_pairs
from protocol.matching.bulk_score import PairScores, decision_counts
from protocol.matching.training import EM_ITERATIONS, level_weights, train_columns

RANDOM_PAIRS = 100_000     # matching.random_pairs: enough for every level's u at a node
CANDIDATE_PAIRS = 100_000  # for EM: a sample is as good as all of them, and bounded
MIN_ROWS = 100             # fewer rows say nothing a default does not say better
SAMPLED_ROWS = 200_000     # the rows pairs are drawn among (a large council's feeds)
# A key shared by more source rows than this is too common to pair rows by: the
# node's MATCH_BLOCK_LIMIT counts children, and a child has a row in each feed.
TRAINING_BLOCK_LIMIT = 45
MAX_PRIOR = 0.01

Progress = Callable[[str], None]


def identity_fields(identity: dict[str, Any]) -> IdentityFields:
    """A source row's identity (as stored) in the matcher's terms."""
    dob = identity.get("dob")
    former = identity.get("former_family_name")
    return IdentityFields(
        given_name=identity.get("given_name"), family_name=identity.get("family_name"),
        dob=date.fromisoformat(str(dob)) if dob else None, sex=int(identity.get("sex") or 0),
        other_given_names=identity.get("other_given_names"),
        former_family_names=(former,) if former else (),
        postcode=identity.get("postcode"), address_line=identity.get("address_line"),
        nhs_number=identity.get("nhs_number"), upn=identity.get("upn"))


def index_prior(owners: list[str], start: Model) -> float:
    """The chance two rows drawn at random are one child, as the index placed them;
    never below the starting model's."""
    rows = len(owners)
    if rows < 2:
        return start.prior
    same = sum(k * (k - 1) // 2 for k in Counter(owners).values())
    return min(MAX_PRIOR, max(start.prior, same / (rows * (rows - 1) / 2)))


def candidate_pairs(keys: list[frozenset[str]], limit: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """Pairs of rows sharing a key held by 2..TRAINING_BLOCK_LIMIT rows, at most
    ``limit`` drawn at random; and whether that is every such pair."""
    earlier, later = pairs_within(*memberships(keys), TRAINING_BLOCK_LIMIT)
    order = np.lexsort((later, earlier))  # by row, then partner: the order drawn from
    every = np.stack([earlier[order], later[order]], axis=1).reshape(-1, 2)
    everything = len(every) <= limit
    if not everything:
        every = every[rng.choice(len(every), size=limit, replace=False)]
    return every[:, 0], every[:, 1], everything


def decisions(scores: PairScores, children: int, everything: bool) -> dict[str, object]:
    """How the pairs decide (:func:`~protocol.matching.bulk_score.decision_counts`); with
    every candidate pair scored, the reviews per 10,000 children too."""
    out = decision_counts(scores)
    if everything and children:
        out["review_per_10k_children"] = round(out["review"] * 10_000 / children, 1)
    return out


def quality_line(summary: dict[str, Any]) -> str:
    """One line an index team reads: what the new model changes."""
    quality = summary["quality"]
    start, trained = quality["start"], quality["trained"]
    per = trained.get("review_per_10k_children")
    return (f"of {quality['pairs']:,} candidate pairs: link {start['link']:,} -> "
            f"{trained['link']:,}, review {start['review']:,} -> {trained['review']:,}"
            + (f" ({per} per 10,000 children)" if per is not None else "")
            + f" (model {summary['started_from']} -> the new one)")


class NodeModelTrainer:
    def __init__(self, pool: asyncpg.Pool, children: ChildStore, models: ModelStore) -> None:
        self.pool = pool
        self.children = children
        self.models = models

    async def train(self, *, random_pairs: int = RANDOM_PAIRS,
                    candidate_pairs_wanted: int = CANDIDATE_PAIRS,
                    iterations: int = EM_ITERATIONS,
                    seed: int | None = None, progress: Progress | None = None) -> StoredModel:
        """Estimate a model from the council's source rows and store it as the newest
        version; starts from the newest stored model (or the default)."""
        say = progress or (lambda _: None)
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        async with self.pool.acquire() as conn:
            stored = await self.models.latest(conn)
            rows = await self.children.sample_sources(conn, SAMPLED_ROWS, seed)
            children = await self.children.count(conn)
            number = await self.models.count(conn) + 1
        if len(rows) < MIN_ROWS:
            raise ConflictError(f"the node holds {len(rows)} source rows; training needs at "
                                f"least {MIN_ROWS}", code=ErrorCode.TOO_FEW_RECORDS)
        start = Model.from_dict(stored.parameters) if stored is not None else DEFAULT_MODEL
        records = [identity_fields(identity) for _, identity in rows]
        prior = index_prior([local_id for local_id, _ in rows], start)
        say(f"sampled {len(records):,} source rows of {children:,} children")
        columns = Columns.of(records)
        # the same draws in the same order as ever: the random pairs, then the candidates
        random = draw_random_pairs(len(records), random_pairs, rng)
        a, b, everything = candidate_pairs([keys_for(r) for r in records],
                                           candidate_pairs_wanted, rng)
        version = f"node-em-{number}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        run = train_columns(columns, random, columns, (a, b), start, version, say=say,
                            prior=prior, iterations=iterations)
        model, summary = run.model, run.summary
        details = {**summary.to_dict(), "rows_sampled": len(records), "children": children,
                   "started_from": start.version, "prior": prior,
                   "quality": {"pairs": len(a), "all_candidate_pairs": everything,
                               "start": decisions(run.start_scores, children, everything),
                               "trained": decisions(run.trained_scores, children,
                                                    everything),
                               "weights": level_weights(model)},
                   "seconds": round(time.perf_counter() - started, 2)}
        async with self.pool.acquire() as conn:
            return await self.models.add(conn, model.version, model.to_dict(), children,
                                         details)

    async def list(self) -> list[StoredModel]:
        async with self.pool.acquire() as conn:
            return await self.models.list(conn)

    async def retrain_due(self, rows: int, threshold: int) -> str | None:
        """Why a feed of ``rows`` rows just loaded calls for training (None if it does
        not): at least ``threshold`` rows (0: never), into a node with no trained model
        or whose children grew by more than half since the last training."""
        if threshold <= 0 or rows < threshold:
            return None
        async with self.pool.acquire() as conn:
            stored = await self.models.latest(conn)
            children = await self.children.count(conn)
        if stored is None:
            return f"a feed of {rows:,} rows into a node with no trained model"
        if children > 1.5 * stored.children:
            return (f"the index grew from {stored.children:,} to {children:,} children "
                    f"since model {stored.version}")
        return None
