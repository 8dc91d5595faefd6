"""The orders this worker is driving, and what that bookkeeping decides: one owner for the open
orders' deadlines and for the order intake's flow control.

* `deadlines`: orderId -> (step, deadline) of each open order of this worker's partitions. The
  saga writes it with each order's state (`track`); the deadline timer fires the passed ones
  (orderstream/worker/timers/timeouts.py). It lives in memory, so after every rebalance it is
  `stale` until rebuilt from the orders table (once the tables are recovered: partitions come
  and go, and a table is empty until its recovery is done).
* `backlogs`: the saga topics' backlogs at the timer's last look (a deadline waiting on a moving
  backlog restarts instead of firing).
* The intake bound: with `saga_max_open` orders open, the order partitions leave the fetch
  (`hold_intake`) and come back once the open orders fell to `RESUME_AT` of it
  (`release_intake`). Which partitions are out is the consumer's `paused_by_app`
  (orderstream/faust_ext/consumer.py), where Faust's own flow control must see it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from faust.types import TP

from orderstream.domain.saga import Backlog, OrderState
from orderstream.observability import metrics
from orderstream.settings import Settings

RESUME_AT = 0.8  # of saga_max_open


class OpenOrders:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deadlines: dict[str, tuple[str, float]] = {}
        self.stale = True  # rebuilt from the orders table before the first deadline check
        self.backlogs: dict[str, Backlog] = {}

    def __len__(self) -> int:
        return len(self.deadlines)

    # -- deadlines ------------------------------------------------------------------------

    def track(self, order: OrderState) -> None:
        """The order's state was written: a settled order leaves, an open one (re)arms."""
        if order.terminal:
            self.deadlines.pop(order.orderId, None)
        else:
            self.deadlines[order.orderId] = (order.status, order.deadline)

    def rebuild(self, orders: Iterable[OrderState]) -> int:
        """Only these orders (the orders table of this worker's partitions) are open now."""
        self.deadlines.clear()  # revoked partitions' orders belong to another worker now
        for order in orders:
            self.track(order)
        self.stale = False
        return len(self.deadlines)

    def due(self, now: float) -> list[tuple[str, str, float]]:
        """(orderId, step, deadline) of the open orders whose deadline passed."""
        return [(oid, step, dl) for oid, (step, dl) in self.deadlines.items() if dl <= now]

    def rearm(self, order_id: str, step: str, deadline: float) -> None:
        self.deadlines[order_id] = (step, deadline)

    # -- the intake bound -----------------------------------------------------------------

    def intake_full(self) -> bool:
        return len(self.deadlines) >= self.settings.saga_max_open

    def hold_intake(self, consumer: Any, order_topic: str) -> None:
        """Take the order partitions out of the fetch, marked as Faust marks a full queue's
        partition (`on_buffer_full`): what was fetched is still handed over (an unmarked
        one's would be dropped), and its queue draining does not put it back."""
        held: set[TP] = consumer.paused_by_app
        fetched = consumer._get_active_partitions()
        for tp in [tp for tp in consumer.assignment() if tp.topic == order_topic]:
            if tp in fetched:
                consumer.on_buffer_full(tp)
            if tp not in held:  # also one Faust marked itself: its queue draining keeps it out
                held.add(tp)
                metrics.intake_throttled()

    def release_intake(self, consumer: Any) -> None:
        """Fetch new orders again once enough have settled (or a rebuild re-counted them)."""
        held: set[TP] = consumer.paused_by_app
        if held and len(self.deadlines) < self.settings.saga_max_open * RESUME_AT:
            back = list(held)
            held.clear()
            for tp in back:
                consumer.on_buffer_drop(tp)


def _worker_open_orders() -> OpenOrders:
    from orderstream.worker.app import app, settings

    owner = OpenOrders(settings)

    async def rebalanced(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        owner.stale = True  # partitions moved: rebuilt once the tables are recovered

    cast(Any, app.on_rebalance_complete).connect(rebalanced)
    return owner


#: The worker's one instance.
open_orders = _worker_open_orders()
