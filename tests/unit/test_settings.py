"""Which agents a worker runs (ORDERSTREAM_AGENTS)."""

from __future__ import annotations

import pytest

from app.application import enabled_agents

AGENTS = ["inventory", "payment", "saga"]


def test_all_agents_by_default() -> None:
    assert enabled_agents(AGENTS, "") == AGENTS


def test_a_subset_by_name() -> None:
    assert enabled_agents(AGENTS, " inventory, saga ") == ["inventory", "saga"]


def test_an_unknown_agent_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match=r"unknown agents \['sagas'\]"):
        enabled_agents(AGENTS, "inventory,sagas")
