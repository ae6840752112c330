"""What federation health is computed from: one row per council (cursor, last batch,
last heartbeat, keys), records held, recent refusals, and the time series behind the
lag and throughput chart. Every query covers all councils at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

# Rows are put in buckets this wide counting from the Unix epoch, so the service can
# lay out the same grid in Python.
_BIN = "date_bin(make_interval(secs => $2), {col}, TIMESTAMPTZ 'epoch')"
# A key counts as revoked from its revocation time on (it may be set in the future).
_NOT_REVOKED = "(revoked_at IS NULL OR revoked_at > now())"
# When a key stops being usable: its expiry, or a revocation set ahead; NULL: never.
_ENDS = "LEAST(not_after, revoked_at)"


@dataclass(frozen=True, slots=True)
class CouncilState:
    code: str
    name: str
    hub_seq: int
    forked_at: datetime | None
    fork_detail: str | None
    last_batch_at: datetime | None
    head_seq: int | None            # from the last heartbeat
    outbox_depth: int | None
    heartbeat_at: datetime | None
    keys: int                       # enrolled keys, whatever their state
    keys_revoked: int               # revoked by now
    keys_usable: int                # neither revoked nor expired
    keys_forever: bool              # some key has neither an expiry nor a revocation
    last_kid: str | None            # of the keys not revoked by now, the one that ends last
    last_ends: datetime | None      # … and when it ends (expiry, or a revocation set ahead)


@dataclass(frozen=True, slots=True)
class Bucket:
    council: str
    start: datetime
    head_seq: int | None = None     # last heartbeat in the bucket
    hub_seq: int | None = None      # highest seq applied in the bucket
    records_applied: int = 0


class HealthStore:
    async def now(self, conn: asyncpg.Connection) -> datetime:
        """The database's clock (in a transaction: its start), which every age is from."""
        value: datetime = await conn.fetchval("SELECT now()")
        return value

    async def councils(self, conn: asyncpg.Connection) -> list[CouncilState]:
        rows = await conn.fetch(
            f"""
            SELECT c.code, c.name, c.cursor_seq AS hub_seq, c.forked_at, c.fork_detail,
                   b.applied_at AS last_batch_at,
                   h.head_seq, h.outbox_depth, h.received_at AS heartbeat_at,
                   coalesce(k.keys, 0) AS keys, coalesce(k.keys_revoked, 0) AS keys_revoked,
                   coalesce(k.keys_usable, 0) AS keys_usable,
                   coalesce(k.keys_forever, false) AS keys_forever, k.last_kid, k.last_ends
            FROM councils c
            LEFT JOIN batches b ON b.council_code = c.code AND b.seq = c.cursor_seq
            LEFT JOIN heartbeats h ON h.council_code = c.code
            LEFT JOIN (
                SELECT council_code,
                       count(*) AS keys,
                       count(*) FILTER (WHERE NOT {_NOT_REVOKED}) AS keys_revoked,
                       count(*) FILTER (WHERE {_NOT_REVOKED}
                                        AND (not_after IS NULL OR not_after > now()))
                           AS keys_usable,
                       bool_or({_ENDS} IS NULL) AS keys_forever,
                       (array_agg(kid ORDER BY {_ENDS} DESC)
                           FILTER (WHERE {_NOT_REVOKED} AND {_ENDS} IS NOT NULL))[1]
                           AS last_kid,
                       max({_ENDS}) FILTER (WHERE {_NOT_REVOKED}) AS last_ends
                FROM council_keys GROUP BY council_code
            ) k ON k.council_code = c.code
            ORDER BY c.code
            """
        )
        return [CouncilState(**dict(r)) for r in rows]

    async def records_held(self, conn: asyncpg.Connection) -> dict[str, int]:
        """Live records (not tombstones) per council."""
        rows = await conn.fetch(
            "SELECT council_code, count(*) AS n FROM records WHERE record IS NOT NULL"
            " GROUP BY council_code"
        )
        return {r["council_code"]: int(r["n"]) for r in rows}

    async def awaiting_review(self, conn: asyncpg.Connection) -> dict[str, int]:
        """Records per council in an open pair of the review queue."""
        rows = await conn.fetch(
            "SELECT c, count(*) AS n FROM (SELECT council_a AS c, local_id_a AS l"
            " FROM review_queue WHERE status = 'open' UNION SELECT council_b, local_id_b"
            " FROM review_queue WHERE status = 'open') q GROUP BY c")
        return {r["c"]: int(r["n"]) for r in rows}

    async def rejections(self, conn: asyncpg.Connection,
                         window_seconds: float) -> dict[str, dict[str, int]]:
        """Batches refused in the window: council → error code → count."""
        rows = await conn.fetch(
            """
            SELECT c.code AS council_code, r.code, r.n
            FROM councils c CROSS JOIN LATERAL (
                SELECT code, count(*) AS n FROM rejected_batches
                WHERE council_code = c.code AND received_at > now() - make_interval(secs => $1)
                GROUP BY code
            ) r
            """,
            window_seconds,
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["council_code"], {})[r["code"]] = int(r["n"])
        return out

    async def state_before(self, conn: asyncpg.Connection,
                           since: datetime) -> dict[str, tuple[int, int | None]]:
        """Per council, (hub seq, node head seq) as they stood at ``since``."""
        rows = await conn.fetch(
            """
            SELECT c.code,
                   coalesce((SELECT b.seq FROM batches b
                             WHERE b.council_code = c.code AND b.applied_at < $1
                             ORDER BY b.applied_at DESC, b.seq DESC LIMIT 1), 0) AS hub_seq,
                   (SELECT h.head_seq FROM heartbeat_history h
                    WHERE h.council_code = c.code AND h.received_at < $1
                    ORDER BY h.received_at DESC LIMIT 1) AS head_seq
            FROM councils c
            """,
            since,
        )
        return {r["code"]: (int(r["hub_seq"]), r["head_seq"]) for r in rows}

    async def buckets(self, conn: asyncpg.Connection, since: datetime,
                      bucket_seconds: float) -> list[Bucket]:
        """Since ``since``, per council and bucket: the last heartbeat's head seq, and the
        highest seq and number of records applied. Buckets with neither are absent."""
        rows = await conn.fetch(
            f"""
            WITH beats AS (
                SELECT DISTINCT ON (council_code, bucket) council_code, bucket, head_seq
                FROM (SELECT council_code, head_seq, received_at,
                             {_BIN.format(col="received_at")} AS bucket
                      FROM heartbeat_history WHERE received_at >= $1) h
                ORDER BY council_code, bucket, received_at DESC
            ), applied AS (
                SELECT b.council_code, {_BIN.format(col="b.applied_at")} AS bucket,
                       max(b.seq) AS hub_seq, sum(b.applied_count) AS records_applied
                FROM councils c
                JOIN batches b ON b.council_code = c.code AND b.applied_at >= $1
                GROUP BY 1, 2
            )
            SELECT coalesce(h.council_code, a.council_code) AS council,
                   coalesce(h.bucket, a.bucket) AS start,
                   h.head_seq, a.hub_seq, coalesce(a.records_applied, 0) AS records_applied
            FROM beats h FULL JOIN applied a
                ON a.council_code = h.council_code AND a.bucket = h.bucket
            ORDER BY 1, 2
            """,
            since, bucket_seconds,
        )
        return [Bucket(**dict(r)) for r in rows]


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What federation health needs of one council as a witness of the audit log."""

    code: str
    cosigned_size: int | None       # its latest cosigned checkpoint, None: never
    cosigned_root: bytes | None
    signed_root: bytes | None       # the root the hub still stores for that size
    log_size: int                   # entries the log holds now
    behind_since: datetime | None   # when the first checkpoint it has not cosigned was signed
    alarm: str | None               # its latest refusal, unless it cosigned since
    alarm_at: datetime | None
    # the hub's refusal of the council node's own log (docs/PROTOCOL.md §18), unless a
    # checkpoint of it was kept since
    node_log_alarm: str | None = None


class WitnessHealthStore:
    async def witnesses(self, conn: asyncpg.Connection) -> list[WitnessState]:
        """Per council: its latest cosignature against the log as stored now, how long
        it has left the hub's checkpoints uncosigned, and an unanswered refusal."""
        rows = await conn.fetch(
            """
            SELECT c.code, w.tree_size AS cosigned_size, w.root_hash AS cosigned_root,
                   cp.root_hash AS signed_root,
                   least((SELECT next_seq FROM audit_head),
                         (SELECT coalesce(max(seq) + 1, 0) FROM audit_log)) AS log_size,
                   (SELECT min(signed_at) FROM audit_checkpoints
                    WHERE tree_size > coalesce(w.tree_size, 0)) AS behind_since,
                   a.reason AS alarm, a.received_at AS alarm_at,
                   (SELECT r.reason FROM witness_refusals r
                    WHERE r.origin = 'signpost-node-' || c.code || '/audit'
                      AND r.refused_at > coalesce((
                          SELECT max(k.recorded_at) FROM witnessed_checkpoints k
                          WHERE k.origin = r.origin), '-infinity')
                    ORDER BY r.refused_at DESC, r.id DESC LIMIT 1) AS node_log_alarm
            FROM councils c
            LEFT JOIN LATERAL (
                SELECT tree_size, root_hash, received_at FROM audit_cosignatures
                WHERE witness = c.code ORDER BY id DESC LIMIT 1) w ON true
            LEFT JOIN audit_checkpoints cp ON cp.tree_size = w.tree_size
            LEFT JOIN LATERAL (
                SELECT reason, received_at FROM audit_witness_alarms al
                WHERE al.witness = c.code AND NOT EXISTS (
                    SELECT 1 FROM audit_cosignatures s
                    WHERE s.witness = c.code AND s.received_at > al.received_at)
                ORDER BY received_at DESC, id DESC LIMIT 1) a ON true
            ORDER BY c.code
            """
        )
        return [WitnessState(
            r["code"], r["cosigned_size"],
            None if r["cosigned_root"] is None else bytes(r["cosigned_root"]),
            None if r["signed_root"] is None else bytes(r["signed_root"]),
            int(r["log_size"]), r["behind_since"], r["alarm"], r["alarm_at"],
            r["node_log_alarm"]) for r in rows]
