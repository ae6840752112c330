"""Characters that change how text displays without being seen themselves.

A name comes from another council's system, and a practitioner reads it on a page. The
bidirectional controls (U+202E RIGHT-TO-LEFT OVERRIDE, the isolates U+2066 to U+2069,
the marks U+200E, U+200F and U+061C), the other invisible format characters (Unicode
category Cf: a zero-width space, a soft hyphen, a word joiner, a byte-order mark), the
C1 controls and DEL, and the line and paragraph separators let a name display as
another: ``"Ahmed\\u202edemhA"`` shows as "AhmedAhmed"::

    >>> hidden_character("Ahmed\\u202edemhA"), hidden_character("Zoë O'Brien")
    ('\\u202e', None)

The zero-width joiner and non-joiner (U+200D, U+200C) are letters' business, not
display tricks: Persian and the Indic scripts need them to spell a name, and they move
nothing, so they stay::

    >>> hidden_character("\\u0645\\u06cc\\u200c\\u0631\\u0636\\u0627") is None
    True

They are kept out where a record enters: the hub's batch intake refuses the record
(``protocol.records.check_display``), a node's feed loading removes them from the row
(``local_node.feed_cells.without_hidden``); not by the record's own check, which also
reads records already stored. Pages, and the JSON answers practitioners' and index
teams' programs read (:func:`reveal_within`), show any left in a stored value as U+FFFD
(:func:`reveal`), so one that came in before cannot disguise a name either::

    >>> reveal("Ahmed\\u202edemhA")
    'Ahmed\\ufffddemhA'
"""

from __future__ import annotations

import unicodedata
from typing import Any

_ALLOWED_FORMAT = frozenset("\u200c\u200d")  # zero-width non-joiner and joiner
_HIDDEN_CATEGORIES = frozenset({"Cf", "Cc", "Zl", "Zp"})
REPLACEMENT = "\ufffd"


def _hidden(c: str) -> bool:
    # Cc below U+0020 is the record's own rule ("contains control characters"); DEL and
    # the C1 controls are not, and display as nothing or as something else.
    return (c not in _ALLOWED_FORMAT and c >= "\x7f"
            and unicodedata.category(c) in _HIDDEN_CATEGORIES)


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` that changes how text displays unseen, or None.
    Text in plain ASCII is judged without a walk (most names)."""
    if text.isascii():
        return "\x7f" if "\x7f" in text else None
    return next((c for c in text if _hidden(c)), None)


def describe(c: str) -> str:
    """A hidden character as an error message names it.

    >>> describe("\\u202e")
    'U+202E RIGHT-TO-LEFT OVERRIDE'
    """
    name = unicodedata.name(c, "")
    return f"U+{ord(c):04X} {name}".rstrip()


def remove(text: str) -> str:
    """``text`` without its hidden characters (what a search typed or pasted means: the
    matcher drops format characters anyway).

    >>> remove("Oli\u00advia")
    'Olivia'
    """
    if hidden_character(text) is None:
        return text
    return "".join(c for c in text if not _hidden(c))


def reveal(text: str) -> str:
    """``text`` with every hidden character shown as U+FFFD (what a page displays)."""
    if hidden_character(text) is None:
        return text
    return "".join(REPLACEMENT if _hidden(c) else c for c in text)


def reveal_within(data: Any) -> Any:
    """Every text inside ``data`` (JSON-shaped: dicts, lists, tuples) as :func:`reveal`
    shows it; what is not text unchanged. For an answer a program puts in front of a
    person: a name that came in before intake refused hidden characters must not read
    as another there either.

    >>> reveal_within({"results": [{"family_name": "Ahmed\\u202edemhA", "sex": 1}]})
    {'results': [{'family_name': 'Ahmed\\ufffddemhA', 'sex': 1}]}
    """
    if isinstance(data, str):
        return reveal(data)
    if isinstance(data, dict):
        return {key: reveal_within(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [reveal_within(value) for value in data]
    return data
