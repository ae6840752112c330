"""Shield marks (``national_hub.storage.shielding``): transitive, sticky, set-based.

Records are published as signed batches to a real hub; the marks are read back from
PostgreSQL.
"""

from __future__ import annotations

from datetime import date

from national_hub.storage.shielding import ShieldingStore
from protocol import keys
from tests.hub_harness import Hub
from tests.national_hub.helpers import key_tables_disagree
from tests.national_hub.test_review import Council, child

ESX, TFW, WSX = "E10000011", "E06000020", "E10000032"
NHS, UPN = "9434765919", "B801200005001"


async def marks(hub: Hub) -> dict[tuple[str, str], set[str]]:
    async with hub.pool.acquire() as conn:
        rows = await conn.fetch("SELECT council_code, local_id, shielding_council"
                                " FROM shield_marks")
    out: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        out.setdefault((r[0], r[1]), set()).add(r[2])
    return out


async def location_keys(hub: Hub, council: str, local_id: str) -> list[str]:
    async with hub.pool.acquire() as conn:
        return [r[0] for r in await conn.fetch(
            "SELECT key FROM record_keys WHERE council_code = $1 AND local_id = $2"
            " AND (key LIKE 'dp:%' OR key LIKE 'gp:%')", council, local_id)]


async def test_marks_follow_every_relation_transitively_and_stick(hub: Hub) -> None:
    councils = {c: Council(hub, c) for c in (ESX, TFW, WSX)}
    for c in councils.values():
        await hub.enrol(c.code, keys.public_pem(c.key.public_key()))
    # A (shielded) shares an NHS number with B; B shares a UPN with C; D is a stranger
    await councils[ESX].send(child("A1", nhs=NHS, shielded=True))
    await councils[TFW].send(child("B1", given="Amelia", family="Okafor", nhs=NHS, upn=UPN))
    await councils[WSX].send(child("C1", given="Jack", family="Smith", upn=UPN),
                             child("D1", given="Oliver", family="Jones",
                                                   dob=date(2011, 5, 6), postcode="RH1 1AA"))
    found = await marks(hub)
    assert found == {(ESX, "A1"): {ESX}, (TFW, "B1"): {ESX}, (WSX, "C1"): {ESX}}
    assert await location_keys(hub, WSX, "C1") == []  # no postcode key reaches it
    assert await location_keys(hub, WSX, "D1") != []
    async with hub.pool.acquire() as conn:  # nor is one still listed as C1's
        assert await key_tables_disagree(conn) == []

    # East Sussex lifts its flag, then deletes the record: nothing is lifted elsewhere
    await councils[ESX].send(child("A1", nhs=NHS, shielded=False))
    assert (await marks(hub)).keys() >= {(TFW, "B1"), (WSX, "C1")}

    # an upgrade's repair: only the own marks left, one refresh carries them again
    async with hub.pool.acquire() as conn:
        await conn.execute("DELETE FROM shield_marks WHERE council_code <> shielding_council")
        async with conn.transaction():
            made = await ShieldingStore().refresh_all(conn)
    assert made == 2 and await marks(hub) == found
