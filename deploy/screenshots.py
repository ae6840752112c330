"""``make screenshots``: the README's pictures, taken from the demo as a user sees it.

Runs ``make demo``'s federation (``deploy.demo``), signs in at the hub in Debian's
Chromium as the demo's practitioner, finds a child who moved between councils (one
person of the generator's truth with health records at two councils), opens their page,
then signs in as the operator and opens ``/ops``. Writes ``search.png``, ``child.png``
and ``ops.png`` into ``docs/images/`` (or ``--out``), then stops the demo.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import pyotp
from playwright.async_api import Page, async_playwright

from deploy.demo import HUB_PORT
from server_common import embedded_pg

ROOT = Path(__file__).resolve().parents[1]  # the demo runs from the repository's root
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
WIDTH, HEIGHT = 1100, 900


@dataclass(frozen=True, slots=True)
class Login:
    name: str
    password: str
    totp_secret: str


@dataclass(frozen=True, slots=True)
class Child:
    given_name: str
    family_name: str
    dob: str  # ISO


def hub_logins(printed: str) -> dict[str, Login]:
    """The demo's hub logins by account name, from what it printed.

    >>> hub_logins("  hub: operator / pw-1  TOTP secret ABC (code now: ...)")
    {'operator': Login(name='operator', password='pw-1', totp_secret='ABC')}
    """
    return {m[1]: Login(m[1], m[2], m[3]) for m in re.finditer(
        r"^\s*hub: (\S+) / (\S+)  TOTP secret (\w+)", printed, re.MULTILINE)}


def a_mover(feeds: Path) -> Child:
    """A child with health records at two councils (the generator's truth says who is who),
    as the newer council's feed names them."""
    councils_of: dict[str, set[str]] = {}
    with (feeds / "truth.csv").open(newline="", encoding="utf-8") as truth:
        rows = [r for r in csv.DictReader(truth) if r["source"] == "health"]
    for row in rows:
        councils_of.setdefault(row["person_id"], set()).add(row["council"])
    movers = {p for p, councils in councils_of.items() if len(councils) > 1}
    refs = {(r["council"], r["source_ref"]) for r in rows if r["person_id"] in movers}
    for council in sorted({c for c, _ in refs}):
        with (feeds / council / "health.csv").open(newline="", encoding="utf-8") as feed:
            for row in csv.DictReader(feed):
                if ((council, row["source_ref"]) in refs and row["given_name"]
                        and row["family_name"] and row["dob"]):
                    return Child(row["given_name"], row["family_name"], row["dob"])
    raise click.ClickException("the demo's population has no mover with a full health row")


async def _sign_in(page: Page, base: str, path: str, login: Login) -> None:
    await page.goto(base + path)
    await page.fill("#name", login.name)
    await page.fill("#password", login.password)
    await page.fill("#totp", pyotp.TOTP(login.totp_secret).now())
    await page.click("button[type=submit]")
    await page.wait_for_url(base + path)


async def take(base: str, practitioner: Login, operator: Login, child: Child,
               out: Path) -> list[Path]:
    """Search → child as the practitioner, then /ops as the operator, into the folder
    ``out`` (which must exist); the files written."""
    written: list[Path] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            await _sign_in(page, base, "/", practitioner)
            await page.fill("#given_name", child.given_name)
            await page.fill("#family_name", child.family_name)
            year, month, day = child.dob.split("-")
            await page.fill("#dob-day", day)
            await page.fill("#dob-month", month)
            await page.fill("#dob-year", year)
            await page.get_by_label("Child in need assessment (section 17)").check()
            await page.click("#search-button")
            await page.wait_for_selector("#results")
            written.append(out / "search.png")
            await page.screenshot(path=written[-1], full_page=True)
            await page.locator("table button").first.click()
            await page.wait_for_selector("h1")
            written.append(out / "child.png")
            await page.screenshot(path=written[-1], full_page=True)

            ops = await browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            await _sign_in(ops, base, "/ops", operator)
            await ops.wait_for_timeout(2500)  # its charts draw from the first refresh
            written.append(out / "ops.png")
            await ops.screenshot(path=written[-1], full_page=True)
        finally:
            await browser.close()
    return written


@contextmanager
def running_demo(data_dir: Path, children: int) -> Iterator[str]:
    """``deploy.demo`` running until the block ends; yields what it printed until then."""
    demo = subprocess.Popen(
        [sys.executable, "-u", "-m", "deploy.demo", "--children", str(children),
         "--data-dir", str(data_dir)],
        cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)  # its own process group: see the kill below
    assert demo.stdout is not None
    printed = []
    try:
        for line in demo.stdout:
            printed.append(line)
            if line.startswith("running; Ctrl-C stops everything"):
                break
        else:
            raise click.ClickException("the demo stopped early:\n" + "".join(printed)[-3000:])
        yield "".join(printed)
    finally:
        demo.send_signal(signal.SIGINT)  # as Ctrl-C
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # killing the demo alone would leave its hub and nodes running, holding the
            # demo's fixed ports (a loaded machine once took over a minute to stop it)
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            # the demo's own stop did not run: its PostgreSQL (started by pg_ctl, in a
            # session of its own) would outlive it
            embedded_pg.stop(data_dir / "pg")
        demo.stdout.close()


@click.command(help=__doc__)
@click.option("--out", default="docs/images", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--children", default=600, show_default=True, help="Children per council.")
@click.option("--data-dir", default=".data/screenshots", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
def main(out: Path, children: int, data_dir: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir.resolve()  # the demo runs from the repository's root
    with running_demo(data_dir, children) as printed:
        logins = hub_logins(printed)
        child = a_mover(data_dir / "feeds")
        for path in asyncio.run(take(f"http://127.0.0.1:{HUB_PORT}", logins["practitioner"],
                                     logins["operator"], child, out)):
            click.echo(f"wrote {path}")


if __name__ == "__main__":
    main()
