"""The topic registry's list of the worker's inputs (`input_roles`: what the verifier waits on
and the saga's deadlines look at) is the topics the agents subscribe to, in both payment modes."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from orderstream.contracts.topics import input_roles, registry
from orderstream.settings import Settings
from orderstream.worker import agents
from orderstream.worker.app import app, settings

for _module in pkgutil.iter_modules(agents.__path__):  # as the worker's autodiscovery does
    importlib.import_module(f"{agents.__name__}.{_module.name}")


def _subscribed(agent_names: list[str]) -> set[str]:
    names: set[str] = set()
    for name in agent_names:
        channel: Any = app.agents[name].channel
        names.update(channel.topics)
    return names


def test_the_inputs_are_what_the_agents_the_worker_runs_subscribe_to() -> None:
    specs = registry(settings)
    runs = [n for n in app.agents if not (settings.payment_mode == "inline" and n == "payment")]
    assert _subscribed(runs) == {specs[r].name for r in input_roles(settings)}


def test_only_the_payment_agent_mode_reads_the_payment_topics() -> None:
    inline, agent = Settings(payment_mode="inline"), Settings(payment_mode="agent")
    specs = registry(agent)
    payment_topics = {"payment_requests", "payment_events"}
    assert set(input_roles(agent)) - set(input_roles(inline)) == payment_topics
    assert not payment_topics & set(input_roles(inline))
    # The payment agent reads the requests; the saga (agent mode) reads the payment events
    assert _subscribed(["payment"]) == {specs["payment_requests"].name}
