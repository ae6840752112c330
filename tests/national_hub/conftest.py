"""Names the hub's tests share (the ``hub`` and ``esx`` fixtures are in tests/conftest.py)."""

from __future__ import annotations

ESX = "E10000011"
