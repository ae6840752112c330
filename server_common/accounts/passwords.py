"""Which passwords are too weak: zxcvbn's estimate (Dropbox's checker), not a length.

A password is refused below score 3 ("safely unguessable: moderate protection from
an offline slow-hash scenario"), judged with the user's name and the service's name
as words an attacker would try first. zxcvbn's own warning and suggestions become
the reason given.

    >>> weakness("Password1234!", ["asha"]) is not None
    True
    >>> weakness("otter quantum lantern marmalade", ["asha"]) is None
    True
"""

from __future__ import annotations

import re

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MIN_SCORE = 3
# zxcvbn's cost grows with length; nobody types more than this.
MAX_LENGTH = 256


def weakness(password: str, user_inputs: list[str]) -> str | None:
    """Why ``password`` is refused, or None if it is strong enough."""
    if len(password) < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"at most {MAX_LENGTH} characters"
    words = [w for text in user_inputs for w in [text, *re.split(r"[^a-z0-9]+", text.lower())]
             if len(w) >= 3]
    result = zxcvbn(password, user_inputs=words)
    if result["score"] >= MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    parts = [feedback.get("warning") or "too easy to guess",
             *(feedback.get("suggestions") or [])]
    return " ".join(p.rstrip(".") + "." for p in parts if p)
