"""The one registry of Kafka topics: names, keys, writers and explicit configs.

Agents, the admin command and the Kubernetes manifests all read it, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orderstream.contracts.events import Event
from orderstream.settings import Settings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic and the configs it is created with."""

    role: str  # stable name used in code (the topic name itself is configurable)
    name: str
    key: str
    writer: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return "compact" in self.configs.get("cleanup.policy", "")


# Tables, each backed by a compacted changelog topic named <app_id>-<table>-changelog by Faust.
TABLES: tuple[str, ...] = (
    "inventory",
    "committed_holds",
    "orders",
    "payments",
    # read models (orderstream/domain/projections.py)
    "customer_orders",
    "product_sales",
)


def changelog_topic(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def registry(settings: Settings) -> dict[str, TopicSpec]:
    """Every topic the application reads or writes, by role."""
    p, rf, isr = settings.partitions, settings.replication_factor, settings.min_insync_replicas
    prefix = settings.topic_prefix

    def log(retention_ms: int) -> dict[str, str]:
        return {
            "cleanup.policy": "delete",
            "retention.ms": str(retention_ms),
            "min.insync.replicas": str(isr),
        }

    compact = {
        "cleanup.policy": "compact",
        "min.insync.replicas": str(isr),
        "min.compaction.lag.ms": "0",
        "segment.ms": str(3600 * 1000),
    }
    specs = [
        # The order log is the source of truth: never compacted, retained by time.
        TopicSpec(
            "orders",
            prefix + settings.order_topic,
            "orderId",
            "order service",
            p,
            rf,
            log(settings.order_retention_ms),
        ),
        TopicSpec(
            "inventory_requests",
            prefix + "inventory-requests",
            "productId",
            "saga",
            p,
            rf,
            log(7 * DAY_MS),
        ),
        TopicSpec(
            "stock_adjustments",
            prefix + "stock-adjustments",
            "productId",
            "admin (HTTP, CLI)",
            p,
            rf,
            log(30 * DAY_MS),
        ),
        TopicSpec(
            "inventory_events",
            prefix + "inventory-events",
            "orderId",
            "inventory agent",
            p,
            rf,
            log(7 * DAY_MS),
        ),
        TopicSpec(
            "payment_requests",
            prefix + "payment-requests",
            "orderId",
            "saga",
            p,
            rf,
            log(7 * DAY_MS),
        ),
        TopicSpec(
            "payment_events",
            prefix + "payment-events",
            "orderId",
            "payment agent",
            p,
            rf,
            log(7 * DAY_MS),
        ),
        TopicSpec(
            "order_status", prefix + "order-status", "orderId", "saga", p, rf, log(7 * DAY_MS)
        ),
        TopicSpec(
            "saga_timeouts",
            prefix + "saga-timeouts",
            "orderId",
            "saga timer",
            p,
            rf,
            log(1 * DAY_MS),
        ),
        TopicSpec(
            "dead_letters",
            prefix + "dead-letters",
            "source key",
            "any agent",
            p,
            rf,
            log(30 * DAY_MS),
        ),
    ]
    specs += [
        TopicSpec(
            f"changelog_{t}",
            changelog_topic(settings, t),
            "table key",
            "Faust",
            p,
            rf,
            dict(compact),
        )
        for t in TABLES
    ]
    return {s.role: s for s in specs}


# Where each event type is published, and which field is its Kafka key.
_ROUTES: dict[str, tuple[str, str]] = {
    "OrderPlaced": ("orders", "orderId"),
    "ReserveStock": ("inventory_requests", "productId"),
    "ReleaseStock": ("inventory_requests", "productId"),
    "CommitStock": ("inventory_requests", "productId"),
    "CommitStockBatch": ("inventory_requests", "productId"),
    "StockAdjusted": ("stock_adjustments", "productId"),
    "StockReserved": ("inventory_events", "orderId"),
    "StockRejected": ("inventory_events", "orderId"),
    "PaymentRequested": ("payment_requests", "orderId"),
    "PaymentSucceeded": ("payment_events", "orderId"),
    "PaymentFailed": ("payment_events", "orderId"),
    "OrderConfirmed": ("order_status", "orderId"),
    "OrderRejected": ("order_status", "orderId"),
    "OrderCancelled": ("order_status", "orderId"),
    "SagaTimedOut": ("saga_timeouts", "orderId"),
}


def route(event: Event) -> tuple[str, str]:
    """(topic role, key) of an event: per-key ordering comes from always keying the same way."""
    role, field_name = _ROUTES[event.eventType]
    return role, str(getattr(event.data, field_name))


# Where the worker relays an event type to, besides where it is published: a stock adjustment
# joins its product's command log, the one input the stock changes by
# (orderstream/worker/agents/inventory.py).
_RELAYED_TO: dict[str, str] = {"StockAdjusted": "inventory_requests"}


def accepted_types(*roles: str) -> tuple[str, ...]:
    """The event types that may appear on the topics with these roles."""
    return tuple(
        t for t, (role, _) in _ROUTES.items() if role in roles or _RELAYED_TO.get(t) in roles
    )


#: The roles the worker's agents consume. With inline payment (`payment_mode="inline"`) the
#: saga charges the gateway in its own step: the payment topics are its output only.
_INPUTS = (
    "orders",
    "inventory_requests",
    "stock_adjustments",
    "inventory_events",
    "payment_requests",
    "payment_events",
    "saga_timeouts",
)
_PAYMENT_INPUTS = ("payment_requests", "payment_events")


def input_roles(settings: Settings) -> tuple[str, ...]:
    """The roles of the topics the worker consumes with these settings."""
    inline = settings.payment_mode == "inline"
    return tuple(r for r in _INPUTS if not (inline and r in _PAYMENT_INPUTS))
