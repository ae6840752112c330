"""Local practitioner search: nickname-, typo- and swap-tolerant, ranked; child view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from local_node.app import PACKAGE, ingest_service
from local_node.services.search import SearchQuery, SearchService
from local_node.storage.children import ChildStore
from protocol.disclosure import INDEX_TEAM, PRACTITIONER, Viewer
from protocol.errors import ValidationError
from tests.conftest import DatabaseFactory
from tests.hub_harness import upgrade

ESX = "E10000011"


@pytest.fixture
async def search(make_database: DatabaseFactory, tmp_path: Path
                 ) -> AsyncIterator[SearchService]:
    url = await make_database()
    await upgrade(url, PACKAGE)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    feed = tmp_path / "services.csv"
    feed.write_text(
        "source_ref,nhs_number,upn,given_name,family_name,dob,sex,postcode,service_type,"
        "service_name,professional_name,professional_phone,lead_professional,caf_done,"
        "sensitive,consent\n"
        "S1,9434765919,,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,social_care,"
        "Children's Social Care,Dana Smith,01273 000001,Y,Y,N,\n"
        "S2,9434765919,,Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,sexual_health,"
        "Clinic,Sam Lee,01273 000002,N,N,Y,N\n"
        "S3,4010232137,,Isabella,Okonkwo-Reilly,2013-07-01,F,BN1 1AA,early_help,"
        "Early Help,Jo Bell,01273 000003,N,N,N,\n"
        "S4,9876543210,,Oliver,Smith,2014-02-05,M,TN2 2BB,early_help,Early Help,"
        "Jo Bell,01273 000003,N,N,N,\n", encoding="utf-8")
    report = await ingest_service(pool).ingest_file("services", feed)
    assert report.errors == []
    yield SearchService(pool, ChildStore(), ESX)
    await pool.close()


def q(**params: str) -> SearchQuery:
    return SearchQuery.parse(params)


async def test_nickname_typo_and_swapped_dob_find_the_child(search: SearchService) -> None:
    hits = await search.search(q(given_name="Izzy", family_name="Okonkwo-Reily",
                                 dob="2015-03-14"))
    assert hits and hits[0].child.nhs_number == "9434765919"
    swapped = await search.search(q(given_name="Isabella", family_name="Okonkwo-Reilly",
                                    dob="2015-03-14"))
    # the older sister (same name, other birthday) ranks below, if shown at all
    assert str(swapped[0].child.dob) == "2015-03-14"
    part = await search.search(q(given_name="Isabella", family_name="Reilly", dob="2015-03-14"))
    assert part and part[0].child.nhs_number == "9434765919"


async def test_identifier_search_and_bad_input(search: SearchService) -> None:
    hits = await search.search(q(nhs_number="987 654 3210"))
    assert [h.child.given_name for h in hits] == ["Oliver"] and hits[0].confidence == 1.0
    with pytest.raises(ValidationError) as err:
        q(given_name="Oliver")
    assert err.value.field == "query"
    with pytest.raises(ValidationError) as err:
        q(nhs_number="9434765918")
    assert err.value.field == "nhs_number"


async def test_child_view_hides_sensitive_services_unless_allowed(search: SearchService) -> None:
    hit = (await search.search(q(nhs_number="9434765919")))[0]
    view = await search.child(hit.child.local_id, Viewer(PRACTITIONER, None))
    assert [i["service_type"] for i in view["involvements"]] == ["social_care"]
    assert view["involvements"][0]["lead_professional"] is True
    assert view["involvements"][0]["caf_done"] is True
    # nor is the practitioner told that something was left out
    assert not any("sensitive" in key for key in view)
    # another council's index team is no more than a practitioner here
    assert await search.child(hit.child.local_id, Viewer(INDEX_TEAM, "E06000020")) == view
    full = await search.child(hit.child.local_id, Viewer(INDEX_TEAM, ESX))
    assert {i["service_type"] for i in full["involvements"]} == {"social_care", "sexual_health"}
