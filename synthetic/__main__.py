"""``python -m synthetic``: write synthetic council feeds and their ground truth."""

from __future__ import annotations

import csv
import os
import sys
import time
from datetime import date
from pathlib import Path

import click

from synthetic import FEEDS, Population, generate_population, write_feeds


def _council_list(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    codes = [c.strip() for c in value.split(",") if c.strip()]
    if not codes:
        raise click.BadParameter("name at least one council code")
    if len(set(codes)) != len(codes):
        raise click.BadParameter("council codes must be distinct")
    return codes


@click.command(help=(
    "Generate synthetic children for COUNCILS and write, per council, "
    "DIR/{code}/education.csv, health.csv and services.csv (docs/design.md §8 columns) "
    "plus DIR/truth.csv (person_id,council,source,source_ref)."
))
@click.option("--councils", required=True, callback=_council_list,
              help="Comma-separated council codes, e.g. E10000011,E10000032,E06000020.")
@click.option("--children", type=click.IntRange(min=0), required=True,
              help="Children living in each council (before movers).")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed: the same seed and --today give the same files.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (created if missing).")
@click.option("--movers", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Fraction of each council's children who moved to another council.")
@click.option("--bad-rows", type=click.IntRange(min=0), default=0, show_default=True,
              help="Rows to make invalid on purpose (listed in DIR/bad_rows.csv).")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Reference date for ages (default: today).")
@click.option("--quiet", is_flag=True, help="No progress bars or summary.")
def main(councils: list[str], children: int, seed: int, out_dir: Path, movers: float,
         bad_rows: int, today: object, quiet: bool) -> None:
    started = time.perf_counter()
    reference = today.date() if today is not None else date.today()  # type: ignore[attr-defined]
    try:
        population = generate_population(councils, children, seed, movers_fraction=movers,
                                         bad_rows=bad_rows, today=reference,
                                         progress=not quiet)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    write_feeds(population, out_dir, progress=not quiet)
    if population.bad_rows:
        _write_bad_rows(population, out_dir)
    if quiet:
        return
    for council in councils:
        counts = ", ".join(f"{feed} {len(population.feeds[(council, feed)]):,}"
                           for feed in FEEDS)
        click.echo(f"{council}: {counts}")
    click.echo(f"{len(population.persons):,} children, {len(population.movers):,} movers, "
               f"{population.row_count():,} rows in {time.perf_counter() - started:.1f} s "
               f"→ {out_dir}")


def _write_bad_rows(population: Population, out_dir: Path) -> None:
    with open(out_dir / "bad_rows.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("council", "source", "source_ref", "line", "column", "kind", "value"))
        writer.writerows(population.bad_rows)


def _run_and_hard_exit() -> None:
    """Run the command, then leave without tearing the heap down.

    At 246,000 children per council the population is millions of objects, and the
    interpreter's last garbage collection on the way out takes longer than writing
    the files (6 s for three councils). The files are closed by then; flush the
    terminal and exit at once, as mypy does for the same reason.
    """
    try:
        main()
        code = 0
    except SystemExit as exc:  # click always ends this way
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _run_and_hard_exit()
