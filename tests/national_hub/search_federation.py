"""A small real federation for hub search: East Sussex and Telford and Wrekin ingest
feeds and publish to the hub over HTTP; users of every role with bearer tokens.

The children:

* **Isabella Okonkwo-Reilly** (NHS 9434765919) moved from East Sussex (school, GP, an
  early-help lead professional with a CAF, CAMHS published with consent) to Telford
  (GP, a social worker): one national child held by two councils.
* **Kacper Nowak**, shielded at East Sussex (school, GP, social care).
* **Lily Hart** (East Sussex) and **Lily Oduya** (Telford): one child, a new surname
  after a move; the hub can only queue the pair, and a person links it later.
* **Oliver Smith** (Telford), a bystander.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from server_common.accounts import AccountsConfig, Role
from server_common.accounts.service import AccountService
from tests.conftest import DatabaseFactory
from tests.federation import Hub, Node, running_hub, running_node

ESX, TFW = "E10000011", "E06000020"
PASSWORD = "correct horse battery"
MOVER_NHS = "9434765919"

FEEDS: dict[str, dict[str, str]] = {
    ESX: {
        "education": (
            "source_ref,upn,given_name,family_name,dob,sex,address_line,postcode,school_urn,"
            "school_name,school_phone,start_date\n"
            "E1,B801200005001,Isabella,Okonkwo-Reilly,2015-03-14,F,1 Sea Lane,BN1 1AA,114580,"
            "Hove Park School,01273 111111,2020-09-01\n"
            "E2,,Kacper,Nowak,2012-07-21,M,9 Quiet Road,BN2 3CD,114600,"
            "Varndean School,01273 444444,2019-09-01\n"
            "E3,,Lily,Hart,2016-02-09,F,4 Hill Street,BN1 1AA,114580,"
            "Hove Park School,01273 111111,2021-09-01\n"),
        "health": (
            "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
            "gp_ods_code,gp_name,gp_phone,registered_from\n"
            f"H1,{MOVER_NHS},Isabella,Okonkwo-Reilly,2015-03-14,F,1 Sea Lane,BN1 1AA,G81001,"
            "Sea Lane Surgery,01273 222222,2015-04-01\n"
            "H2,9434765005,Kacper,Nowak,2012-07-21,M,9 Quiet Road,BN2 3CD,G81002,"
            "Quiet Road Practice,01273 555555,2012-08-01\n"),
        "services": (
            "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
            "service_name,professional_name,professional_role,professional_phone,"
            "professional_email,lead_professional,caf_done,sensitive,consent,shielded,"
            "start_date\n"
            f"S1,{MOVER_NHS},Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,early_help,"
            "Early Help Hove,Dana Smith,Family Worker,01273 333333,dana.smith@esx.gov.uk,"
            "Y,Y,N,,N,2023-01-10\n"
            f"S2,{MOVER_NHS},Isabella,Okonkwo-Reilly,2015-03-14,F,BN1 1AA,mental_health,"
            "CAMHS Brighton,Sam Lee,Clinician,01273 666666,,N,N,Y,Y,N,2023-05-01\n"
            "S3,9434765005,Kacper,Nowak,2012-07-21,M,BN2 3CD,social_care,"
            "Children's Social Care,Ruth Adams,Social Worker,01273 777777,,Y,N,N,,Y,"
            "2024-02-01\n"),
    },
    TFW: {
        "health": (
            "source_ref,nhs_number,given_name,family_name,dob,sex,address_line,postcode,"
            "gp_ods_code,gp_name,gp_phone,registered_from\n"
            f"H1,{MOVER_NHS},Isabella,Okonkwo-Reilly,2015-03-14,F,12 Wrekin Way,TF1 2AB,"
            "M82001,Wrekin Medical Practice,01952 111111,2025-06-01\n"
            "H2,9434765013,Oliver,Smith,2014-02-05,M,3 Park Road,TF2 9ZZ,M82001,"
            "Wrekin Medical Practice,01952 111111,2014-03-01\n"
            "H3,,Lily,Oduya,2016-02-09,F,7 Dale Road,TF1 2AB,M82001,"
            "Wrekin Medical Practice,01952 111111,2025-06-01\n"),
        "services": (
            "source_ref,nhs_number,given_name,family_name,dob,sex,postcode,service_type,"
            "service_name,professional_name,professional_role,professional_phone,"
            "lead_professional,caf_done\n"
            f"S1,{MOVER_NHS},Isabella,Okonkwo-Reilly,2015-03-14,F,TF1 2AB,social_care,"
            "Telford Children's Services,Priya Shah,Social Worker,01952 222222,Y,N\n"),
    },
}

# name → (role, council)
USERS: dict[str, tuple[Role, str | None]] = {
    "pat": (Role.PRACTITIONER, None),
    "esa": (Role.INDEX_TEAM, ESX),
    "tia": (Role.INDEX_TEAM, TFW),
    "olu": (Role.OPERATOR, None),
    "aud": (Role.AUDITOR, None),
}


@dataclass
class SearchFederation:
    hub: Hub
    nodes: dict[str, Node]
    tokens: dict[str, str] = field(default_factory=dict)
    totp: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def search_federation(make_database: DatabaseFactory, tmp_path: Path
                            ) -> AsyncIterator[SearchFederation]:
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(running_hub(await make_database(), tmp_path))
        nodes = {}
        for code, feeds in FEEDS.items():
            node = await stack.enter_async_context(
                running_node(code, await make_database(), tmp_path, hub))
            for feed, text in feeds.items():
                path = tmp_path / f"{code}-{feed}.csv"
                path.write_text(text, encoding="utf-8")
                assert (await node.ingest(feed, path)).errors == []
            assert (await node.publish()).records_rejected == 0
            nodes[code] = node
        await hub.resolved()  # national ids, which search answers with
        federation = SearchFederation(hub, nodes)
        accounts = AccountService(hub.pool, AccountsConfig())
        for name, (role, council) in USERS.items():
            user = await accounts.add_user(name, role, council=council,
                                           organisation=f"{name} org", password=PASSWORD)
            federation.totp[name] = user.totp_secret
            federation.tokens[name] = (await accounts.create_token(name))[0]
        yield federation
