"""A comparison in plain words, for the review screens at hub and node: an index team
decides a pair from "Date of birth: same" and "Given name: similar spelling", not from
the model's level names (``JW_92``, ``MISSING``) and weights, which stay folded away.

Pure: a field and its level's name (as ``Explanation.to_dict`` writes them) in, words
out. A level this table does not know yet (a model newer than the page) is shown by
its own name rather than refused: the screen must still show the pair.

    >>> in_words("dob", "EXACT"), in_words("postcode", "AREA")
    (('Date of birth', 'same'), ('Postcode', 'same area'))
    >>> in_words("given_name", "JW_85"), in_words("upn", "MISSING")
    (('Given name', 'similar spelling'), ('Unique pupil number', 'not on both records'))
    >>> in_words("given_name", "NEW_LEVEL")
    ('Given name', 'new level')
    >>> evidence(2.5), evidence(-1.0), evidence(0.0)
    ('points to the same child', 'points to different children', 'no evidence either way')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FIELD_LABELS = {
    "given_name": "Given name",
    "other_given_names": "Other given names",
    "family_name": "Family name",
    "dob": "Date of birth",
    "sex": "Sex",
    "postcode": "Postcode",
    "address_line": "Address",
    "address": "Address",
    "nhs_number": "NHS number",
    "upn": "Unique pupil number",
}

_MISSING = "not on both records"
_COMMON = {"MISSING": _MISSING, "OTHER": "different", "EXACT": "same",
           "DISAGREE": "different", "AGREE": "same"}

LEVEL_WORDS: dict[str, dict[str, str]] = {
    "given_name": {"PHONETIC": "sounds alike", "JW_85": "similar spelling",
                   "JW_92": "very similar spelling",
                   "SWAPPED": "swapped with the family name",
                   "NICKNAME": "a short form of the same name"},
    "other_given_names": {"PARTIAL": "partly the same"},
    "family_name": {"PHONETIC": "sounds alike", "JW_HIGH": "very similar spelling",
                    "SWAPPED": "swapped with the given name",
                    "FORMER": "one is a former family name of the other",
                    "PART": "one is part of a double-barrelled name"},
    "dob": {"SAME_YEAR_MONTH": "same month and year, different day",
            "ONE_DIGIT": "one digit different", "YEAR_OFF": "same day and month, a year apart",
            "SWAPPED": "day and month swapped"},
    "postcode": {"OTHER": "different area", "AREA": "same area", "DISTRICT": "same district",
                 "TYPO": "one character different", "SECTOR": "same neighbourhood"},
    "address_line": {"MEDIUM": "partly alike", "STREET": "same street, different number",
                     "HIGH": "almost the same"},
}

# The safeguarding rules (protocol.matching.scoring.hard_rules) in words.
RULE_WORDS = {
    "nhs_number_differs": "The NHS numbers differ, so these are never joined automatically.",
    "upn_differs": "The pupil numbers differ, so these are never joined automatically.",
    "identity_incomplete": "Too little is known about one record to join them without a "
                           "person deciding.",
    "dob_differs": "The dates of birth differ.",
    "dob_differs_elsewhere": "The dates of birth differ and they live apart.",
    "names_swapped_elsewhere": "The names are swapped and they live apart.",
    "twins": "They could be twins: same family name, birthday and home.",
    "given_names_differ": "The given names differ.",
    "names_and_dob_alone": "Only names and a date of birth are known, and other children "
                           "could share them.",
    # not a rule of the pair: the resolver's (national_hub.services.link_decision)
    "child_holds_another_identifier": "The child the other record belongs to also has a "
                                      "record with a different NHS number or pupil "
                                      "number. Check which child this is before joining "
                                      "them.",
    "matches_two_children": "This record matches another child as well, and that child has "
                            "a different NHS number or pupil number. Check which child it "
                            "is before joining them.",
}

# Identifiers the records of two children hold differently, as a person is warned
# before making them one child (national_hub.services.review: ReviewService.conflicts)
DIFFERING_WORDS = {"nhs_number": "NHS numbers", "upn": "pupil numbers"}


def conflict_in_words(identifiers: Sequence[str]) -> str:
    """What linking a pair would join, in words: which identifiers the two children's
    records hold differently (their kinds, never their values).

        >>> conflict_in_words(["nhs_number"])
        "These records' children have different NHS numbers."
        >>> conflict_in_words(["nhs_number", "upn"])
        "These records' children have different NHS numbers and pupil numbers."
    """
    kinds = " and ".join(DIFFERING_WORDS.get(i, i.replace("_", " ")) for i in identifiers)
    return f"These records' children have different {kinds}."


def in_words(field: str, level: str) -> tuple[str, str]:
    """(the field's label, what its comparison level says) in plain words."""
    label = FIELD_LABELS.get(field, field.replace("_", " ").capitalize())
    words = (LEVEL_WORDS.get(field, {}).get(level) or _COMMON.get(level)
             or level.replace("_", " ").lower())
    return label, words


def evidence(weight: float) -> str:
    """Which way one comparison's weight points, without its number."""
    if weight > 0:
        return "points to the same child"
    if weight < 0:
        return "points to different children"
    return "no evidence either way"


def rule_in_words(rule: str) -> str:
    return RULE_WORDS.get(rule, rule.replace("_", " ").capitalize() + ".")


def described(explanation: Mapping[str, Any]) -> dict[str, Any]:
    """A stored explanation (``Explanation.to_dict``, with the hub's thresholds and model
    version when it has them) as a review screen shows it: each comparison in words,
    first; the rules that held it back in words; and the model's own detail (levels,
    weights, total, thresholds) for whoever unfolds it.

        >>> shown = described({"fields": [{"field": "dob", "level": "EXACT", "weight": 4.5}],
        ...                    "total": 1.25, "veto": None, "cap": "identity_incomplete"})
        >>> shown["comparisons"][0]["words"], shown["detail"]["total"]
        ('same', '+1.25')
        >>> shown["rules"]
        ['Too little is known about one record to join them without a person deciding.']
    """
    fields = [f for f in explanation.get("fields", []) if isinstance(f, Mapping)]
    comparisons, weights = [], []
    for f in fields:
        label, words = in_words(str(f.get("field", "")), str(f.get("level", "")))
        weight = float(f.get("weight") or 0.0)
        comparisons.append({"label": label, "words": words, "evidence": evidence(weight)})
        weights.append({"label": label, "level": str(f.get("level", "")),
                        "weight": f"{weight:+.2f}"})
    thresholds = explanation.get("thresholds") or {}
    return {
        "comparisons": comparisons,
        "rules": [rule_in_words(str(r)) for r in (explanation.get("veto"),
                                                   explanation.get("cap"),
                                                   explanation.get("held")) if r],
        "location_withheld": bool(explanation.get("location_withheld")),
        "detail": {"weights": weights, "total": f"{float(explanation.get('total') or 0):+.2f}",
                   "link_at": thresholds.get("link"), "review_at": thresholds.get("review"),
                   "model_version": explanation.get("model_version")},
    }
