"""The files the console scripts write for an operator (``local-node index export``,
``national-hub links export``), run as an operator runs them: an existing file is
refused unless ``--overwrite`` says it is meant, the file is owner-only (it holds
identities), and an export that fails on the way leaves no half file (nor a temporary
one) and leaves the file it would have replaced as it was."""

from __future__ import annotations

import csv
import os
import resource
import stat
import subprocess
from pathlib import Path

import asyncpg

from tests.conftest import DatabaseFactory
from tests.processes import script
from tests.test_cli import ESX, run

FEED = ("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
        "E1,,Amelia,Okafor,2015-03-14,F,BN1 1AA\n"
        "E2,,Dan,Jones,2013-07-08,M,BN2 2BB\n"
        "E3,,Maya,Patel,2014-01-02,F,BN3 3CC\n")
NODE, HUB = script("local-node"), script("national-hub")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def export_limited(args: list[str], env: dict[str, str],
                   limit: int) -> subprocess.CompletedProcess[str]:
    """The command unable to write a file past ``limit`` bytes, as on a full disk (Python
    ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process)."""
    def limit_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(args, env=env, text=True, capture_output=True, timeout=120,
                          preexec_fn=limit_size)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


async def test_index_export_refuses_a_file_and_never_leaves_half_of_one(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    env = dict(os.environ) | {
        "LOCAL_NODE__DATABASE__URL": await make_database(), "LOCAL_NODE__COUNCIL__CODE": ESX,
        "LOCAL_NODE__COUNCIL__KEY_FILE": str(tmp_path / "node" / "key.pem")}
    run([NODE, "db", "upgrade"], env)
    feed = tmp_path / "education.csv"
    feed.write_text(FEED, encoding="utf-8")
    run([NODE, "ingest", "--feed", "education", str(feed)], env)
    exports = tmp_path / "exports"
    exports.mkdir()

    out = exports / "index.csv"
    assert "wrote 3 rows" in run([NODE, "index", "export", "--out", str(out)], env).stdout
    assert mode(out) == 0o600  # identities: the owner's alone, whatever the umask
    exported = out.read_text(encoding="utf-8")
    assert len(list(csv.DictReader(exported.splitlines()))) == 3

    # a second export to the same name (a mistyped --out, a script run twice): refused
    out.write_text("the operator's own file\n", encoding="utf-8")
    out.chmod(0o644)
    again = run([NODE, "index", "export", "--out", str(out)], env, ok=False)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"invalid_field: --out: {out} exists; give --overwrite" in again.stderr
    assert out.read_text(encoding="utf-8") == "the operator's own file\n"
    # meant: replaced, owner-only
    run([NODE, "index", "export", "--out", str(out), "--overwrite"], env)
    assert out.read_text(encoding="utf-8") == exported and mode(out) == 0o600

    # the disk fills half way: no half file, the file it would replace untouched
    fresh = exports / "fresh.csv"
    failed = export_limited([NODE, "index", "export", "--out", str(fresh)], env, 80)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert f"{fresh}: File too large" in failed.stderr
    assert not fresh.exists()
    failed = export_limited([NODE, "index", "export", "--out", str(out), "--overwrite"],
                            env, 80)
    assert failed.returncode == 1 and out.read_text(encoding="utf-8") == exported
    assert leftovers(exports) == []


async def test_links_export_refuses_a_file_before_auditing_an_export(
        make_database: DatabaseFactory, tmp_path: Path) -> None:
    url = await make_database()
    env = dict(os.environ) | {"NATIONAL_HUB__DATABASE__URL": url,
                              "NATIONAL_HUB__HUB__KEY_FILE": str(tmp_path / "hub" / "k.pem")}
    run([HUB, "db", "upgrade"], env)
    out = tmp_path / "links.csv"
    out.write_text("kept\n", encoding="utf-8")
    refused = run([HUB, "links", "export", "--out", str(out)], env, ok=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"invalid_field: --out: {out} exists; give --overwrite" in refused.stderr
    assert out.read_text(encoding="utf-8") == "kept\n"

    run([HUB, "links", "export", "--out", str(out), "--overwrite"], env)
    assert out.read_text(encoding="utf-8").splitlines() == [
        "council,local_id,national_id,status,model_version"]
    assert mode(out) == 0o600
    conn = await asyncpg.connect(url)
    try:  # audited once: the export made, not the one refused
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()
    assert leftovers(tmp_path) == []
