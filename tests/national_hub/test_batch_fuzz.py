"""A short seeded fuzz of the hub's batch endpoint over real HTTP, against PostgreSQL
(``bench.chaos.fuzz_batch``; ``make soak`` runs thousands of cases against a
``national-hub serve`` process).

Mutated batches (bit flips, wrong types, deep nesting, huge strings and arrays,
invalid UTF-8, bad dates, duplicate and unknown keys), signed so they reach the
decoders: never a 5xx, every refusal with a known code and nothing changed, every
accepted batch applied exactly as its receipt says (none half-applied).

Reproduce a failure with ``FUZZ_SEED=<seed> FUZZ_ROUNDS=<n>``.
"""

from __future__ import annotations

import os

from bench.chaos.fuzz_batch import BatchFuzz
from protocol import keys
from tests.hub_harness import Hub

ESX = "E10000011"
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))
ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "160"))


async def test_mutated_batches_never_fail_the_hub_or_half_apply(hub: Hub) -> None:
    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    hub_public = keys.load_public_key(hub.public_key_file.read_bytes())
    print(f"batch fuzz seed {SEED} (FUZZ_SEED={SEED} replays it)")
    report = await BatchFuzz(hub.url, hub.pool, ESX, key, hub_public, SEED).run(ROUNDS)
    assert report.problems == [], report.problems
    assert report.cases["batch"] == ROUNDS
    # the fuzz reached every kind of answer, not just the signature check
    accepted, refused = report.outcomes["batch accepted"], report.outcomes["batch refused"]
    assert accepted > ROUNDS // 4 and refused > ROUNDS // 10, report.outcomes
    assert {"malformed_msgpack", "malformed_request", "payload_too_large",
            "envelope_bad_signature", "batch_wrong_council", "op:invalid_record",
            "op:stale_version", "op:malformed_request"} <= report.seen, report.seen
