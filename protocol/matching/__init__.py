"""Identity matching shared by the local node and the hub: pure Python, no I/O.

Is this the same child? Names are normalised and compared with nicknames,
Jaro–Winkler and phonetic codes (``names``); each field's agreement becomes a level
(``compare``); levels become Fellegi–Sunter weights with term-frequency adjustment
for names, plus hard safeguarding rules (different NHS numbers or UPNs, twins)
that no weight can outvote (``scoring``); blocking keys pick the pairs worth
scoring (``blocking``).

    >>> from datetime import date
    >>> alfie = IdentityFields("Alfie", "Okonkwo-Reilly", date(2016, 5, 9), 1,
    ...                        postcode="TF1 2AB", nhs_number="943 476 5919")
    >>> alfred = IdentityFields("Alfred", "Reilly", date(2016, 9, 5), 1,
    ...                         postcode="BN1 1AA", nhs_number="9434765919")
    >>> bool(blocking_keys(alfie) & blocking_keys(alfred))
    True
    >>> result = score(alfie, alfred, DEFAULT_MODEL)
    >>> [result.level(f) for f in ("given_name", "family_name", "dob", "nhs_number")]
    ['NICKNAME', 'PART', 'SWAPPED', 'AGREE']
    >>> result.decision()
    <Decision.LINK: 'link'>

Modules:
    names     normalisation, name parts, nickname equivalence, phonetic codes
    compare   IdentityFields and the per-field comparison levels
    location  postcode and address levels (edit distance; house number apart from street)
    frequencies  term frequencies of names, postcodes and addresses
    scoring   Model (m/u, prior, thresholds), score, decide, the hard rules
    blocking  blocking keys and in-memory candidate pairs
    training  a model from the records: u by random sampling, m by EM; plain EM
"""

from protocol.matching.blocking import blocking_keys, candidate_pairs, dob_variants
from protocol.matching.compare import (
    COMPARISONS,
    FIELDS,
    AddressLevel,
    DobLevel,
    FamilyNameLevel,
    GivenNameLevel,
    IdentifierLevel,
    IdentityFields,
    PostcodeLevel,
    SexLevel,
    compare_all,
)
from protocol.matching.frequencies import TermFrequencies
from protocol.matching.names import (
    UK_DIMINUTIVES,
    given_names_equivalent,
    name_parts,
    normalise_name,
    phonetic,
)
from protocol.matching.scoring import (
    DEFAULT_MODEL,
    Decision,
    Explanation,
    FieldScore,
    Model,
    Thresholds,
    decide,
    hard_rules,
    score,
)
from protocol.matching.training import TrainingSummary, estimate_m_u, estimate_u, train

__all__ = [
    "COMPARISONS",
    "DEFAULT_MODEL",
    "FIELDS",
    "UK_DIMINUTIVES",
    "AddressLevel",
    "Decision",
    "DobLevel",
    "Explanation",
    "FamilyNameLevel",
    "FieldScore",
    "GivenNameLevel",
    "IdentifierLevel",
    "IdentityFields",
    "Model",
    "PostcodeLevel",
    "SexLevel",
    "TermFrequencies",
    "Thresholds",
    "TrainingSummary",
    "blocking_keys",
    "candidate_pairs",
    "compare_all",
    "decide",
    "dob_variants",
    "estimate_m_u",
    "estimate_u",
    "given_names_equivalent",
    "hard_rules",
    "name_parts",
    "normalise_name",
    "phonetic",
    "score",
    "train",
]
