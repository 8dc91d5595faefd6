"""The orders this worker changed most recently, for the recent-orders list and the page.

A Faust sensor sees every write to the orders table and remembers the last few hundred keys,
so listing them never scans the table; their values are read from the table when listed. After
a restart or a rebalance the list fills again as orders move; keys of partitions now owned by
another worker are left out (that worker lists them).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from faust import Sensor

from orderstream.domain.saga import OrderState
from orderstream.web.cluster import owns
from orderstream.worker.app import app
from orderstream.worker.tables.orders import get_order, orders_table

KEEP = 500  # upper bound of GET /orders?limit=


class RecentOrders(Sensor):
    def __init__(self, table: Any, keep: int) -> None:
        super().__init__()
        self.table = table
        self.keep = keep
        self.latest: OrderedDict[bytes, None] = OrderedDict()

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        if table is self.table:
            self.latest[key] = None
            self.latest.move_to_end(key)
            if len(self.latest) > self.keep:
                self.latest.popitem(last=False)

    def orders(self) -> list[OrderState]:
        """Newest placed first, only of the partitions this worker owns now."""
        owned = [key.decode() for key in list(self.latest) if owns(self.table, key)]
        found = [order for order in map(get_order, owned) if order is not None]
        return sorted(found, key=lambda o: o.placedAt, reverse=True)


recent_orders = RecentOrders(orders_table, KEEP)
app.sensors.add(recent_orders)
