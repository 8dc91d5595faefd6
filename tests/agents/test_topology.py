"""The topic registry's list of the worker's inputs (`input_roles`: what the verifier waits on
and the saga's deadlines look at) is the topics the agents subscribe to, in both payment modes."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import agents
from app.application import app, settings
from app.settings import Settings
from app.topics import input_roles, registry

for _module in pkgutil.iter_modules(agents.__path__):  # as the worker's autodiscovery does
    importlib.import_module(f"agents.{_module.name}")


def _subscribed(agent_names: list[str]) -> set[str]:
    names: set[str] = set()
    for name in agent_names:
        channel: Any = app.agents[name].channel
        names.update(channel.topics)
    return names


def test_the_inputs_are_what_the_agents_subscribe_to_with_the_payment_agent() -> None:
    specs = registry(settings)
    assert settings.payment_mode == "agent"
    assert _subscribed(list(app.agents)) == {specs[r].name for r in input_roles(settings)}


def test_with_inline_payment_the_payment_topics_are_nobodys_input() -> None:
    inline = Settings(payment_mode="inline")
    specs = registry(inline)
    # The saga's subscription without payment events, and no payment agent
    others = [n for n in app.agents if n not in ("payment", "saga")]
    expected = _subscribed(others) | {specs[r].name for r in ("inventory_events", "saga_timeouts")}
    assert {specs[r].name for r in input_roles(inline)} == expected
    assert not {"payment_requests", "payment_events"} & set(input_roles(inline))
