"""``bench.incomplete_rows`` at a tiny size (the benchmark's smoke test): spoilt rows
load flagged incomplete, none is refused for a blank name or date of birth, and the
figures it prints are consistent."""

from __future__ import annotations

from pathlib import Path

from bench.incomplete_rows import measure
from tests.conftest import DatabaseFactory


async def test_spoilt_rows_load_and_the_figures_add_up(make_database: DatabaseFactory,
        tmp_path: Path) -> None:
    figures = await measure(await make_database(), 150, 0.2, 3, tmp_path)
    assert figures.blanked >= 20
    # only the generator's own planted errors (a bad NHS number, a bad sex code) are
    # refused; a blanked name or DOB never is (a row blanked of all three could be)
    assert figures.refused <= 8
    assert figures.loaded_incomplete >= figures.blanked - figures.refused - 8
    assert 0 < figures.children_incomplete <= figures.children
    assert figures.precision > 0.95
    assert figures.recall > figures.recall_if_refused
    assert "loaded incomplete" in figures.lines()[0]
