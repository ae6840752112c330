"""Writing a population out as per-council feed CSVs plus the ground truth."""

from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from synthetic.model import FEEDS, REF_PREFIX, Population, paused_gc
from synthetic.render import FEED_COLUMNS, TRUTH_COLUMNS, render_row

_CHUNK = 10_000


def write_feeds(population: Population, out_dir: Path, *, progress: bool = False) -> None:
    """Write ``{code}/{feed}.csv`` for every council and feed, and ``truth.csv``.

    Files are UTF-8 with a header row and ISO dates, as DESIGN §8 asks; every feed
    file is written even when it has no rows. ``truth.csv`` (person_id, council,
    source, source_ref) is kept beside the feeds, never inside a council's folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = population.row_count()
    with paused_gc(), tqdm(total=total * 2, desc="writing", unit="row", unit_scale=True,
                           disable=not progress) as bar:
        for council in population.councils:
            (out_dir / council).mkdir(exist_ok=True)
            for feed in FEEDS:
                rows = population.feeds[(council, feed)]
                with open(out_dir / council / f"{feed}.csv", "w", encoding="utf-8",
                          newline="") as f:
                    writer = csv.writer(f, lineterminator="\n")
                    writer.writerow(FEED_COLUMNS[feed])
                    for start in range(0, len(rows), _CHUNK):
                        chunk = rows[start:start + _CHUNK]
                        writer.writerows(render_row(a) for a in chunk)
                        bar.update(len(chunk))
        with open(out_dir / "truth.csv", "w", encoding="utf-8", newline="") as f:
            f.write(",".join(TRUTH_COLUMNS) + "\n")
            for (council, feed), rows in population.feeds.items():
                # Ids and codes are plain letters and digits: no CSV quoting needed.
                prefix = REF_PREFIX[feed]
                f.writelines(f"P{a.presence.person.index:07d},{council},{feed},"
                             f"{prefix}{a.ref:07d}\n" for a in rows)
                bar.update(len(rows))
