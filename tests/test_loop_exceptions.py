"""The tests' event loops fail a test whose task died with nobody to see it
(tests/conftest.py), shown by running pytest on two small tests in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

INNER = '''
import asyncio

from server_common.tasks import background, run_every


async def test_a_task_dies_unseen():
    async def boom():
        raise ValueError("boom")
    asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)


async def test_a_background_job_meets_a_bug():
    ran = asyncio.Event()

    async def bug():
        ran.set()
        raise KeyError("bug")
    async with background(run_every("buggy job", bug, 3600)):
        await ran.wait()


async def test_a_task_whose_exception_is_seen():
    async def boom():
        raise ValueError("boom")
    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    assert isinstance(task.exception(), ValueError)
'''


def test_unhandled_loop_exceptions_fail_the_test(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120)
    out = result.stdout
    assert "3 passed, 2 errors" in out, out + result.stderr
    assert "ERROR at teardown of test_a_task_dies_unseen" in out
    assert "ERROR at teardown of test_a_background_job_meets_a_bug" in out
    assert "Task exception was never retrieved: ValueError('boom')" in out
    assert "buggy job failed with an unexpected error; will run again: KeyError('bug')" in out
