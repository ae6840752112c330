"""Cells of a CSV file made for people to open in a spreadsheet (the audit export): text
from someone else's systems is written so that it opens as text. (The node's index
export is not one: it is matched against the source systems' ids, written as held.)"""

from __future__ import annotations

from typing import Any

from protocol.hidden_text import reveal

# What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, prefixed with ``'`` so that it is
    shown as written, and a character that would change how the text displays unseen
    shown as U+FFFD, as pages show it (``protocol.hidden_text``); anything else as it is.

    >>> safe_cell("=SUM(A1:A9)"), safe_cell("-1"), safe_cell("ann"), safe_cell(None)
    ("'=SUM(A1:A9)", "'-1", 'ann', None)
    >>> safe_cell("Ahmed\u202edemhA")
    'Ahmed\ufffddemhA'
    """
    if not isinstance(value, str):
        return value
    value = reveal(value)
    return "'" + value if value.startswith(_FORMULA_STARTS) else value
