"""Synthetic children for tests, the demo and benchmarks: feeds plus the ground truth.

Example::

    pop = generate_population(["E10000011", "E06000020"], 1000, seed=1)
    write_feeds(pop, Path("out"))       # or: python -m synthetic --help
    pop.truth                           # [TruthRow(person_id, council, source, source_ref)]

Per council the feeds are ``{code}/education.csv``, ``health.csv`` and
``services.csv`` with exactly the columns of docs/design.md §8; ``truth.csv`` beside them
says which person each row is. The same seed and ``today`` give the same files.

Realism: Faker ``en_GB`` names (plus Polish, Romanian, Indian and Nigerian
households), valid NHS numbers (from the 9xx test block) and UPNs, postcodes in the
council's own districts, households with siblings and twins, movers between
councils, and the noise local matching must cope with (nicknames, typos, day–month
swaps, missing identifiers, double-barrelled and changed surnames, stale addresses),
at the rates of :class:`Params`. Rows made invalid on purpose only when asked
(``bad_rows``), listed in :attr:`Population.bad_rows`.

Modules: ``params`` (rates), ``places`` (postcodes, LA numbers), ``names`` (pools,
diminutives, typos), ``organisations`` (schools, GPs, services), ``generator``
(households, movers), ``noise`` (rows and their noise), ``render`` (CSV rows),
``writer`` (files), ``model`` (the in-memory truth).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from synthetic.generator import Generator
from synthetic.model import (
    FEEDS,
    Appearance,
    BadRow,
    Person,
    Population,
    Presence,
    ServiceInvolvement,
    TruthRow,
)
from synthetic.names import UK_DIMINUTIVES
from synthetic.params import Params
from synthetic.render import FEED_COLUMNS, TRUTH_COLUMNS
from synthetic.writer import write_feeds

__all__ = [
    "FEEDS",
    "FEED_COLUMNS",
    "TRUTH_COLUMNS",
    "UK_DIMINUTIVES",
    "Appearance",
    "BadRow",
    "Params",
    "Person",
    "Population",
    "Presence",
    "ServiceInvolvement",
    "TruthRow",
    "generate_population",
    "write_feeds",
]


def generate_population(
    councils: list[str],
    children_per_council: int,
    seed: int,
    *,
    movers_fraction: float | None = None,
    params: Params | None = None,
    bad_rows: int = 0,
    today: date | None = None,
    progress: bool = False,
) -> Population:
    """Generate ``children_per_council`` children living in each council.

    ``movers_fraction`` (default 0.05, or ``params.movers_fraction``) of each
    council's children move, with their household, to another council of the list
    and appear in both councils' feeds. ``bad_rows`` rows across all feeds are made
    invalid (bad NHS check digit, bad date, bad sex code, missing family name) and
    listed in ``population.bad_rows``. Ages are 0-17 on ``today`` (default: today).
    """
    params = params or Params()
    if movers_fraction is not None:
        params = replace(params, movers_fraction=movers_fraction)
    generator = Generator(list(councils), children_per_council, seed, params,
                          today or date.today(), progress)
    return generator.run(bad_rows)
