"""``make demo`` as a newcomer uses it: the federation comes up synced, and what it prints
works as printed — the env files let ``national-hub``/``local-node`` typed by hand reach
the demo's databases, and the TOTP hint prints a code with the venv's python."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import psutil
import pytest

from deploy.demo import COUNCILS, HUB_PORT, INDEX_TEAMS
from deploy.screenshots import a_mover, hub_logins, running_demo, take

ROOT = Path(__file__).resolve().parents[2]


def _shell(command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a fresh shell started at the repository root, as a user types it."""
    return subprocess.run(["bash", "-c", command], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.timeout(900)
def test_demo_prints_commands_that_work(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    with running_demo(data_dir, children=40) as out:
        _check_printed_commands(out, data_dir)
        _check_screenshots(out, data_dir, tmp_path / "images")
    # stopped with Ctrl-C, nothing of the demo outlives it: not even its PostgreSQL
    left = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
            if str(data_dir.resolve()) in " ".join(p.info["cmdline"] or ())]
    assert left == []


def _check_screenshots(out: str, data_dir: Path, images: Path) -> None:
    """``make screenshots`` against this demo: a mover found at the hub, their page, /ops."""
    logins = hub_logins(out)
    child = a_mover(data_dir / "feeds")
    images.mkdir()
    written = asyncio.run(take(f"http://127.0.0.1:{HUB_PORT}", logins["practitioner"],
                               logins["operator"], child, images))
    assert [p.name for p in written] == ["search.png", "child.png", "ops.png"]
    for png in written:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def _check_printed_commands(out: str, data_dir: Path) -> None:
    # the hub's env file: the CLI typed by hand sees the three councils, synced
    hint = re.search(r"^\s+(\. \S+hub\.env) && national-hub status$", out, re.MULTILINE)
    assert hint, out[-2000:]
    status = _shell(f"{hint.group(1)} && national-hub status --json")
    assert status.returncode == 0, status.stderr
    councils = {c["code"] for c in json.loads(status.stdout)["councils"]}
    assert councils == set(COUNCILS)
    # each index team can be reached from a shielded child's page
    listed = _shell(f"{hint.group(1)} && national-hub councils list")
    assert listed.returncode == 0, listed.stderr
    for email, phone in INDEX_TEAMS.values():
        assert f"{phone} · {email}" in listed.stdout

    # every node has its own env file, and it reaches that node's own index
    for code in COUNCILS:
        env_file = data_dir.resolve() / f"node-{code}.env"
        node = _shell(f". {env_file} && local-node status --json")
        assert node.returncode == 0, node.stderr
        assert json.loads(node.stdout)["council"] == code

    # each TOTP hint runs as printed (a fresh shell, whatever python is on its PATH)
    hints = re.findall(r"\(code now: (.+)\)$", out, re.MULTILINE)
    assert len(hints) == 2 + len(COUNCILS)
    for command in hints:
        totp = _shell(command)
        assert totp.returncode == 0, totp.stderr
        assert re.fullmatch(r"\d{6}", totp.stdout.strip())
