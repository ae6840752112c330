"""The load run's memory judgement (``bench.chaos.load._growing``) on series like the
ones it samples: a publisher's periodic spike is not a leak, a rising floor is."""

from __future__ import annotations

from bench.chaos.load import _growing

MB = 1024 * 1024


def series(values_mb: list[float], start: float = 241.0) -> list[tuple[float, int]]:
    return [(start + 8 * i, int(v * MB)) for i, v in enumerate(values_mb)]


def test_a_spike_at_the_end_of_the_steady_phase_is_not_a_leak() -> None:
    # node-E10000011 in the long soak run of 2026-11-26: 20 MB lifted for the last three
    # samples, the floor 66.8 MB in both halves
    spiky = series([75.6, 79.1, 66.8, 67.1, 69.9, 66.8, 66.8, 85.7, 85.7, 85.7])
    assert not _growing("node-E10000011", spiky, since=241.0)


def test_a_rising_floor_is_a_leak() -> None:
    leaking = series([100, 104, 108, 112, 116, 120, 124, 128, 132, 136])
    assert _growing("hub-0", leaking, since=241.0)


def test_samples_before_the_steady_phase_and_postgres_are_not_judged() -> None:
    growing_while_publishing = [(t, int((90 + t) * MB)) for t in range(0, 240, 8)]
    flat_after = series([200.0] * 10)
    assert not _growing("hub-0", growing_while_publishing + flat_after, since=241.0)
    assert not _growing("postgres", series([1500, 2000, 2500, 3000, 3500, 4000]), since=241.0)
