"""``national-hub status``: the federation health snapshot as a terminal table.

Example::

    federation BAD at 2026-11-25 10:00:00 UTC: 2 council(s) (1 GOOD, 1 BAD)
    code       name               status  hub seq node seq   lag  outbox heartbeat  records key days resolving
    E10000011  East Sussex        GOOD         12       12     0       0       4 s     3000      365         0
    E10000032  West Sussex        BAD           7        7     0       0    12 min     1200        -         0
               - no heartbeat for 12 min
               - forked: seq 7 was already applied with a different hash
"""  # noqa: E501 - the example shows the real, wider-than-a-line table

from __future__ import annotations

from collections import Counter

from national_hub.services.health import FederationHealth, Status, span

_HEADER = (f"{'code':<10} {'name':<18} {'status':<6} {'hub seq':>8} {'node seq':>8} "
           f"{'lag':>5} {'outbox':>7} {'heartbeat':>9} {'records':>8} {'key days':>8} "
           f"{'resolving':>9}")


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def format_table(health: FederationHealth) -> str:
    counts = Counter(c.status for c in health.councils)
    tally = ", ".join(f"{counts[s]} {s}" for s in Status if counts[s])
    lines = [f"federation {health.status} at {health.generated_at:%Y-%m-%d %H:%M:%S %Z}: "
             f"{len(health.councils)} council(s)" + (f" ({tally})" if tally else ""),
             _HEADER]
    for c in health.councils:
        heartbeat = (None if c.seconds_since_heartbeat is None
                     else span(c.seconds_since_heartbeat))
        key_days = None if c.key_expiry_days is None else f"{c.key_expiry_days:.0f}"
        lines.append(
            f"{c.code:<10} {c.name[:18]:<18} {c.status:<6} {c.hub_seq:>8} "
            f"{_cell(c.node_seq):>8} {_cell(c.lag):>5} {_cell(c.outbox_depth):>7} "
            f"{_cell(heartbeat):>9} {c.records:>8} {_cell(key_days):>8} "
            f"{c.resolution_queue:>9}")
        lines.extend(f"{'':<10} - {reason}" for reason in c.reasons)
    return "\n".join(lines)
