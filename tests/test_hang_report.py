"""The hang report (tests/hang_report.py) names what a stuck test awaits and which
PostgreSQL session blocks which: driven here on a real lock wait, without waiting for
a timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests import hang_report
from tests.conftest import DatabaseFactory


async def test_the_report_shows_the_waiting_task_and_the_session_blocking_it(
        make_database: DatabaseFactory, capsys: pytest.CaptureFixture[str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNPOST_HANG_REPORTS", str(tmp_path / "hangs.log"))
    url = await make_database()
    holder, waiter = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await holder.execute("CREATE TABLE hang_probe (x int); INSERT INTO hang_probe VALUES (1)")
        async with holder.transaction():
            await holder.execute("UPDATE hang_probe SET x = 2")
            blocked = asyncio.create_task(waiter.execute("UPDATE hang_probe SET x = 3"),
                                          name="blocked-update")
            for _ in range(100):  # until PostgreSQL shows the lock wait
                if await holder.fetchval("SELECT count(*) FROM pg_stat_activity"
                                         " WHERE wait_event_type = 'Lock'"):
                    break
                await asyncio.sleep(0.05)
            await asyncio.to_thread(hang_report._report, "probe")
        await blocked
    finally:
        await holder.close()
        await waiter.close()
    out = capsys.readouterr().out
    assert "hang report for probe" in out
    assert "blocked-update" in out  # the task, with what it awaits
    holder_pid = holder.get_server_pid()
    assert f"'blocked_by': [{holder_pid}]" in out, out
    assert "UPDATE hang_probe SET x = 3" in out
    assert (tmp_path / "hangs.log").read_text() in out  # the file .ci/run prints, the same
