"""``make soak``: the long fault runs, a fuzz run and the bounded load run, with their figures.

Fault runs (``bench/chaos/run.py``): for each seed, a federation of real processes
(two hub replicas, two councils' publishers, a PostgreSQL of the run's own) publishes
and resolves through a fault-injecting proxy while hubs, publishers and PostgreSQL
are SIGKILLed at random and the link is cut for a minute or more; afterwards the hub
is checked against the nodes record by record and batch by batch, resolution and
the audit log too, and its grouping of records into national children against a
fault-free resolution of the same batches (``bench/chaos/reference.py``). Every seed
is printed; ``--first-seed N --seeds 1`` replays one.

Fuzz run (``bench/chaos/fuzz_run.py``): a ``national-hub serve`` process gets
``--fuzz-cases`` mutated batches (bit flips, wrong types, deep nesting, huge strings
and arrays, bad UTF-8, bad dates; signed, so they reach the decoders) and as many
mutated searches and child views from a practitioner, and a council's ``local-node
serve`` as many mutated searches and child views of its own index; no 5xx, every
refusal with a known error code, no batch half-applied, every accepted answer
well-formed.

Load run (``bench/chaos/load.py``): three councils publish to two hub replicas while
practitioners search, for a fixed time; search latency, errors and every process's
memory over time are printed.

    python -m bench.soak                      # everything (about 30 minutes)
    python -m bench.soak --seeds 1 --fault-duration 30 --load-duration 30 --fuzz-cases 300
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import click

from bench.chaos import reaper
from bench.chaos.fuzz_run import fuzz_run
from bench.chaos.load import LoadPlan, load_run
from bench.chaos.proxy import FAULTS
from bench.chaos.reference import OTHER_LIMIT
from bench.chaos.run import FaultReport, Plan, fault_run


async def _faults(first: int, seeds: int, duration: float, children: int,
                  cut_for: float) -> list[FaultReport]:
    reports = []
    for seed in range(first, first + seeds):
        plan = Plan(seed=seed, children=children, duration=duration,
                    kills=max(3, int(duration / 10)), cuts=1,
                    cut_for=(cut_for, cut_for * 1.5), hubs=2, heal_within=600)
        reports.append(await fault_run(plan, say=lambda s: click.echo(s)))
    return reports


def _fault_figures(reports: list[FaultReport]) -> tuple[list[str], bool]:
    faults: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for r in reports:
        faults += r.faults
        statuses += r.statuses
    injected = sum(faults[k] for k in (*FAULTS, "cut")) + sum(
        n for k, n in faults.items() if k.startswith("kill_"))
    lost = sum(r.verification.lost for r in reports)
    failed = [r.seed for r in reports if not r.ok]
    lines = [
        f"fault runs: {len(reports)} seeds ({', '.join(str(r.seed) for r in reports)}), "
        f"failed: {failed or 'none'}",
        f"faults injected: {injected} ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})",
        f"batches verified: {sum(r.verification.batches_verified for r in reports)}",
        f"records compared: {sum(r.verification.records_compared for r in reports)}",
        f"searches during faults: {sum(r.searches for r in reports)}",
        f"5xx: {sum(n for s, n in statuses.items() if s >= 500)} "
        f"({dict((s, n) for s, n in sorted(statuses.items()) if s >= 500)}; "
        "503 is the designed answer while PostgreSQL is down, 500 would be a bug)",
        f"500 internal errors: {statuses[500]}",
        f"lost records: {lost}",
        f"resolution compared: {sum(r.resolution.records for r in reports)} records, "
        f"{sum(r.resolution.differences for r in reports)} differences "
        f"({sum(r.resolution.nhs_differences for r in reports)} of pairs sharing an NHS "
        f"number, which fail a run; {sum(r.resolution.other_differences for r in reports)}"
        f" other pairs, which fail it beyond {OTHER_LIMIT:.0%} of its records)",
        "slowest heal after faults stopped: "
        f"{max((r.healed_in for r in reports), default=0):.1f} s",
    ]
    return lines, not failed


@click.command(help="Long fault runs, a fuzz run and a bounded load run against real "
                    "processes; prints faults injected, batches verified, records compared, "
                    "fuzz cases tried, 5xx, lost records, search latency and memory over "
                    "time. Exit 1 if a check fails or memory grows.")
@click.option("--seeds", default=4, show_default=True, help="Fault runs, one per seed.")
@click.option("--first-seed", default=int(time.time()) % 100_000,
              help="Seed of the first fault run and of the fuzz run (default: from the "
                   "clock, printed).")
@click.option("--fault-duration", default=180.0, show_default=True,
              help="Seconds of faults per run.")
@click.option("--fault-children", default=2000, show_default=True,
              help="Children per council in a fault run.")
@click.option("--cut-for", default=60.0, show_default=True,
              help="Seconds the link stays cut (at least; up to 1.5 times this).")
@click.option("--load-duration", default=240.0, show_default=True,
              help="Seconds of the load run.")
@click.option("--load-children", default=20_000, show_default=True,
              help="Children per council in the load run.")
@click.option("--searchers", default=16, show_default=True,
              help="Practitioners searching at once in the load run.")
@click.option("--fuzz-cases", default=3000, show_default=True,
              help="Mutated batches, and as many mutated searches at the hub and as "
                   "many at a node, in the fuzz run (seeded with --first-seed).")
@click.option("--skip-faults", is_flag=True)
@click.option("--skip-fuzz", is_flag=True)
@click.option("--skip-load", is_flag=True)
def main(seeds: int, first_seed: int, fault_duration: float, fault_children: int,
         cut_for: float, load_duration: float, load_children: int, searchers: int,
         fuzz_cases: int, skip_faults: bool, skip_fuzz: bool, skip_load: bool) -> None:
    reaper.install()  # stopped or killed, the run leaves no process or folder behind
    started = time.monotonic()
    figures: list[str] = []
    ok = True
    if not skip_faults:
        reports = asyncio.run(_faults(first_seed, seeds, fault_duration, fault_children,
                                      cut_for))
        lines, ok = _fault_figures(reports)
        figures += lines
    if not skip_fuzz:
        fuzz = asyncio.run(fuzz_run(first_seed, fuzz_cases, fuzz_cases, fuzz_cases,
                                    say=lambda s: click.echo(s)))
        figures += fuzz.lines()
        ok = ok and fuzz.ok
    if not skip_load:
        load = asyncio.run(load_run(LoadPlan(children=load_children, duration=load_duration,
                                             searchers=searchers),
                                    say=lambda s: click.echo(s)))
        figures += load.lines()
        ok = ok and not load.growing and load.server_errors == 0
    click.echo(f"\n=== soak figures ({time.monotonic() - started:.0f} s) ===")
    for line in figures:
        click.echo(line)
    click.echo("RESULT: " + ("OK" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
