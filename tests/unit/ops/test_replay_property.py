"""Property: the whole order flow, run through an in-memory model of Kafka, settles every order
exactly once, conserves every product's stock and charges at most once, also when messages
are delivered twice, and ends in the same state as without the duplicates.

The model: one FIFO queue per (topic, key). Each step delivers the head of a random non-empty
queue (any interleaving across keys, Kafka's order within a key). A delivery may be repeated at
once, as when a consumer handled a record but crashed before committing its offset; its outputs
are then sent twice too. Later redeliveries of a whole log suffix are what the agents' offset
watermark (domain.common.already_applied) filters out: they belong to the agent tests.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from orderstream.contracts.events import (
    Event,
    InventoryInput,
    OrderItem,
    OrderPlaced,
    OrderPlacedData,
    PaymentRequestData,
    PaymentRequested,
    PaymentSucceeded,
    SagaInput,
    StatusEvent,
    StockAdjusted,
    StockAdjustmentData,
    decode,
    encode,
)
from orderstream.contracts.topics import accepted_types, route
from orderstream.domain import inventory, payment, saga
from orderstream.domain.inventory import ProductStock
from orderstream.domain.payment import Charge, PaymentRecord
from orderstream.domain.saga import OrderState
from orderstream.domain.state import as_dict
from orderstream.worker.gateway import SimulatedGateway, TransientGatewayError

T0 = 1_700_000_000.0  # the model's clock starts here and ticks one second per delivery
T0_AT = datetime.fromtimestamp(T0, UTC)  # as an event's timestamp
UNKNOWN = "GHOST"  # never stocked
BLOCKED = "c-blocked"
LIMIT = 100.0
GATEWAY = SimulatedGateway(
    limit_per_order=LIMIT, declined_customers=frozenset({BLOCKED}), transient_failure_rate=0.4
)
MAX_ATTEMPTS = 2
TIMER_RATE = 0.2  # chance per step that the saga timer scans for passed deadlines
NO_TIMEOUTS = 1e9
MAX_STEPS = 10_000
OUTCOME_TYPE = {
    "CONFIRMED": "OrderConfirmed",
    "REJECTED": "OrderRejected",
    "CANCELLED": "OrderCancelled",
}

SAGA_INPUTS = frozenset({"orders", "inventory_events", "payment_events", "saga_timeouts"})
INVENTORY_INPUTS = frozenset({"inventory_requests", "stock_adjustments"})


# --- the scenario ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    order_id: str
    items: tuple[tuple[str, int], ...]
    customer: str
    amount: float
    v1: bool  # sent in the seed's flat shape

    def payload(self) -> bytes:
        if self.v1:
            return orjson.dumps(
                {
                    "eventType": "OrderPlaced",
                    "orderId": self.order_id,
                    "customerId": self.customer,
                    "totalAmount": self.amount,
                    "items": [{"productId": p, "quantity": q} for p, q in self.items],
                    "timestamp": "2024-08-15T10:30:00Z",
                }
            )
        return encode(
            OrderPlaced(
                eventId=f"evt-{self.order_id}",
                timestamp=T0_AT,
                data=OrderPlacedData(
                    orderId=self.order_id,
                    customerId=self.customer,
                    totalAmount=self.amount,
                    items=[OrderItem(productId=p, quantity=q) for p, q in self.items],
                ),
            )
        )


@dataclass(frozen=True)
class Scenario:
    shelf: dict[str, int]  # units per catalog product; 0 = sold out
    orders: tuple[Order, ...]

    def demand(self) -> Counter[str]:
        wanted: Counter[str] = Counter()
        for order in self.orders:
            wanted.update(dict(order.items))
        return wanted


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    products = [f"P{n}" for n in range(draw(st.integers(1, 4)))]
    shelf = {p: draw(st.integers(0, 8)) for p in products}
    item_lists = st.lists(
        st.sampled_from([*products, UNKNOWN]), min_size=1, max_size=3, unique=True
    )
    orders = []
    for n in range(draw(st.integers(1, 6))):
        picked = draw(item_lists)
        orders.append(
            Order(
                order_id=f"o-{n}",
                items=tuple((p, draw(st.integers(1, 3))) for p in picked),
                customer=draw(st.sampled_from(["c-1", "c-2", "c-3", BLOCKED])),
                amount=draw(st.sampled_from([9.99, 60.0, LIMIT + 0.01])),
                v1=draw(st.booleans()),
            )
        )
    return Scenario(shelf, tuple(orders))


def charge(req: PaymentRequested) -> tuple[Charge | None, int, str | None]:
    """The payment agent's retry loop over the simulated gateway, without the sleeps."""
    error = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        call = GATEWAY.charge(
            order_id=req.data.orderId,
            customer_id=req.data.customerId,
            amount=req.data.amount,
            idempotency_key=req.data.orderId,
            attempt=attempt,
        )
        try:
            call.send(None)  # the simulated gateway never awaits: one step runs it to the end
        except StopIteration as done:
            return done.value, attempt, None
        except TransientGatewayError as exc:
            error = str(exc)
        else:
            call.close()
            raise AssertionError("the simulated gateway awaited something")
    return None, MAX_ATTEMPTS, error


def approvable(order: Order) -> bool:
    data = PaymentRequestData(
        orderId=order.order_id, customerId=order.customer, amount=order.amount
    )
    req = PaymentRequested(eventId="probe", timestamp=T0_AT, data=data)
    approved, _, _ = charge(req)
    return approved is not None and approved.approved


# --- the model of the system -----------------------------------------------------------------


@dataclass
class Message:
    raw: bytes
    event_id: str
    route: tuple[str, str]  # (topic role, key)
    twice: bool = False  # delivered twice in a row (its sender ran twice)


@dataclass
class World:
    orders: dict[str, OrderState] = field(default_factory=dict)
    stock: dict[str, ProductStock] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    gateway_calls: Counter[str] = field(default_factory=Counter)
    outcomes: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    charge_ids: defaultdict[str, set[str | None]] = field(default_factory=lambda: defaultdict(set))
    contents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    queues: dict[tuple[str, str], deque[Message]] = field(default_factory=dict)

    def remember(self, event: Event) -> None:
        # Event ids are deterministic: the same id must always carry the same content.
        seen = self.contents.setdefault(
            (event.eventType, event.eventId), msgspec.structs.asdict(event.data)
        )
        assert seen == msgspec.structs.asdict(event.data), (
            f"{event.eventType} {event.eventId} changed"
        )

    def send(self, event: Event) -> Message:
        self.remember(event)
        if isinstance(event, PaymentSucceeded):
            self.charge_ids[event.data.orderId].add(event.data.chargeId)
        message = Message(encode(event), event.eventId, route(event))
        self.queues.setdefault(message.route, deque()).append(message)
        return message

    def deliver(self, role: str, raw: bytes, now: float, timeout_s: float) -> list[Event]:
        """One consumer handling one record: read state, decide, write state, return output."""
        event = decode(raw, accepted_types(role))
        if role in SAGA_INPUTS:
            ev = cast(SagaInput, event)
            order_id = ev.data.orderId
            decision = saga.decide(self.orders.get(order_id), ev, now, timeout_s)
            # Duplicates, timeouts and any interleaving of keys are legitimate, never out of order.
            assert decision.out_of_order is None, decision.out_of_order
            if decision.state is not None:
                self.orders[order_id] = decision.state
            return decision.emit
        if role in INVENTORY_INPUTS:
            cmd = cast(InventoryInput, event)
            product = cmd.data.productId
            step = inventory.apply(self.stock.get(product), cmd)
            if step.state is not None:
                self.stock[product] = step.state
            return list(step.emit)
        if role == "payment_requests":
            req = cast(PaymentRequested, event)
            done = self.payments.get(req.data.orderId)
            if done is None:  # never charged: charge now, once
                self.gateway_calls[req.data.orderId] += 1
                done = payment.record(req, *charge(req))
                self.payments[req.data.orderId] = done
            return [payment.result_event(done)]
        assert role == "order_status", role
        outcome = cast(StatusEvent, event)
        self.outcomes[outcome.data.orderId].add(outcome.eventType)
        return []


def fire_timeouts(world: World, armed: dict[str, float], now: float) -> None:
    """The saga timer: one SagaTimedOut per passed deadline of an open order."""
    for order_id, state in sorted(world.orders.items()):
        if not state.terminal and state.deadline <= now and armed.get(order_id) != state.deadline:
            armed[order_id] = state.deadline
            world.send(saga.timeout_event(order_id, state.status, state.deadline))


def run(scenario: Scenario, *, seed: int, duplicate_rate: float, timeout_s: float) -> World:
    world = World()
    # Given: the catalog on the shelf (a sold-out product was stocked, then corrected to 0).
    for product, units in scenario.shelf.items():
        for n, delta in enumerate([units] if units else [1, -1]):
            adj = StockAdjusted(
                eventId=f"adj-{product}-{n}",
                timestamp=T0_AT,
                data=StockAdjustmentData(
                    adjustmentId=f"{product}-{n}", productId=product, delta=delta
                ),
            )
            restocked = inventory.adjust(world.stock.get(product), adj).state
            assert restocked is not None
            world.stock[product] = restocked
    # When: every order is placed at once ...
    for order in scenario.orders:
        first = Message(order.payload(), order.order_id, ("orders", order.order_id))
        world.queues[first.route] = deque([first])
    # ... and the records flow until nothing is left to deliver.
    schedule, duplicates = random.Random(seed), random.Random(seed + 1)
    armed: dict[str, float] = {}
    for step in range(1, MAX_STEPS):
        now = T0 + step
        if schedule.random() < TIMER_RATE:
            fire_timeouts(world, armed, now)
        ready = [key for key, queue in world.queues.items() if queue]
        if not ready:
            return world
        role, key = schedule.choice(ready)
        message = world.queues[(role, key)].popleft()
        sent = [world.send(e) for e in world.deliver(role, message.raw, now, timeout_s)]
        if message.twice or duplicates.random() < duplicate_rate:
            for again in world.deliver(role, message.raw, now, timeout_s):
                twin = next(
                    (m for m in sent if (m.event_id, m.route) == (again.eventId, route(again))),
                    None,
                )
                if twin is None:
                    world.send(again)  # something new: the run with no duplicates never sees it
                else:
                    world.remember(again)
                    twin.twice = True
    raise AssertionError(f"no quiescence after {MAX_STEPS} deliveries")


# --- what must hold --------------------------------------------------------------------------


def snapshot(world: World) -> dict[str, Any]:
    """Everything the run decided, without wall-clock stamps."""
    return {
        "orders": {
            o: {
                f: v
                for f, v in as_dict(s).items()
                if f not in ("updatedAt", "settledAt", "history")
            }
            | {"history": [h.eventId for h in s.history]}
            for o, s in sorted(world.orders.items())
        },
        "stock": {p: as_dict(s) for p, s in sorted(world.stock.items())},
        "payments": {o: as_dict(r) for o, r in sorted(world.payments.items())},
        "outcomes": {o: sorted(t) for o, t in sorted(world.outcomes.items())},
        "charges": {o: sorted(map(str, c)) for o, c in sorted(world.charge_ids.items())},
        "events": sorted(world.contents),
    }


def check_invariants(world: World, scenario: Scenario) -> None:
    orders = {o.order_id: o for o in scenario.orders}
    assert sorted(world.orders) == sorted(orders)
    sold: Counter[str] = Counter()
    for order_id, state in world.orders.items():
        # Every order ends in exactly one terminal state, announced once by type.
        assert state.terminal, f"{order_id} stuck in {state.status}"
        assert world.outcomes[order_id] == {OUTCOME_TYPE[state.status]}, order_id
        # At most one charge, and only a confirmed order keeps one.
        assert world.gateway_calls[order_id] <= 1, order_id
        assert len(world.charge_ids[order_id]) <= 1, world.charge_ids[order_id]
        if state.status == "CONFIRMED":
            assert state.chargeId is not None
            assert world.charge_ids[order_id] == {state.chargeId}
            sold.update(dict(orders[order_id].items))
        else:
            assert not world.charge_ids[order_id], f"{order_id} charged but {state.status}"
        # What the scenario settles regardless of timing.
        order = orders[order_id]
        if any(scenario.shelf.get(p, 0) < q for p, q in order.items):
            assert state.status == "REJECTED", f"{order_id} cannot be served"
        if state.status in ("CONFIRMED", "CANCELLED"):
            assert (state.status == "CONFIRMED") == approvable(order), order_id
    for product, stock in world.stock.items():
        assert stock.conserved(), stock
        assert stock.holds == {} and stock.held == 0, f"{product} still holds {stock.holds}"
        assert stock.sold == sold[product], product
        assert stock.restocked == scenario.shelf[product]


def expected_status(order: Order, scenario: Scenario) -> str:
    """The outcome when stock suffices for every order and nothing times out."""
    if any(scenario.shelf.get(p, 0) == 0 for p, _ in order.items):
        return "REJECTED"
    return "CONFIRMED" if approvable(order) else "CANCELLED"


@settings(max_examples=150, deadline=None)
@given(
    scenario=scenarios(),
    seed=st.integers(0, 2**32),
    duplicate_rate=st.sampled_from([0.2, 0.5, 1.0]),
    timeout_s=st.sampled_from([4.0, 15.0, NO_TIMEOUTS]),
)
def test_replay_settles_every_order_once_and_conserves_stock(
    scenario: Scenario,
    seed: int,
    duplicate_rate: float,
    timeout_s: float,
) -> None:
    exact = run(scenario, seed=seed, duplicate_rate=0.0, timeout_s=timeout_s)
    doubled = run(scenario, seed=seed, duplicate_rate=duplicate_rate, timeout_s=timeout_s)

    check_invariants(exact, scenario)
    check_invariants(doubled, scenario)
    assert snapshot(doubled) == snapshot(exact)
    ample = all(
        n <= scenario.shelf.get(p, 0)
        for p, n in scenario.demand().items()
        if scenario.shelf.get(p, 0) > 0
    )  # unknown and sold-out lines never hold
    if ample and timeout_s == NO_TIMEOUTS:
        assert {o: s.status for o, s in exact.orders.items()} == {
            o.order_id: expected_status(o, scenario) for o in scenario.orders
        }
