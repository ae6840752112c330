"""The search fuzz (``fuzz_search``) aimed at a council's node: its practitioners'
``/v1/search`` (GET, or POST with a JSON body), ``GET /v1/children/{local_id}``,
``POST /search`` (the form) and ``/children/{local_id}``
(``local_node/handlers/practitioner.py``).

The children to start from are those the node's index holds: the sample children,
loaded through its services feed (:func:`sample_feed`), and a second record of the
first of them from the education feed (:data:`MERGE_FEED`), which the index team
merges into it (:func:`merge_reviewed`) so that its local id redirects, in a test or
the soak.

    fuzz = SearchFuzz(node_url, headers, await known_children(pool), seed, NODE)
"""

from __future__ import annotations

import csv
import io

import asyncpg

from bench.chaos.fuzz_search import SAMPLE_CHILDREN, Known, Target, query_of
from local_node.app import review_service
from local_node.storage.children import ChildStore

_NODE_HIT: dict[str, type | tuple[type, ...]] = {
    "local_id": str, "given_name": str, "family_name": str, "dob": str, "sex": int,
    "postcode_district": (str, type(None)), "shielded": bool, "confidence": (int, float)}
NODE = Target("node ", "local_id", _NODE_HIT, "involvements", search_page="/search",
              search_posts=True)
_POSTCODES = ["BN7 1AA", "TN34 1AB", "RH15 9AA", None]
# Amelia Okafor again, by her nickname, elsewhere and without her NHS number: close
# enough for the review list, not for a merge without one
MERGE_FEED = ("source_ref,upn,given_name,family_name,dob,sex,postcode\n"
              "E1,,Amy,Okafor,2015-03-14,F,TN2 2BB\n")


def sample_feed() -> str:
    """A services feed of the sample children, one involvement each (the last one
    sensitive, so the child view hides a service from a practitioner)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["source_ref", "nhs_number", "given_name", "family_name", "dob", "sex",
                     "postcode", "service_type", "service_name", "professional_name",
                     "professional_phone", "sensitive", "consent"])
    for i, ((given, family, dob, nhs), postcode) in enumerate(
            zip(SAMPLE_CHILDREN, _POSTCODES, strict=True)):
        last = i == len(SAMPLE_CHILDREN) - 1
        writer.writerow([f"F{i}", nhs or "", given, family, dob.isoformat(), "FM"[i % 2],
                         postcode or "", "mental_health" if last else "social_care",
                         "CAMHS" if last else "Children's Social Care", "Dana Smith",
                         "01273 000001", "Y" if last else "N", "N" if last else ""])
    return out.getvalue()


async def merge_reviewed(pool: asyncpg.Pool) -> int:
    """Accept every open review item, as the index team would; how many."""
    service = review_service(pool)
    items = await service.open_items()
    for item in items:
        await service.accept(item["id"], "fuzz")
    return len(items)


async def known_children(pool: asyncpg.Pool, limit: int = 200) -> list[Known]:
    """Queries made from the children the node's index holds (local ids, names, dates
    of birth, postcodes and NHS numbers), merged ones with the id they live on as."""
    async with pool.acquire() as conn:
        rows = await ChildStore().unarchived(conn, limit)
    return [Known(c.local_id, query_of(c.given_name, c.family_name, c.dob, c.postcode,
                                       c.nhs_number), c.merged_into or "") for c in rows]
