"""How people, dates and match strengths are written on every page (template filters,
server_common.pages)."""

from __future__ import annotations

_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")


def name_case(name: str | None) -> str:
    """A name as people write it: one feed sends ``OKONKWO-REILLY``; a name all in
    capitals (or all in small letters) is given capitals at each word, hyphen and
    apostrophe. A name in mixed case is as its source wrote it (McDonald, de Souza).

    >>> name_case("OKONKWO-REILLY"), name_case("o'brien"), name_case("McDonald")
    ('Okonkwo-Reilly', "O'Brien", 'McDonald')
    """
    if not name:
        return ""
    if name != name.upper() and name != name.lower():
        return name
    out, start = [], True
    for ch in name.lower():
        out.append(ch.upper() if start else ch)
        start = not ch.isalpha()
    return "".join(out)


def long_date(value: str | None) -> str:
    """``2015-08-19`` → ``19 August 2015`` (GOV.UK's style); anything else as it is."""
    if not value or len(value) < 10 or value[4] != "-" or value[7] != "-":
        return value or ""
    try:
        year, month, day = int(value[:4]), int(value[5:7]), int(value[8:10])
        return f"{day} {_MONTH_NAMES[month - 1]} {year}"
    except (ValueError, IndexError):
        return value


def match_strength(confidence: float) -> str:
    """What a search hit's match probability means, in a word (the search page
    explains the words)."""
    if confidence >= 0.9:
        return "Strong"
    return "Possible" if confidence >= 0.5 else "Weak"
