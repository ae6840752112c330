"""Fixtures of the hub's tests (the ``hub`` itself is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from protocol import keys
from tests.hub_harness import Hub
from tests.national_hub.helpers import Client

ESX = "E10000011"


@pytest.fixture
async def esx(hub: Hub) -> Client:
    """East Sussex, enrolled at ``hub`` with a key of its own, as a raw signed client."""
    key = keys.generate()
    await hub.enrol(ESX, keys.public_pem(key.public_key()))
    return Client(hub, ESX, key)
