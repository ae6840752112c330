"""Random samples a seed makes repeatable: what model training draws at the hub and at
each node, so that ``model train --seed N`` run twice on the same records trains the
same model (an auditor can redo it), where ``ORDER BY random()`` drew another sample
each time."""

from __future__ import annotations


def seeded_order(seed: str, *columns: str) -> str:
    """An ``ORDER BY`` list for a random draw: ``random()`` when the ``seed`` parameter
    (``"$2"``, a bigint) is NULL, else the md5 of the seed with the row's key
    ``columns``: the same rows in the same order from the same records, whatever their
    physical order (which every update changes)."""
    key = " || ':' || ".join(f"{column}::text" for column in columns)
    return (f"CASE WHEN {seed}::bigint IS NULL THEN random() END,"
            f" md5({seed}::bigint::text || ':' || {key})")
