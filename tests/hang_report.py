"""What a hung test was waiting for, printed before pytest-timeout ends it.

pytest-timeout shows the threads' stacks, and for an asyncio test that is only the
event loop idling in ``select``. Shortly before the timeout this prints what the loop's
tasks are awaiting and what every busy PostgreSQL session is waiting on (lock waits
with the session that blocks them), into the test's captured output, so a rare hang
on CI says where it was the first time it happens. With ``SIGNPOST_HANG_REPORTS``
naming a file, each report is appended there too: ``.ci/run`` prints that file at the
end, so a hang shows even when the test passed on its rerun (``addopts`` in
pyproject.toml).
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import weakref
from collections.abc import Iterator

import asyncpg
import pytest

# seconds before pytest-timeout fires that the report is printed
MARGIN = 15.0

LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
DATABASE_URL: list[str] = []  # the test server's URL, once the session has one

_ACTIVITY = """
SELECT pid, datname, state, wait_event_type, wait_event,
       pg_blocking_pids(pid) AS blocked_by,
       round(extract(epoch FROM now() - xact_start)::numeric, 1) AS xact_seconds,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND state IS DISTINCT FROM 'idle'
ORDER BY xact_start
"""


def _tasks_report() -> str:
    out = io.StringIO()
    for loop in list(LOOPS):
        if loop.is_closed() or not loop.is_running():
            continue
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while we read it from this thread
            continue
        for task in tasks:
            print(f"--- {task!r}", file=out)
            try:
                task.print_stack(limit=12, file=out)
            except Exception as exc:  # a task that ended while we read it
                print(f"    (stack unavailable: {exc!r})", file=out)
    return out.getvalue()


async def _activity(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(_ACTIVITY, timeout=5)
    finally:
        await conn.close(timeout=5)
    return "\n".join(str(dict(r)) for r in rows)


def _database_report() -> str:
    if not DATABASE_URL:
        return "(no test database yet)"
    try:
        return asyncio.run(_activity(DATABASE_URL[0]))
    except Exception as exc:
        return f"(pg_stat_activity unavailable: {exc!r})"


def _report(nodeid: str) -> None:
    report = (f"\n+++ hang report for {nodeid}: asyncio tasks +++\n{_tasks_report()}"
              f"+++ busy PostgreSQL sessions +++\n{_database_report()}\n"
              "+++ end of hang report +++\n")
    print(report, flush=True)
    path = os.environ.get("SIGNPOST_HANG_REPORTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(report)


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker and marker.args:
        return float(marker.args[0])
    # pytest-timeout's own order: the marker, then --timeout, then the ini file
    given = item.config.getoption("timeout", None) or item.config.getini("timeout")
    try:
        return float(given or 0)
    except (ValueError, TypeError):
        return 0.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Set-up, call and teardown together, as pytest-timeout counts them."""
    timeout = _timeout_of(item)
    timer = None
    if timeout > MARGIN * 2:
        timer = threading.Timer(timeout - MARGIN, _report, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
