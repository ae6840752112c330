"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser).

Under CI (CI=true) a missing Chromium fails the test; .ci/run installs it. Elsewhere
the test is skipped with the reason. tests/conftest.py registers these fixtures for
every test (``pytest_plugins``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


# -- checks every page of a journey gets ----------------------------------------------

AXE = Path(__file__).resolve().parent / "assets" / "axe.min.js"  # axe-core 4.14.1, MIT
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"  # git-ignored
BLOCKING = ("serious", "critical")


async def assert_accessible(page: Page) -> None:
    """Run axe-core on the page as it is now; fail on any serious or critical violation,
    naming the rule, its help text and the elements. The script is evaluated through
    the DevTools protocol, which the pages' strict CSP does not govern (a ``<script>``
    tag would be refused, as it should be)."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    violations = await page.evaluate("""async () => {
        const result = await window.axe.run(document, {resultTypes: ["violations"]});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
    }""")
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"axe on {page.url}:\n" + "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in blocking)


async def assert_fits(page: Page, width: int = 320) -> None:
    """At ``width`` CSS pixels the page needs no sideways scrolling (WCAG 1.4.10
    reflow); the viewport is put back afterwards."""
    before = page.viewport_size
    await page.set_viewport_size({"width": width, "height": 900})
    try:
        wider = await page.evaluate("""() => {
            const root = document.documentElement;
            const over = root.scrollWidth - root.clientWidth;
            const culprits = [...document.querySelectorAll("body *")]
                .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
                .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
                                      + (e.className ? "." + String(e.className).trim()
                                         .split(/\\s+/).join(".") : ""));
            return {over, culprits};
        }""")
    finally:
        if before is not None:
            await page.set_viewport_size(before)
    assert wider["over"] <= 0, (f"{page.url} scrolls {wider['over']} px sideways at "
                                f"{width} px: {wider['culprits']}")


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot kept as a test artifact (``test-artifacts/<name>.png``)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def check_page(page: Page, name: str) -> None:
    """What every page a journey visits must pass: axe, and 320 px without sideways
    scrolling; then a screenshot."""
    await assert_accessible(page)
    await assert_fits(page)
    await screenshot(page, name)
