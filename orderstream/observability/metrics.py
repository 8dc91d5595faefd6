"""Every Prometheus metric of orderstream, and one small function per thing worth counting.

Labels are bounded by the code (statuses, outcomes, reasons, agents, partitions) or by a cap
(products); never a label per order id. Faust's own sensors (`faust_*`) join them on /metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from orderstream.contracts.events import SagaInput, SagaTimedOut, StockRejected, StockReserved
from orderstream.domain.common import Decision
from orderstream.domain.inventory import ProductStock
from orderstream.domain.saga import OrderState
from orderstream.settings import get_settings

OTHER_PRODUCTS = "_other"  # the label of every product past the cap, summed
# Every kind of dead letter the code raises (EventError, RuleViolation, internal_error); a unit
# test keeps the list complete. They start at 0: an increase() over a series that appears at 1
# is 0, so without this the first dead letter of a kind would never alert.
DEAD_LETTER_REASONS = (
    "empty",
    "invalid_json",
    "invalid_utf8",
    "too_large",
    "too_deep",
    "validation",
    "unknown_event_type",
    "duplicate_order_id",
    "conflicting_duplicate",
    "insufficient_stock",
    "out_of_order",
    "internal_error",
)

ORDERS_PLACED = Counter("orderstream_orders_placed", "New orders taken up by the saga.")
ORDERS_SETTLED = Counter(
    "orderstream_orders_settled", "Orders that reached a terminal status.", ["status"]
)
SAGA_DURATION = Histogram(
    "orderstream_saga_duration_seconds",
    "From OrderPlaced (its event time) to the order's terminal status.",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
GC_PAUSES = Histogram(
    "orderstream_gc_pause_seconds",
    "Collections of Python's cyclic garbage collector, by generation: the event loop, and "
    "every stream, waits while one runs.",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
SAGA_TIMEOUTS = Counter(
    "orderstream_saga_timeouts", "Saga steps that passed their deadline.", ["step"]
)
SAGA_DEADLINES_HELD = Counter(
    "orderstream_saga_deadlines_held",
    "Passed saga deadlines restarted instead of timing out: the step's topics had a backlog "
    "being worked through.",
    ["step"],
)
INTAKE_THROTTLED = Counter(
    "orderstream_order_intake_throttled",
    "Order partitions taken out of the fetch because saga_max_open orders were open.",
)
SAGAS_OPEN = Gauge("orderstream_sagas_open", "Orders this worker drives that are not settled.")
RESERVATIONS = Counter("orderstream_stock_reservations", "Stock holds taken, one per order line.")
REJECTIONS = Counter(
    "orderstream_stock_rejections", "Order lines the inventory refused.", ["reason"]
)
PAYMENTS = Counter("orderstream_payments", "Orders charged, by outcome.", ["outcome"])
DEAD_LETTERS = Counter(
    "orderstream_dead_letters", "Events parked on the dead-letter topic.", ["reason"]
)
DUPLICATES = Counter(
    "orderstream_duplicates_dropped", "Events found already applied and dropped.", ["agent"]
)
OUT_OF_ORDER = Counter(
    "orderstream_out_of_order_events",
    "Events impossible in their key's current state, dead-lettered as out_of_order.",
    ["agent", "event_type"],
)
STOCK_AVAILABLE = Gauge(
    "orderstream_stock_available", "Units on the shelf, per product of this worker.", ["product"]
)
STOCK_HELD = Gauge(
    "orderstream_stock_held", "Units held for open orders, per product of this worker.", ["product"]
)
CONSUMER_LAG = Gauge(
    "orderstream_consumer_lag",
    "Messages after the group's committed offset, per source partition of this worker.",
    ["topic", "partition"],
)
PARTITIONS_RESUMED = Counter(
    "orderstream_partitions_resumed",
    "Assigned partitions Faust had stopped fetching, resumed by the watchdog (faust #629).",
)
RECORDS_REREAD = Counter(
    "orderstream_records_reread",
    "Records fetched but not processed (a delivery abandoned or dropped in a rebalance): their "
    "partition is rewound to them and they are read again, never committed over.",
)
PARTITION_REWINDS = Counter(
    "orderstream_partition_rewinds",
    "Partitions sought back to a record not processed, or to their committed offsets after a "
    "failed send.",
    ["cause"],
)
PARTITIONS_FAULTED = Gauge(
    "orderstream_partitions_faulted",
    "Partitions stopped at a record their agent failed on after its retries (infrastructure "
    "errors, not bad input); rewound after a back-off.",
)
DELIVERY_FAILING = Gauge(
    "orderstream_delivery_failing",
    "1 while records this worker sent failed to reach the broker and nothing is committed.",
)
WORKER_FENCED = Gauge(
    "orderstream_worker_fenced",
    "1 while the worker, paused past a share of its session timeout, applies and sends nothing "
    "until the group confirms it still owns its partitions.",
)
TASKS_FENCED = Counter(
    "orderstream_tasks_fenced",
    "Exactly-once mode: tasks whose transaction the broker fenced (another worker owns the "
    "task now; nothing this worker sent for it since its last commit became visible).",
)
HANDLER_RETRIES = Counter(
    "orderstream_handler_retries",
    "Records retried in place after an unexpected error (store, broker), by agent.",
    ["agent"],
)
RECORDS_REPARTITIONED = Counter(
    "orderstream_records_repartitioned",
    "Input records found on another partition than their entity's key gives (another "
    "partitioner, no key, another key), re-published to the right one before being applied.",
    ["topic"],
)
REPLIES_AHEAD = Counter(
    "orderstream_replies_ahead_of_state",
    "Replies that arrived before the order state they answer (rebuilt after a crash, or "
    "behind a backlog): set aside; the step that asked is processed again and asks again.",
    ["event_type"],
)
SEND_FAILURES = Counter(
    "orderstream_send_failures",
    "Records (events and changelog writes) the Kafka producer could not deliver after its "
    "retries, by topic.",
    ["topic"],
)
KAFKA_METADATA_RESTARTS = Counter(
    "orderstream_kafka_metadata_restarts",
    "Times a Kafka client's metadata task failed with an unexpected error and was restarted "
    "(orderstream/kafka/metadata_guard.py), by client.",
    ["client"],
)
WORKER_READY = Gauge("orderstream_worker_ready", "1 once this worker's tables are recovered.")

MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)


class Children(Generic[MetricT]):
    """The labelled children of one metric, each looked up once: prometheus_client's `.labels()`
    checks, converts and locks on every call (about 1 µs, several times per record); a dict hit
    costs a tenth of that. A child stays valid until its metric is cleared, so a metric wrapped
    here is cleared through `clear`, never directly."""

    __slots__ = ("_known", "metric")

    def __init__(self, metric: MetricT) -> None:
        self.metric: MetricT = metric
        self._known: dict[tuple[str, ...], MetricT] = {}

    def __call__(self, *values: str) -> MetricT:
        child = self._known.get(values)
        if child is None:
            child = self._known[values] = self.metric.labels(*values)
        return child

    def clear(self) -> None:
        self._known.clear()
        self.metric.clear()


_settled = Children(ORDERS_SETTLED)
_saga_duration = Children(SAGA_DURATION)
_gc_pauses = Children(GC_PAUSES)
_timeouts = Children(SAGA_TIMEOUTS)
_deadlines_held = Children(SAGA_DEADLINES_HELD)
_rejections = Children(REJECTIONS)
_payments = Children(PAYMENTS)
_dead_letters = Children(DEAD_LETTERS)
_duplicates = Children(DUPLICATES)
_out_of_order = Children(OUT_OF_ORDER)
_stock_available = Children(STOCK_AVAILABLE)
_stock_held = Children(STOCK_HELD)
_rewinds = Children(PARTITION_REWINDS)
_handler_retries = Children(HANDLER_RETRIES)
_repartitioned = Children(RECORDS_REPARTITIONED)
_replies_ahead = Children(REPLIES_AHEAD)
_send_failures = Children(SEND_FAILURES)
# CONSUMER_LAG is cleared at each refresh (not per record): it keeps calling .labels().

# Known label values start at 0, so rates and alerts have a series before the first event.
for _status in ("CONFIRMED", "REJECTED", "CANCELLED"):
    _settled(_status)
for _generation in ("0", "1", "2"):
    _gc_pauses(_generation)
for _step in ("RESERVING", "PAYING"):
    _timeouts(_step)
    _deadlines_held(_step)
for _reason in ("out_of_stock", "unknown_product"):
    _rejections(_reason)
for _outcome in ("succeeded", "failed"):
    _payments(_outcome)
for _agent in ("saga", "inventory", "payment", "projections"):
    _duplicates(_agent)
for _cause in ("unprocessed", "fault", "send_failed"):
    _rewinds(_cause)
for _reason in DEAD_LETTER_REASONS:
    _dead_letters(_reason)


def order_placed() -> None:
    ORDERS_PLACED.inc()


def order_settled(status: str, duration_s: float) -> None:
    _settled(status).inc()
    _saga_duration(status).observe(max(duration_s, 0.0))  # clocks of producers may skew


def gc_paused(generation: int, seconds: float) -> None:
    _gc_pauses(str(generation)).observe(seconds)


def saga_timed_out(step: str) -> None:
    _timeouts(step).inc()


def intake_throttled() -> None:
    INTAKE_THROTTLED.inc()


def sagas_open(n: int) -> None:
    SAGAS_OPEN.set(n)


def saga_deadline_held(step: str) -> None:
    _deadlines_held(step).inc()


def stock_reserved() -> None:
    RESERVATIONS.inc()


def stock_rejected(reason: str) -> None:
    _rejections(reason).inc()


def payment_settled(status: str) -> None:
    _payments(status.lower()).inc()


def dead_lettered(reason: str) -> None:
    _dead_letters(reason).inc()


def duplicate_dropped(agent: str) -> None:
    _duplicates(agent).inc()


def out_of_order(agent: str, event_type: str) -> None:
    _out_of_order(agent, event_type).inc()


def partition_resumed() -> None:
    PARTITIONS_RESUMED.inc()


def records_reread(n: int = 1) -> None:
    RECORDS_REREAD.inc(n)


def partition_rewound(cause: str) -> None:
    _rewinds(cause).inc()


def partitions_faulted(n: int) -> None:
    PARTITIONS_FAULTED.set(n)


def delivery_failing(failing: bool) -> None:
    DELIVERY_FAILING.set(1 if failing else 0)


def send_failed(topic: str) -> None:
    _send_failures(topic).inc()


def kafka_metadata_restarted(client: str) -> None:
    KAFKA_METADATA_RESTARTS.labels(client=client).inc()


def worker_fenced(fenced: bool) -> None:
    WORKER_FENCED.set(1 if fenced else 0)


def task_fenced() -> None:
    TASKS_FENCED.inc()


def handler_retried(agent: str) -> None:
    _handler_retries(agent).inc()


def record_repartitioned(topic: str) -> None:
    _repartitioned(topic).inc()


def reply_ahead_of_state(event_type: str) -> None:
    _replies_ahead(event_type).inc()


def worker_ready(ready: bool) -> None:
    WORKER_READY.set(1 if ready else 0)


def saga_decided(before: OrderState | None, ev: SagaInput, decision: Decision[OrderState]) -> None:
    """Count one saga step: a new order, a settled one (with its duration), a timeout, a dup."""
    after = decision.state
    if decision.duplicate:
        duplicate_dropped("saga")
    if decision.out_of_order:
        out_of_order("saga", ev.eventType)
    if after is None:
        return
    if before is None:
        order_placed()
    elif isinstance(ev, SagaTimedOut):
        saga_timed_out(ev.data.step)
    if after.terminal and not (before is not None and before.terminal):
        order_settled(after.status, (after.updatedAt - after.placedAt).total_seconds())


def inventory_decided(decision: Decision[ProductStock]) -> None:
    """Count one inventory step and show the product's new stock."""
    if decision.duplicate:
        duplicate_dropped("inventory")
    else:
        for ev in decision.emit:
            if isinstance(ev, StockReserved):
                stock_reserved()
            elif isinstance(ev, StockRejected):
                stock_rejected(ev.data.reason or "rejected")
    if decision.state is not None:
        stock.show(decision.state)


class StockGauges:
    """Stock per product with at most `cap` product labels per worker; the products past the
    cap are summed under product="_other", so totals stay true and the series stay bounded."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.labelled: dict[str, tuple[int, int]] = {}
        self.others: dict[str, tuple[int, int]] = {}

    def show(self, s: ProductStock) -> None:
        level = (s.available, s.held)
        if s.productId in self.labelled or len(self.labelled) < self.cap:
            self.labelled[s.productId] = level
            _stock_available(s.productId).set(s.available)
            _stock_held(s.productId).set(s.held)
            return
        was = self.others.get(s.productId, (0, 0))
        self.others[s.productId] = level
        _stock_available(OTHER_PRODUCTS).inc(level[0] - was[0])
        _stock_held(OTHER_PRODUCTS).inc(level[1] - was[1])

    def forget(self) -> None:
        """Drop every product (after a rebalance: some may belong to another worker now)."""
        self.labelled.clear()
        self.others.clear()
        _stock_available.clear()
        _stock_held.clear()


stock = StockGauges(get_settings().metrics_stock_label_cap)


def consumer_lag(lags: Mapping[tuple[str, int], int]) -> None:
    """Set the lag of this worker's partitions; partitions it no longer has disappear."""
    CONSUMER_LAG.clear()
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic, str(partition)).set(max(lag, 0))
