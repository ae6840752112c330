"""Two small rules both servers share: a whole number read from a query string, and a CSV
cell a spreadsheet must not run as a formula."""

from __future__ import annotations

import doctest

import pytest

from server_common import csv_cells, web
from server_common.csv_cells import safe_cell
from server_common.web import whole_number


def test_the_docstring_examples() -> None:
    assert doctest.testmod(web).failed == 0 and doctest.testmod(csv_cells).failed == 0


@pytest.mark.parametrize("raw", ["", "²", "٣", "-1", "+1", " 1", "1.0", "1e3", "9" * 19])
def test_only_ascii_digits_that_fit_a_bigint_are_a_whole_number(raw: str) -> None:
    assert whole_number(raw) is None


def test_a_whole_number() -> None:
    assert [whole_number(v) for v in ("0", "007", "9" * 18)] == [0, 7, int("9" * 18)]


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_formula_opens_as_text(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


def test_other_cells_are_written_as_they_are() -> None:
    assert [safe_cell(v) for v in ("ann", "1", "", None, 3)] == ["ann", "1", "", None, 3]
