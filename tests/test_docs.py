"""Documents that resolve: every citation in code, tests and docs leads somewhere inside
the repository, and docs/PROTOCOL.md names every error code the code can send.

* ``docs/<file>`` names a file that exists; ``docs/<file>.md §N`` (or ``§N, §M``) names
  headings numbered N that exist in it; ``docs/<file>.md "Title"`` a heading with that
  title.
* Nothing cites what lives outside the repository: the shared ``DESIGN``/``CONVENTIONS``
  documents by section, or an issue tracker's "issue N" (say what it means instead).
* Every :class:`protocol.errors.ErrorCode` is in a table of docs/PROTOCOL.md §11.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.errors import ErrorCode

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", ".data", "__pycache__", ".mypy_cache", ".ruff_cache",
             ".pytest_cache", ".hypothesis", "build", "bench-out"}
TEXT_SUFFIXES = {".py", ".md", ".sql", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".ini",
                 ".html", ".css", ".j2", ".sh", ".service", ".conf"}
TEXT_NAMES = {"Makefile", "Dockerfile", "README.md"}

# A section list: "§6", "§3, §6", "§5 and §6", "§3.2.1".
CITATION = re.compile(
    r"docs/(?P<file>[\w./-]*\w)"
    r"(?:\s+(?P<sections>§[\d.]*\d(?:\s*(?:,|and)\s*§[\d.]*\d)*)|\s+\"(?P<title>[^\"]+)\")?")
OUTSIDE = re.compile(r"\b(?:DESIGN|CONVENTIONS)\s*§|\b(?:DESIGN|CONVENTIONS)\.md\b"
                     r"|\b[Ii]ssue\s+#?\d+")
# A comment continued on the next line: its marker is not part of the text.
COMMENT_BREAK = re.compile(r"\n[ \t]*(?:#|--)?[ \t]*")


def text_files() -> Iterator[Path]:
    """Every text file of the repository but this one (its examples lead nowhere)."""
    this = Path(__file__).resolve()
    for path in sorted(ROOT.rglob("*")):
        if path == this:
            continue
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES):
            yield path


def flattened(path: Path) -> str:
    return COMMENT_BREAK.sub(" ", path.read_text(encoding="utf-8", errors="replace"))


def headings(doc: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in doc.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")]


def unresolved(text: str) -> list[str]:
    """The citations in ``text`` that lead nowhere, each with why."""
    bad: list[str] = []
    for m in CITATION.finditer(text):
        target = ROOT / "docs" / m["file"]
        if not target.exists():
            bad.append(f"{m[0]!r}: no file docs/{m['file']}")
            continue
        if m["sections"] or m["title"]:
            if target.suffix != ".md":
                bad.append(f"{m[0]!r}: only a .md document has sections")
                continue
            heads = headings(target)
            for number in re.findall(r"§([\d.]*\d)", m["sections"] or ""):
                # "## 6. Access, audit, shielding", "#### 3.2.1 Absent names"
                if not any(re.match(rf"{re.escape(number)}\.?(?:\s|$)", h) for h in heads):
                    bad.append(f"{m[0]!r}: docs/{m['file']} has no section {number}")
            if m["title"] and not any(m["title"].lower() in h.lower() for h in heads):
                bad.append(f"{m[0]!r}: docs/{m['file']} has no heading {m['title']!r}")
    return bad


def test_the_scanner_sees_what_leads_nowhere() -> None:
    assert unresolved("see docs/design.md §6 and docs/design.md §3, §6") == []
    assert unresolved('docs/audit.md "Witnesses", docs/PROTOCOL.md §3.2.1') == []
    assert len(unresolved("docs/design.md §99, docs/nowhere.md")) == 2
    assert unresolved('docs/design.md §5 and §77')  # every section of a list is checked
    assert unresolved('docs/design.md §5, §77')
    assert unresolved('docs/audit.md "No such heading"')
    sample = "# see the\n# docs/security.md \"The attack\n# surface\" for why"
    assert unresolved(COMMENT_BREAK.sub(" ", sample)) == []
    for outside in ("DESIGN §6", "CONVENTIONS §1", "(issue 14)", "Issue 13's property"):
        assert OUTSIDE.search(outside), outside


def test_every_docs_citation_resolves() -> None:
    bad = [f"{path.relative_to(ROOT)}: {why}"
           for path in text_files() for why in unresolved(flattened(path))]
    assert not bad, "\n".join(bad)


def test_nothing_cites_what_lives_outside_the_repository() -> None:
    bad = [f"{path.relative_to(ROOT)}: {m[0]!r}"
           for path in text_files()
           for m in OUTSIDE.finditer(flattened(path))]
    assert not bad, "\n".join(bad)


def test_the_design_and_conventions_are_in_the_repository() -> None:
    assert any(h.startswith("6. Access") for h in headings(ROOT / "docs" / "design.md"))
    assert any(h.startswith("1. Imports") for h in headings(ROOT / "docs" / "conventions.md"))


def protocol_error_tables() -> str:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    start = text.index("\n## 11. Errors")
    return text[start:text.index("\n## 12.", start)]


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_every_error_code_is_in_protocol_section_11(code: ErrorCode) -> None:
    rows = [line for line in protocol_error_tables().splitlines()
            if line.startswith(f"| `{code}` |")]
    assert len(rows) == 1, f"docs/PROTOCOL.md §11 has {len(rows)} rows for `{code}`"
