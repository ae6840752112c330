"""Which holders of a blocking key count as evidence: the block limit, counted so that
one council cannot put other councils' records out of reach (docs/security.md).

The resolver's candidate read (:mod:`national_hub.storage.resolution`) and a search's
(:mod:`national_hub.storage.search`) look each key up in ``record_keys`` and skip a
key held too often: it is too common to be evidence. Counted over every holder, a
council that published a few hundred copies of a child's identity (a hostile node,
or a broken one) made every key of that child "too common", and so hid the child's
records at every other council from linking and from practitioners' searches. Now,
for a limit L and a key held by n_c records of each council c:

* held by at most L records in all, every holder counts (as before);
* else the key is too common if more than L of its holders are outside the council
  holding most of them: no single council can make it so, since setting one council
  aside is what the count does;
* else every council holding at most L counts, and a council holding more (the one
  that holds most, at most) is skipped: it is its own records that it floods.

So a key's evidence is at most 2L records, whoever publishes what. Each key costs one
probe of at most L + 1 index entries, as before; only a key held by more than L
records is then walked council by council through ``record_keys``' primary key (key,
council_code, local_id): one probe for the next council and one of at most L + 1
entries to count its holders, the walk stopping as soon as the key is too common.
Every council walked but the largest and the last adds at least one holder outside
the largest, so the walk visits at most L + 2 councils and counts at most 3L + 2
entries (the others' L, the largest's and the last one's L + 1 each); the at most 2L
holders that count are then read again. However large the block, a key costs no more.
"""

from __future__ import annotations


def counted_holders(keys: str, limit: str) -> str:
    """Two CTEs for a ``WITH RECURSIVE`` list: ``probe``, and ``counted`` (``key,
    council_code, local_id``): each key of ``keys`` (an array parameter, e.g. ``$1``)
    with its holders that count at block limit ``limit`` (e.g. ``$2``).

    ``probe`` is each key's one probe, as the candidate reads made it before (the
    count over at most ``limit`` + 1 entries); it is read twice, so PostgreSQL keeps its
    rows once: a key it found held at most ``limit`` times takes them as they are, and
    only the few held more often are walked. Counting the first probe's rows again
    for each key instead cost the resolver's read about a sixth more, and a second
    probe of each key a third more. Each council's count is an aggregate in a LATERAL
    join of its own: as a scalar subquery in the walk's select list it was copied
    into each of its three uses (three plans to start on every search, and each
    council counted three times)."""
    return f"""
    probe AS (
        SELECT w.key, b.council_code, b.local_id, b.n
        FROM unnest({keys}::text[]) AS w(key)
        CROSS JOIN LATERAL (
            SELECT k.council_code, k.local_id, count(*) OVER () AS n
            FROM (SELECT k.council_code, k.local_id FROM record_keys k
                  WHERE k.key = w.key LIMIT {limit} + 1) k
        ) b
    ), counted AS (
        SELECT p.key, p.council_code, p.local_id FROM probe p WHERE p.n <= {limit}
        UNION ALL
        SELECT hot.key, h.council_code, h.local_id
        FROM (SELECT DISTINCT p.key FROM probe p WHERE p.n > {limit}) hot
        CROSS JOIN LATERAL (
            SELECT k.council_code, k.local_id FROM (
                WITH RECURSIVE walk (council_code, n, total, most) AS (
                    SELECT ''::text, 0::bigint, 0::bigint, 0::bigint
                    UNION ALL
                    SELECT c.council_code, c.n, walk.total + c.n, greatest(walk.most, c.n)
                    FROM walk CROSS JOIN LATERAL (
                        SELECT k.council_code FROM record_keys k
                        WHERE k.key = hot.key AND k.council_code > walk.council_code
                        ORDER BY k.council_code LIMIT 1) nxt
                    CROSS JOIN LATERAL (  -- an aggregate: counted once, not per use
                        SELECT nxt.council_code, count(*) AS n FROM (
                            SELECT FROM record_keys k WHERE k.key = hot.key
                              AND k.council_code = nxt.council_code
                            LIMIT {limit} + 1) held) c
                    WHERE walk.total - walk.most <= {limit}
                )
                SELECT walk.council_code, walk.n,
                       max(walk.total - walk.most) OVER () AS outside
                FROM walk
            ) c CROSS JOIN LATERAL (
                SELECT k.council_code, k.local_id FROM record_keys k
                WHERE k.key = hot.key AND k.council_code = c.council_code LIMIT {limit}) k
            WHERE c.outside <= {limit} AND c.n BETWEEN 1 AND {limit}
        ) h
    )"""
