"""The bulk matcher's set operations give exactly numpy's answers (protocol.matching.arrays)."""

from __future__ import annotations

import doctest

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.matching import arrays
from protocol.matching.arrays import among, distinct, first_occurrences

# pair codes are products of record positions: small and large, repeated or not
codes = st.lists(st.one_of(st.integers(0, 20), st.integers(-(2 ** 62), 2 ** 62)),
                 max_size=200).map(lambda xs: np.array(xs, dtype=np.int64))


def test_doctests() -> None:
    result = doctest.testmod(arrays)
    assert result.attempted and not result.failed


@settings(max_examples=300, deadline=None)
@given(codes, codes)
def test_each_answers_as_numpy_does(values: np.ndarray, members: np.ndarray) -> None:
    assert distinct(values).tolist() == np.unique(values).tolist()
    assert (first_occurrences(values).tolist()
            == np.sort(np.unique(values, return_index=True)[1]).tolist())
    assert among(values, members).tolist() == np.isin(values, members).tolist()
    assert distinct(values).dtype == first_occurrences(values).dtype == np.int64


def test_empty_arrays() -> None:
    empty = np.zeros(0, dtype=np.int64)
    assert distinct(empty).tolist() == first_occurrences(empty).tolist() == []
    assert among(empty, np.array([1])).tolist() == []
    assert among(np.array([1, 2]), empty).tolist() == [False, False]
