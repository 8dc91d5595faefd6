"""The customer history read model, recorded by the saga in the step that announces an outcome
(orderstream/worker/agents/saga.py), in that step's partition: each saga partition keeps its
own part of a customer's history (orderstream/domain/projections.py), and a reader merges the
parts (orderstream/web/projections.py). No Kafka record goes between the saga and the history.

The part lists the order; its summary is the order's settled state in the saga's orders table,
in the same partition (`projections.summary_of_state`): one record per order, the part.

The outcome is identified by its origin, the record whose step announced it: a step done again
(its record redelivered after a crash) announces the same outcome with the same origin, which
the part's watermark for that source partition drops. The part writes back once per commit
(orderstream/faust_ext/write_back.py), after what the step wrote through (the order's state):
a crash before the commit loses the part's values and the step's record comes again, the
order's state finds it applied and announces its outcome again (`saga.pending_commands`), and
it is recorded then.
"""

from __future__ import annotations

from orderstream.contracts.events import StatusEvent
from orderstream.domain import projections
from orderstream.domain.projections import Origin
from orderstream.observability import metrics
from orderstream.worker.tables.customer_orders import get_history, put_history


def record(outcome: StatusEvent, origin: Origin, partition: int) -> None:
    """Record an outcome in its customer's history part of saga partition `partition`."""
    summary = projections.summarize(outcome, origin)
    key = projections.history_key(summary.customerId, partition)
    before = get_history(key)
    decision = projections.record_order(before, summary)
    if decision.duplicate:
        metrics.duplicate_dropped("projections")
        if decision.state is None and before is not None:
            put_history(key, before)  # its changelog write, again
    if decision.state is not None:
        put_history(key, decision.state)
