"""Bucket digests (protocol.anti_entropy): properties the node and hub rely on."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.anti_entropy import (
    MAX_BITS,
    BucketRecords,
    BucketRecordsRequest,
    DigestRequest,
    DigestSummary,
    HeldEntry,
    bucket_of,
    choose_bits,
    differing_buckets,
    summarise,
)
from protocol.errors import SignpostError
from tests.strategies import local_ids, versions

digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
held_maps = st.dictionaries(local_ids, st.tuples(versions, digests), min_size=1, max_size=60)
bit_counts = st.integers(0, MAX_BITS)
Held = dict[str, tuple[int, str]]  # local id → (version, digest)


@given(local_ids, bit_counts)
def test_a_bucket_is_in_range_and_refines_with_more_bits(local_id: str, bits: int) -> None:
    bucket = bucket_of(local_id, bits)
    assert 0 <= bucket < 2**bits
    if bits < MAX_BITS:
        assert bucket_of(local_id, bits + 1) >> 1 == bucket


@given(held_maps, bit_counts, st.randoms())
def test_summary_ignores_order_and_counts_every_record(held: Held, bits: int,
                                                       rnd: random.Random) -> None:
    items = list(held.items())
    rnd.shuffle(items)
    summary = summarise(held, bits)
    assert summary == summarise(dict(items), bits)
    assert sum(b.count for b in summary.values()) == len(held)


@given(held_maps, bit_counts, st.data())
def test_one_changed_record_changes_exactly_its_bucket(held: Held, bits: int,
                                                       data: st.DataObject) -> None:
    local_id = data.draw(st.sampled_from(sorted(held)))
    version, digest = held[local_id]
    changed = data.draw(st.sampled_from(["version", "digest", "gone"]))
    other = dict(held)
    if changed == "version":
        other[local_id] = (version + 1, digest)
    elif changed == "digest":
        other[local_id] = (version, ("0" if digest[0] != "0" else "1") + digest[1:])
    else:
        del other[local_id]
    assert differing_buckets(summarise(held, bits), summarise(other, bits)) == [
        bucket_of(local_id, bits)]


@given(held_maps, bit_counts)
def test_messages_round_trip(held: Held, bits: int) -> None:
    summary = DigestSummary("E10000011", bits, len(held),
                            tuple(sorted(summarise(held, bits).values(),
                                         key=lambda b: b.bucket)))
    assert DigestSummary.decode(summary.encode()) == summary
    request = BucketRecordsRequest(bits, tuple(sorted({bucket_of(x, bits) for x in held})))
    assert BucketRecordsRequest.decode(request.encode()) == request
    records = BucketRecords("E10000011", bits, tuple(
        HeldEntry(lid, v, "live", d) for lid, (v, d) in sorted(held.items())))
    assert BucketRecords.decode(records.encode()) == records
    assert DigestRequest.decode(DigestRequest(bits).encode()) == DigestRequest(bits)


@pytest.mark.parametrize(("count", "bits"), [(0, 0), (32, 0), (33, 1), (246_000, 13),
                                             (10**9, MAX_BITS)])
def test_bits_aim_at_about_32_records_a_bucket(count: int, bits: int) -> None:
    assert choose_bits(count) == bits


def test_a_held_entry_states_its_digest_only_when_live() -> None:
    with pytest.raises(SignpostError):
        HeldEntry.from_wire({"local_id": "L1", "version": 1, "state": "damaged", "digest": "x"})
    with pytest.raises(SignpostError):
        HeldEntry.from_wire({"local_id": "L1", "version": 1, "state": "live"})
