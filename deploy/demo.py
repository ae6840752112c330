"""``make demo``: the whole federation on one machine, on the embedded PostgreSQL.

Starts a real PostgreSQL (pgserver) in ``.data/demo``, the hub and three council
nodes as real processes (the same commands an operator runs), loads synthetic
children into each council — some of whom moved between them — lets the nodes
publish, prints what runs where, and stays up until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

import synthetic
from server_common import embedded_pg
from server_common.readiness import wait_ready

COUNCILS = {
    "E10000011": "East Sussex",
    "E10000032": "West Sussex",
    "E06000020": "Telford and Wrekin",
}
# How each council's index team is reached (a shielded child's page gives it): Ofcom's
# numbers for drama and a reserved domain, so no real team is ever rung or mailed.
INDEX_TEAMS = {code: (f"index.team@{name.lower().replace(' ', '-')}.example",
                      f"01632 960 {100 + i:03d}")
               for i, (code, name) in enumerate(COUNCILS.items())}
HUB_PORT = 8400
NODE_PORTS = {code: 8501 + i for i, code in enumerate(COUNCILS)}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _run(args: list[str], env: dict[str, str], *, quiet: bool = False) -> None:
    result = subprocess.run(args, env=env, text=True,
                            stdout=subprocess.PIPE if quiet else None)
    if result.returncode != 0:
        raise click.ClickException(f"failed: {' '.join(args)}")


def _here(path: Path) -> str:
    """``path`` as the user can type it from where the demo was started."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _write_env(path: Path, settings: dict[str, str]) -> None:
    """A file that ``.`` (source) turns into the settings a server of the demo runs with,
    so ``national-hub …`` and ``local-node …`` typed by hand act on the demo's databases."""
    lines = [f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:\"$PATH\""]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(settings.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _add_login(args: list[str], env: dict[str, str]) -> str:
    """``users add … --generate-password`` and one line saying how to log in as them."""
    result = subprocess.run([*args, "--generate-password"], env=env, text=True,
                            capture_output=True)
    if result.returncode != 0:
        raise click.ClickException(f"failed: {' '.join(args)}: {result.stderr.strip()}")
    found = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    # the venv's python has pyotp; a bare ``python`` may not
    python = _here(Path(sys.executable).with_name("python"))
    return (f"{args[3]} / {found['password']}  TOTP secret {found['totp secret']} "
            f"(code now: {python} -c \"import pyotp; print(pyotp.TOTP('{found['totp secret']}')"
            f".now())\")")


def _wait_ready(url: str) -> None:
    try:
        wait_ready(url, timeout=60, interval=0.3)
    except TimeoutError as exc:
        raise click.ClickException(f"{url} did not become ready; see the logs") from exc


@click.command(help=__doc__)
@click.option("--children", default=3000, show_default=True, help="Children per council.")
@click.option("--seed", default=2026, show_default=True)
@click.option("--data-dir", default=".data/demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--exit-when-synced", is_flag=True, help="Stop once every council is synced.")
def main(children: int, seed: int, data_dir: Path, exit_when_synced: bool) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    click.echo("starting the embedded PostgreSQL…")
    base = embedded_pg.start(data_dir / "pg")
    hub_db = asyncio.run(embedded_pg.ensure_database(base, "signpost_hub"))
    node_dbs = {
        code: asyncio.run(embedded_pg.ensure_database(base, f"signpost_node_{code.lower()}"))
        for code in COUNCILS
    }

    click.echo(f"generating {children} synthetic children per council (seed {seed})…")
    population = synthetic.generate_population(list(COUNCILS), children, seed)
    feeds_dir = data_dir / "feeds"
    synthetic.write_feeds(population, feeds_dir)

    env = dict(os.environ)
    data_dir = data_dir.resolve()  # the env files must work from any directory
    hub_settings = {"NATIONAL_HUB__DATABASE__URL": hub_db,
                    "NATIONAL_HUB__HUB__KEY_FILE": str(data_dir / "hub" / "hub_key.pem"),
                    "NATIONAL_HUB__ACCOUNTS__SECRET_KEY_FILE":
                        str(data_dir / "hub" / "accounts_secret.key"),
                    "NATIONAL_HUB__SERVER__PORT": str(HUB_PORT)}
    _write_env(data_dir / "hub.env", hub_settings)
    hub_env = env | hub_settings
    processes: list[subprocess.Popen[bytes]] = []
    logs = data_dir / "logs"
    logs.mkdir()
    try:
        _run([_bin("national-hub"), "db", "upgrade"], hub_env, quiet=True)
        logins = ["hub: " + _add_login([_bin("national-hub"), "users", "add", role,
                                        "--role", role], hub_env)
                  for role in ("operator", "practitioner")]
        processes.append(subprocess.Popen(
            [_bin("national-hub"), "serve"], env=hub_env,
            stdout=subprocess.DEVNULL, stderr=(logs / "hub.log").open("wb")))
        hub_url = f"http://127.0.0.1:{HUB_PORT}"
        _wait_ready(hub_url)
        hub_public = data_dir / "hub" / "hub_key.pub.pem"

        for code, name in COUNCILS.items():
            click.echo(f"\n== {name} ({code})")
            node_settings = {
                "LOCAL_NODE__DATABASE__URL": node_dbs[code], "LOCAL_NODE__COUNCIL__CODE": code,
                "LOCAL_NODE__COUNCIL__NAME": name,
                "LOCAL_NODE__COUNCIL__KEY_FILE": str(data_dir / f"node-{code}" / "key.pem"),
                "LOCAL_NODE__ACCOUNTS__SECRET_KEY_FILE":
                    str(data_dir / f"node-{code}" / "accounts_secret.key"),
                "LOCAL_NODE__HUB__URL": hub_url,
                "LOCAL_NODE__HUB__PUBLIC_KEY_FILE": str(hub_public),
                "LOCAL_NODE__SERVER__PORT": str(NODE_PORTS[code]),
                "LOCAL_NODE__COUNCIL__INDEX_TEAM_EMAIL": INDEX_TEAMS[code][0],
                "LOCAL_NODE__COUNCIL__INDEX_TEAM_PHONE": INDEX_TEAMS[code][1],
            }
            _write_env(data_dir / f"node-{code}.env", node_settings)
            node_env = env | node_settings
            _run([_bin("local-node"), "db", "upgrade"], node_env, quiet=True)
            _run([_bin("local-node"), "keys", "generate"], node_env, quiet=True)
            logins.append(f"{name}: " + _add_login(
                [_bin("local-node"), "users", "add", "index-team", "--role", "index_team",
                 "--council", code, "--organisation", name], node_env))
            _run([_bin("national-hub"), "councils", "add", code, "--name", name,
                  "--public-key", str(data_dir / f"node-{code}" / "key.pub.pem")], hub_env)
            _run([_bin("national-hub"), "councils", "set-contact", code,
                  "--email", INDEX_TEAMS[code][0], "--phone", INDEX_TEAMS[code][1]],
                 hub_env, quiet=True)
            for feed in ("education", "health", "services"):
                path = feeds_dir / code / f"{feed}.csv"
                _run([_bin("local-node"), "ingest", "--feed", feed, str(path)], node_env)
            processes.append(subprocess.Popen(
                [_bin("local-node"), "serve"], env=node_env,
                stdout=subprocess.DEVNULL, stderr=(logs / f"node-{code}.log").open("wb")))
            _wait_ready(f"http://127.0.0.1:{NODE_PORTS[code]}")

        click.echo("\nwaiting for every council to sync…")
        _wait_synced(hub_env)
        _run([_bin("national-hub"), "status"], hub_env)
        links = data_dir / "links.csv"
        _run([_bin("national-hub"), "links", "export", "--out", str(links)], hub_env, quiet=True)
        with links.open(newline="", encoding="utf-8") as exported:  # read by header:
            linked = sum(1 for row in csv.DictReader(exported)     # columns may be added
                         if row["status"] == "linked")
        click.echo(f"\n{linked} council records are linked to a child known in another "
                   "council (the movers).")
        click.echo(f"\nhub        {hub_url}   (/ to search every council, /ops, /healthz, "
                   "/readyz; nodes use /v1/councils/…)")
        for code, name in COUNCILS.items():
            click.echo(f"{name:<18} http://127.0.0.1:{NODE_PORTS[code]}   "
                       "(/search for practitioners, /healthz, /readyz)")
        click.echo(f"PostgreSQL {base}\nlogs       {logs}/\n"
                   "logins     (at /login on each server; name / password, then the code)")
        for line in logins:
            click.echo(f"  {line}")
        click.echo("\ncommands by hand, against the demo (in another shell):\n"
                   f"  . {_here(data_dir / 'hub.env')} && national-hub status\n"
                   f"  . {_here(data_dir / ('node-' + next(iter(COUNCILS)) + '.env'))} "
                   "&& local-node status\n"
                   "  (one env file per server, beside the hub's; docs/running.md lists "
                   "the commands)")
        if exit_when_synced:
            return
        click.echo("\nrunning; Ctrl-C stops everything.")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("\nstopping…")
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        embedded_pg.stop(data_dir / "pg")  # nothing of the demo outlives it


def _wait_synced(hub_env: dict[str, str], timeout: float = 300) -> None:
    """Until every council's hub seq equals its node's head seq with an empty outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([_bin("national-hub"), "status", "--json"], env=hub_env,
                             text=True, capture_output=True).stdout
        councils = json.loads(out)["councils"] if out.strip() else []
        if len(councils) == len(COUNCILS) and all(
                c["node_seq"] is not None and c["hub_seq"] == c["node_seq"]
                and c["outbox_depth"] == 0 for c in councils):
            return
        time.sleep(1)
    raise click.ClickException("the councils did not sync in time; see the logs")


if __name__ == "__main__":
    main()
