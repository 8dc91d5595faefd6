"""Gauges read from state rather than counted from events, refreshed on a timer: readiness,
consumer lag per source partition (the broker's end offset minus the group's committed offset),
and the stock gauges again after a rebalance moved products between workers."""

from __future__ import annotations

import logging
from typing import Any

from mode import Service

from orderstream.contracts.topics import registry
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import decode_state
from orderstream.observability import metrics
from orderstream.worker.app import app, settings
from orderstream.worker.group_offsets import group_offsets
from orderstream.worker.open_orders import open_orders
from orderstream.worker.readiness import is_ready
from orderstream.worker.tables.inventory import stock_table

log = logging.getLogger(__name__)

# Lag is shown for the registry's topics that this worker's consumer is assigned, changelogs
# aside (Faust recovers those; it does not consume them as a stream).
SOURCE_TOPICS = frozenset(
    s.name for r, s in registry(settings).items() if not r.startswith("changelog_")
)


@app.service
class GaugeRefresher(Service):
    """Runs in every worker; a partition's lag and a product's stock are shown by its owner."""

    def __post_init__(self) -> None:
        self.stock_shown_for: frozenset[Any] | None = None

    async def on_stop(self) -> None:
        await group_offsets.close()

    @Service.timer(settings.metrics_refresh_s)
    async def refresh(self) -> None:
        ready = is_ready()
        metrics.worker_ready(ready)
        if not ready:
            return
        try:
            self._show_stock()
            metrics.sagas_open(len(open_orders))
            metrics.consumer_lag(await self._lags())
        except Exception as exc:  # a broker hiccup or a rebalance: keep the last values
            log.info("gauges not refreshed: %r", exc)

    def _show_stock(self) -> None:
        """After the partitions changed, show exactly this worker's products again (the
        inventory agent keeps them current from then on)."""
        actives = frozenset(app.assignor.assigned_actives())
        if actives == self.stock_shown_for:
            return
        metrics.stock.forget()
        for raw in stock_table.values():
            metrics.stock.show(decode_state(raw, ProductStock))
        self.stock_shown_for = actives

    async def _lags(self) -> dict[tuple[str, int], int]:
        tps = [tp for tp in app.consumer.assignment() if tp.topic in SOURCE_TOPICS]
        return {key: p.lag for key, p in (await group_offsets.progress(tps)).items()}
