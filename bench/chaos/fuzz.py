"""What a fuzz run counts, and the mutations both fuzzers share.

``fuzz_batch`` mutates signed batches for ``POST /v1/councils/{code}/batches``;
``fuzz_search`` mutates practitioners' queries to ``GET /v1/search``,
``/v1/children/{id}`` and the search pages, of the hub or (``fuzz_node``) a council's
node. Each records every case in a :class:`FuzzReport`; what must never happen is a
*failure*, by kind:

- ``5xx``: the server answered a mutated request with a server error;
- ``unknown_code``: a refusal (or a rejected op) without a code of ``ErrorCode``;
- ``partial_apply``: a refused batch changed something, or an accepted one changed
  other records than those reported applied, or left one not as its op said;
- ``bad_answer``: an accepted request whose answer is not well-formed (a receipt that
  does not verify, a search answer missing fields, a page without its heading).

``tests/national_hub/test_*_fuzz.py`` and ``tests/local_node/test_practitioner_fuzz.py`` run
short seeded versions in ``make test``; ``bench.soak`` runs thousands of cases against a
``national-hub serve`` and a ``local-node serve`` process.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from protocol import encoding
from protocol.errors import ErrorCode

CODES = frozenset(str(c) for c in ErrorCode)
FAILURES = ("5xx", "unknown_code", "partial_apply", "bad_answer")
BAD_DATES: list[Any] = ["2015-02-30", "2015-13-01", "15-01-01", "2015-W11-6", "2999-01-01",
                        "1989-12-31", "2015-1-1", "", " ", 20150101, None, ["2015-01-01"],
                        "２０１５-01-01", "2015-01-01T00:00:00Z"]
WRONG: list[Any] = [None, True, 0, -1, 2**64 - 1, 1.5, "", "x" * 300, b"\x00\xff", [],
                    [1, [2]], {}, {"a": 1}]


@dataclass
class FuzzReport:
    seed: int = 0
    cases: Counter[str] = field(default_factory=Counter)        # per endpoint
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)     # "batch accepted", …
    failures: Counter[str] = field(default_factory=Counter)     # kinds of FAILURES
    seen: set[str] = field(default_factory=set)                 # codes met
    problems: list[str] = field(default_factory=list)

    def case(self, endpoint: str, status: int) -> None:
        self.cases[endpoint] += 1
        self.statuses[status] += 1

    def fail(self, kind: str, text: str) -> None:
        assert kind in FAILURES, kind
        self.failures[kind] += 1
        if len(self.problems) < 50:
            self.problems.append(f"{kind}: {text}")

    def code(self, code: object, where: str, prefix: str = "") -> None:
        """A refusal's code: known, or a failure."""
        if isinstance(code, str) and code in CODES:
            self.seen.add(prefix + code)
        else:
            self.fail("unknown_code", f"{where}: {code!r}")

    @property
    def ok(self) -> bool:
        return not self.failures

    def __iadd__(self, other: FuzzReport) -> FuzzReport:
        self.cases += other.cases
        self.statuses += other.statuses
        self.outcomes += other.outcomes
        self.failures += other.failures
        self.seen |= other.seen
        self.problems += other.problems[:max(0, 50 - len(self.problems))]
        return self

    def lines(self) -> list[str]:
        # searches per target: the hub's endpoints bare ("api_search"), a node's
        # with its label ("node api_search")
        targets: dict[str, dict[str, int]] = {}
        for key, n in sorted(self.cases.items()):
            if key != "batch":
                label, _, endpoint = key.rpartition(" ")
                targets.setdefault(f"{label} search".lstrip(), {})[endpoint] = n
        searches = "".join(
            f"; {name} {sum(counts.values())}: "
            f"{', '.join(f'{k} {v}' for k, v in counts.items())}"
            for name, counts in sorted(targets.items(), key=lambda t: t[0] != "search"))
        return [
            f"fuzz cases tried: {sum(self.cases.values())} (batch {self.cases['batch']}"
            f"{searches}), seed {self.seed}",
            f"fuzz outcomes: {dict(sorted(self.outcomes.items()))}; statuses "
            f"{dict(sorted(self.statuses.items()))}",
            f"fuzz 5xx: {self.failures['5xx']}, unknown codes: "
            f"{self.failures['unknown_code']}, partial applies: "
            f"{self.failures['partial_apply']}, malformed answers: "
            f"{self.failures['bad_answer']}",
        ]


def flip(data: bytes, rng: random.Random, bits: int) -> bytes:
    out = bytearray(data)
    for _ in range(bits):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def splice(obj: Any, marker: str, raw: bytes) -> bytes:
    """Pack ``obj``, then put ``raw`` (any bytes, even invalid msgpack) where the
    string ``marker`` was: how deep nesting and bad UTF-8 get into a message."""
    packed = encoding.pack(obj)
    token = encoding.pack(marker)
    assert packed.count(token) == 1
    return packed.replace(token, raw)
