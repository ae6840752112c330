"""Set operations over integer arrays, where numpy's own cost the bulk matcher most.

A bulk chunk builds millions of candidate pairs as integer codes and dedupes them, and
tests each given-name pair against the nickname table. numpy's general functions are
slow at exactly that: on this project's machine (numpy 2.4, pinned in pyproject.toml)
``np.unique`` of a million distinct int64 codes took 0.96 s, where sorting them and
dropping repeats took 54 ms; ``np.unique(..., return_index=True)`` and ``np.isin``
against a few thousand values sort too much as well. These do the same with one sort::

    >>> import numpy as np
    >>> distinct(np.array([5, 3, 5, 1, 3])).tolist()
    [1, 3, 5]
    >>> first_occurrences(np.array([5, 3, 5, 1, 3])).tolist()
    [0, 1, 3]
    >>> among(np.array([4, 7, 1, 7]), np.array([7, 2])).tolist()
    [False, True, False, True]

(docs/scaling.md, "numpy's unique, replaced": the figures.)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

__all__ = ["among", "distinct", "first_occurrences"]


def _starts(ordered: Ints) -> Bools:
    """Where each run of equal values begins in a sorted array."""
    start = np.ones(len(ordered), dtype=bool)
    start[1:] = ordered[1:] != ordered[:-1]
    return start


def distinct(values: Ints) -> Ints:
    """The distinct values, in ascending order (``np.unique(values)``)."""
    ordered = np.sort(np.asarray(values, dtype=np.int64))
    return ordered[_starts(ordered)]


def first_occurrences(values: Ints) -> Ints:
    """The position of each distinct value's first occurrence, in ascending order of
    position (``np.sort(np.unique(values, return_index=True)[1])``)."""
    values = np.asarray(values, dtype=np.int64)
    order = np.argsort(values, kind="stable")  # equal values keep their order: first first
    return np.sort(order[_starts(values[order])])


def among(values: Ints, members: Ints) -> Bools:
    """Whether each of ``values`` is one of ``members`` (``np.isin``): a binary search
    of each value in the sorted members."""
    values = np.asarray(values, dtype=np.int64)
    table = distinct(members)
    if not len(table):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(table, values), len(table) - 1)
    return np.asarray(table[at] == values)
