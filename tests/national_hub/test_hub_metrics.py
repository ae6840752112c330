"""The hub's /metrics: intake counters by outcome, code and result, and each council's
health gauges, as a scrape returns them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from national_hub.services.councils import CouncilService
from national_hub.storage.councils import CouncilStore
from national_hub.storage.heartbeats import HeartbeatStore
from protocol import encoding, keys
from protocol.batch import GENESIS, DeleteOp, UpsertOp
from server_common.metrics import REQUEST_DURATION
from tests.hub_harness import Hub
from tests.national_hub.helpers import Client, batch_bytes, record
from tests.scrape import scrape

ESX, WSX = "E10000011", "E10000032"
BATCHES = "/v1/councils/{code}/batches"


async def test_intake_counters_and_health_gauges(hub: Hub) -> None:
    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    esx = Client(hub, ESX, key)
    # WSX: never heard from, its only key expiring in three days
    await CouncilService(hub.pool, CouncilStore(), HeartbeatStore()).enrol(
        WSX, "West Sussex", keys.public_pem(keys.generate().public_key()),
        not_after=datetime.now(UTC) + timedelta(days=3))

    bad_wire = record("L2", nhs=None).to_wire() | {"nhs_number": "9434765918"}
    body1, h1 = batch_bytes(ESX, 1, GENESIS, [
        UpsertOp.of(record("L1"), 5), UpsertOp("L2", 1, encoding.pack(bad_wire)),
        DeleteOp("L3", 1)], key)
    assert (await esx.send(body1))[0] == 200
    assert (await esx.send(body1))[0] == 200  # replayed
    body2, _ = batch_bytes(ESX, 2, h1, [UpsertOp.of(record("L1"), 4)], key)  # stale
    assert (await esx.send(body2))[0] == 200
    far_ahead, _ = batch_bytes(ESX, 20, h1, [DeleteOp("L9", 1)], key)
    assert (await esx.send(far_ahead))[0] == 409  # seq_gap
    beat = encoding.pack({"head_seq": 4, "outbox_depth": 7})
    assert (await esx.send(beat, tail="heartbeats"))[0] == 200

    m = await scrape(hub.url, await hub.operator())

    assert m.value("signpost_batches_total", council=ESX, outcome="applied") == 2
    assert m.value("signpost_batches_total", council=ESX, outcome="replayed") == 1
    assert m.value("signpost_batches_total", council=ESX, outcome="refused") == 1
    assert m.value("signpost_batch_refusals_total", council=ESX, code="seq_gap") == 1
    assert m.value("signpost_records_total", council=ESX, result="applied") == 2
    assert m.value("signpost_records_total", council=ESX, result="rejected") == 1
    assert m.value("signpost_records_total", council=ESX, result="stale") == 1

    # ESX: one batch refused in 24 h makes it WARN; the heartbeat says 4 built, 2 applied
    assert m.value("signpost_council_status", council=ESX) == 1
    assert m.value("signpost_council_lag_batches", council=ESX) == 2
    assert m.value("signpost_council_outbox_depth", council=ESX) == 7
    age = m.value("signpost_council_heartbeat_age_seconds", council=ESX)
    assert age is not None and 0 <= age < 60
    assert m.value("signpost_council_records", council=ESX) == 1  # L1; L3 is a tombstone
    assert m.value("signpost_review_queue_size", council=ESX) == 0
    assert m.value("signpost_council_key_expiry_seconds", council=ESX) is None  # never expires

    # WSX: a key expiring within the BAD threshold, and no heartbeat ever
    assert m.value("signpost_council_status", council=WSX) == 2
    expiry = m.value("signpost_council_key_expiry_seconds", council=WSX)
    assert expiry is not None and abs(expiry - 3 * 86400) < 3600
    assert m.value("signpost_council_heartbeat_age_seconds", council=WSX) == math.inf
    assert m.value("signpost_council_lag_batches", council=WSX) is None
    assert m.value("signpost_federation_status") == 2

    # request latency by route template, never the council's own path
    count = REQUEST_DURATION + "_count"
    assert m.value(count, service="national_hub", method="POST", route=BATCHES,
                   status="200") == 3
    assert m.value(count, method="POST", route=BATCHES, status="409") == 1
    assert not [labels for labels, _ in m.series(count) if ESX in labels["route"]]


async def test_gauges_follow_the_database_at_each_scrape(hub: Hub) -> None:
    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    first = await scrape(hub.url, await hub.operator())
    assert first.value("signpost_council_status", council=ESX) == 1  # never heard from: WARN
    await Client(hub, ESX, key).send(encoding.pack({"head_seq": 0, "outbox_depth": 0}),
                                     tail="heartbeats")
    second = await scrape(hub.url, await hub.operator())
    assert second.value("signpost_council_status", council=ESX) == 0
    assert second.value("signpost_federation_status") == 0


async def test_audit_log_gauges(hub: Hub) -> None:
    """An entry is unsigned until a checkpoint covers it."""
    from server_common.audit.entry import AuditEntry
    from server_common.audit.service import AuditLog

    before = await scrape(hub.url, await hub.operator())
    assert before.value("signpost_audit_checkpoint_age_seconds") == math.inf
    audit = AuditLog(hub.pool, keys.load_private_key(hub.config.hub.key_file))
    await audit.record(AuditEntry("olu", "operator", "NHS England", "test", "councils_add"))
    size = await audit.size()
    assert size >= 1
    now = await scrape(hub.url, await hub.operator())
    assert now.value("signpost_audit_log_size") == size
    assert now.value("signpost_audit_uncheckpointed_entries") == size
    await audit.checkpoint()
    signed = await scrape(hub.url, await hub.operator())
    assert signed.value("signpost_audit_uncheckpointed_entries") == 0
    age = signed.value("signpost_audit_checkpoint_age_seconds")
    assert age is not None and 0 <= age < 60
