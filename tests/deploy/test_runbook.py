"""docs/operations.md stays true: every alert in deploy/prometheus/alerts.yml has its own
section (and no section outlives its alert), every `national-hub …` / `local-node …`
command the runbook tells an operator to type is a real command with real options,
every link inside it lands on a heading, and the README links to it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import yaml

from local_node.cli import main as node_cli
from national_hub.cli import main as hub_cli

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations.md"
TOOLS: dict[str, click.Group] = {"national-hub": hub_cli, "local-node": node_cli}
COMMAND = re.compile(r"^(national-hub|local-node)\s")


def text() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def sections(level: str) -> dict[str, str]:
    """Heading → body, for headings of exactly ``level`` (e.g. '###')."""
    found: dict[str, str] = {}
    current = None
    for line in text().splitlines():
        heading = re.match(r"^(#+)\s+(.*)$", line)
        if heading:
            current = heading.group(2).strip() if heading.group(1) == level else None
            if current is not None:
                found[current] = ""
            continue
        if current is not None:
            found[current] += line + "\n"
    return found


def alert_names() -> list[str]:
    doc = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [rule["alert"] for group in doc["groups"] for rule in group["rules"]]


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    alerts_part = text().split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    in_alerts = re.findall(r"^### (\S+)\s*$", alerts_part, re.M)
    assert sorted(in_alerts) == sorted(alert_names())
    bodies = sections("###")
    for name in alert_names():
        words = len(bodies[name].split())
        assert words >= 40, f"the runbook section for {name} says too little ({words} words)"
        assert "**Do**" in bodies[name] or "**Meaning**" in bodies[name], name


def commands() -> list[str]:
    """Every command line the runbook shows: in code blocks and in `inline code`."""
    found = []
    in_block = False
    for line in text().splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if in_block and COMMAND.match(line.strip()):
            found.append(line.strip().split("  #", 1)[0])
    prose = re.sub(r"^\s*```.*?^\s*```", "", text(), flags=re.M | re.S)
    found += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)
              if COMMAND.match(span)]
    return found


def test_every_command_in_the_runbook_exists_with_its_options() -> None:
    shown = commands()
    assert len(shown) >= 25
    for line in shown:
        words = shlex.split(line.replace("…", "X"))
        command: click.Command = TOOLS[words[0]]
        takes_value = False
        for word in words[1:]:
            if takes_value:  # the value of the option before (`--council E10000011`)
                takes_value = False
            elif word.startswith("-"):
                option = word.split("=", 1)[0]
                params = {n: p for p in command.params for n in getattr(p, "opts", [])}
                assert option in params, f"{line!r}: {command.name} has no option {option}"
                found = params[option]
                takes_value = ("=" not in word and isinstance(found, click.Option)
                               and not found.is_flag)
            elif isinstance(command, click.Group):
                sub = command.get_command(click.Context(command), word)
                assert sub is not None, f"{line!r}: no command {word!r} in {command.name}"
                command = sub
        assert not isinstance(command, click.Group), f"{line!r} names a group, not a command"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_inside_the_runbook_land_on_headings_and_readme_links_it() -> None:
    anchors = {slug(h) for h in re.findall(r"^#+\s+(.*)$", text(), re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", text())
    assert links and set(links) <= anchors, set(links) - anchors
    assert "(docs/operations.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
