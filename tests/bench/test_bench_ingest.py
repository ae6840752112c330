"""``bench.ingest`` at a tiny size (CONVENTIONS 17: no benchmark rots between runs):
every feed loads and prints its rates, and local matching its quality. No timing is
judged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import FIGURE, _bench


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ingest_prints_rows_per_second_per_feed(tmp_path: Path) -> None:
    out = _bench("bench.ingest", "--children", "300", "--data-dir", str(tmp_path / "d"))
    for feed in ("education", "health", "services"):
        assert re.search(rf"^{feed}\s+{FIGURE} rows\s+{FIGURE} rows/s\s+{FIGURE} rows/cpu-s",
                         out, re.MULTILINE), out
    assert re.search(rf"local matching: precision {FIGURE}, recall {FIGURE}", out), out
