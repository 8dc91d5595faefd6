"""Reads topics back to check a run: every outcome and charge record per order (counted, so a
duplicate shows), the latest stock per product, saga deadlines, dead letters, and the payment
gateway's ledger of charge calls; then checks the invariants."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from orderstream.contracts.dead_letters import parse_headers
from orderstream.contracts.topics import changelog_topic, input_roles, registry
from orderstream.domain.inventory import ProductStock
from orderstream.domain.state import decode_state
from orderstream.kafka.auth import client_options
from orderstream.kafka.reader import partitions_of, read_topic
from orderstream.settings import Settings
from orderstream.worker.gateway import LedgerCall, LedgerReading, read_ledger


@dataclass
class RunReport:
    """What the raw topics say about a set of orders, counted record by record (not as sets),
    so a duplicate shows.

    Under at-least-once delivery an identical record may legitimately appear twice: after a
    crash the saga re-sends the outcome its state implies, with the same deterministic event id.
    So the invariant "one outcome per order" is judged on distinct events: one terminal status,
    and every terminal record of the order carrying one event id. Identical re-sends are not an
    error; they are counted (`redelivered_outcomes`) and reported as a figure. A second distinct
    terminal event, a second charge id, or a second money movement on the gateway's ledger is
    an error. Charges are judged on the ledger where there is one: the payment-events topic says
    what the payment agent recorded; the ledger says what the gateway was asked to do.
    """

    # orderId -> terminal status -> records on order-status
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    # orderId -> terminal event id -> records on order-status
    outcome_events: dict[str, Counter[str]] = field(default_factory=dict)
    settled_at: dict[str, int] = field(default_factory=dict)  # orderId -> first terminal (ms)
    reasons: dict[str, str] = field(default_factory=dict)  # orderId -> last reason given
    # orderId -> charge id -> PaymentSucceeded records on payment-events
    charges: dict[str, Counter[str]] = field(default_factory=dict)
    payment_failures: Counter[str] = field(default_factory=Counter)  # orderId -> PaymentFailed
    payment_records: int = 0  # every PaymentSucceeded/PaymentFailed record of the orders
    stock: dict[str, ProductStock] = field(default_factory=dict)
    # product -> units of every distinct CONFIRMED order on the whole order-status log; None
    # when the log is not whole (retention removed records, or outcomes without their items)
    sold_by_outcomes: Counter[str] | None = None
    deadlines: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # SagaTimedOut
    dead_letters: int = 0
    dead_letter_kinds: Counter[str] = field(default_factory=Counter)
    dead_letter_samples: dict[str, str] = field(default_factory=dict)  # kind -> one message
    ledger: LedgerReading | None = None  # the gateway's calls for the orders, when configured

    def status_of(self, order_id: str) -> str | None:
        found = self.outcomes.get(order_id)
        return next(iter(found)) if found and len(found) == 1 else None

    @property
    def redelivered_outcomes(self) -> int:
        """Terminal records that repeat an event already on the topic (same event id)."""
        return sum(n - 1 for ids in self.outcome_events.values() for n in ids.values())

    def redriven(self) -> set[str]:
        """Orders whose saga deadline fired before they settled (the timer re-drove a step, or
        settled it: see `settled_by_deadline`)."""
        return {
            oid
            for oid, fired in self.deadlines.items()
            if any(at <= self.settled_at.get(oid, 2**63) for _, at in fired)
        }

    def settled_by_deadline(self) -> set[str]:
        """Orders the deadline itself settled (RESERVING gave up after its re-drives)."""
        return {
            o for o, r in self.reasons.items() if r.startswith("timeout") and o in self.outcomes
        }

    def approved_calls(self) -> dict[str, list[LedgerCall]]:
        """orderId -> the gateway's approved charge calls, in ledger order."""
        calls: dict[str, list[LedgerCall]] = {}
        for call in self.ledger.calls if self.ledger else ():
            if call.outcome == "approved":
                calls.setdefault(call.orderId, []).append(call)
        return calls


def money_moves(calls: Iterable[LedgerCall]) -> int:
    """How many times money moved: a gateway honours an idempotency key, so the first approved
    call per key charges and a later one with the same key replays that charge."""
    return len({c.idempotencyKey for c in calls if c.outcome == "approved"})


@dataclass(frozen=True)
class RunFigures:
    """The figures of a run worth printing next to its invariants."""

    settled: int
    settled_first_time: int  # no deadline fired before the outcome
    redriven: int  # a deadline fired (re-drive) before the outcome
    settled_by_deadline: int
    terminal_records: int
    redelivered_outcomes: int
    payment_records: int
    charge_calls: int  # approved calls on the ledger
    replayed_calls: int  # approved calls repeating an idempotency key (crash retries)
    orders_with_repeat_calls: int
    dead_letters: int
    dead_letter_kinds: dict[str, int]

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.dead_letter_kinds.items()))
        return (
            f"settled {self.settled} (first time {self.settled_first_time}, after a deadline "
            f"re-drive {self.redriven}, by the deadline {self.settled_by_deadline}); "
            f"terminal records {self.terminal_records} ({self.redelivered_outcomes} redelivered); "
            f"payment records {self.payment_records}; gateway charge calls {self.charge_calls} "
            f"({self.replayed_calls} replays on {self.orders_with_repeat_calls} orders); "
            f"dead letters {self.dead_letters}" + (f" ({kinds})" if kinds else "")
        )


def figures(report: RunReport) -> RunFigures:
    redriven = report.redriven()
    calls = report.approved_calls()
    n_calls = sum(len(c) for c in calls.values())
    return RunFigures(
        settled=len(report.outcomes),
        settled_first_time=len(set(report.outcomes) - redriven),
        redriven=len(redriven & set(report.outcomes)),
        settled_by_deadline=len(report.settled_by_deadline()),
        terminal_records=sum(n for c in report.outcomes.values() for n in c.values()),
        redelivered_outcomes=report.redelivered_outcomes,
        payment_records=report.payment_records,
        charge_calls=n_calls,
        replayed_calls=n_calls - sum(money_moves(c) for c in calls.values()),
        orders_with_repeat_calls=sum(len(c) > 1 for c in calls.values()),
        dead_letters=report.dead_letters,
        dead_letter_kinds=dict(report.dead_letter_kinds),
    )


async def collect(
    settings: Settings, order_ids: Iterable[str] | None = None, ledger: Path | None = None
) -> RunReport:
    """Read the run back: stock first, then the outcomes and payments, then the gateway's ledger
    (`ledger`, else settings.gateway_ledger). In that order a commit seen on the stock has its
    outcome on the log, and an outcome or payment seen has its gateway call on the ledger."""
    topics = registry(settings)
    await wait_flushed(settings)  # the tables write back at commits: the latest one first
    stock = await read_topic(settings, changelog_topic(settings, "inventory"))
    status, payments, timeouts, dlq = await asyncio.gather(
        read_topic(settings, topics["order_status"].name),
        read_topic(settings, topics["payment_events"].name),
        read_topic(settings, topics["saga_timeouts"].name),
        read_topic(settings, topics["dead_letters"].name),
    )
    path = ledger or settings.gateway_ledger
    return build_report(
        TopicRecords(stock, status, payments, timeouts, dlq),
        read_ledger(path) if path is not None else None,
        order_ids,
    )


@dataclass(frozen=True)
class TopicRecords:
    """The raw records (aiokafka ConsumerRecords) a report is built from."""

    stock: list[Any]  # the inventory table's changelog
    status: list[Any]
    payments: list[Any]
    timeouts: list[Any]
    dead_letters: list[Any]


def build_report(
    records: TopicRecords, ledger: LedgerReading | None, order_ids: Iterable[str] | None = None
) -> RunReport:
    """The report on `order_ids` (every order when None) from the records as read."""
    wanted = set(order_ids) if order_ids is not None else None
    report = RunReport()
    for rec in records.stock:  # compacted changelog: the last value per key wins
        if rec.value is not None:
            s = _stock_value(rec.value)
            report.stock[s.productId] = s
    _add_outcomes(report, records.status, wanted)
    _add_payments(report, records.payments, wanted)
    for rec in records.timeouts:
        data = orjson.loads(rec.value)["data"]
        if wanted is None or data["orderId"] in wanted:
            report.deadlines.setdefault(data["orderId"], []).append((data["step"], rec.timestamp))
    _add_dead_letters(report, records.dead_letters)
    if ledger is not None:
        calls = [c for c in ledger.calls if wanted is None or c.orderId in wanted]
        report.ledger = LedgerReading(calls, ledger.torn_lines)
    return report


def _stock_value(raw: bytes) -> ProductStock:
    """The stock as recorded, even when it breaks the model's own rule (available >= 0): an
    oversold product must reach the invariant check, not fail the read."""
    try:
        return decode_state(raw, ProductStock)
    except msgspec.ValidationError:  # built as stored: a Struct's constructor checks nothing
        fields = ProductStock.__struct_fields__
        return ProductStock(**{k: v for k, v in orjson.loads(raw).items() if k in fields})


def _add_outcomes(report: RunReport, records: list[Any], wanted: set[str] | None) -> None:
    counted: set[str] = set()  # CONFIRMED event ids whose items are counted as sold
    sold: Counter[str] = Counter()
    whole = True  # every record since offset 0, every CONFIRMED one with its items
    first_offsets: dict[int, int] = {}
    for rec in records:
        first_offsets[rec.partition] = min(first_offsets.get(rec.partition, rec.offset), rec.offset)
        body = orjson.loads(rec.value)
        data, oid = body["data"], body["data"]["orderId"]
        if data["status"] == "CONFIRMED" and body["eventId"] not in counted:
            counted.add(body["eventId"])
            whole = whole and "items" in data  # an outcome before v3 does not say what it took
            for item in data.get("items", ()):
                sold[item["productId"]] += item["quantity"]
        if wanted is not None and oid not in wanted:
            continue
        report.outcomes.setdefault(oid, Counter())[data["status"]] += 1
        report.outcome_events.setdefault(oid, Counter())[body["eventId"]] += 1
        report.settled_at[oid] = min(report.settled_at.get(oid, rec.timestamp), rec.timestamp)
        if data.get("reason"):
            report.reasons[oid] = data["reason"]
    whole = whole and all(offset == 0 for offset in first_offsets.values())
    report.sold_by_outcomes = sold if whole else None


def _add_payments(report: RunReport, records: list[Any], wanted: set[str] | None) -> None:
    for rec in records:
        body = orjson.loads(rec.value)
        oid = body["data"]["orderId"]
        if wanted is not None and oid not in wanted:
            continue
        report.payment_records += 1
        if body["eventType"] == "PaymentSucceeded":
            report.charges.setdefault(oid, Counter())[body["data"]["chargeId"]] += 1
        else:
            report.payment_failures[oid] += 1


def _add_dead_letters(report: RunReport, records: list[Any]) -> None:
    report.dead_letters = len(records)
    for rec in records:
        reason = parse_headers(rec.headers)
        kind = reason.get("kind", "?")
        report.dead_letter_kinds[kind] += 1
        report.dead_letter_samples.setdefault(kind, reason.get("message", "")[:200])


def invariant_violations(report: RunReport, order_ids: Iterable[str]) -> list[str]:
    """Every broken invariant, in words (empty when all hold)."""
    problems = _stock_problems(report)
    approved = report.approved_calls()
    for oid in order_ids:
        problems += _outcome_problems(report, oid)
        if report.ledger is not None:
            problems += _ledger_problems(report, oid, approved.get(oid, []))
    if report.ledger is not None and report.ledger.torn_lines:
        problems.append(f"gateway ledger has {report.ledger.torn_lines} torn lines")
    return problems


def _stock_problems(report: RunReport) -> list[str]:
    problems: list[str] = []
    for s in report.stock.values():
        if s.available < 0 or s.sold > s.restocked:
            problems.append(
                f"stock oversold for {s.productId}: restocked={s.restocked} "
                f"available={s.available} sold={s.sold}"
            )
        if not s.conserved():
            problems.append(
                f"stock not conserved for {s.productId}: restocked={s.restocked} "
                f"available={s.available} held={s.held} sold={s.sold}"
            )
        # Once the product has no holds, every confirmed order's commit has been applied (a
        # confirmed order held it first): what was sold is what the confirmed outcomes took.
        sold_by = report.sold_by_outcomes
        if sold_by is not None and not s.holds and s.sold != sold_by[s.productId]:
            problems.append(
                f"stock of {s.productId} sold {s.sold} but the confirmed orders took "
                f"{sold_by[s.productId]}"
            )
    return problems


def _outcome_problems(report: RunReport, oid: str) -> list[str]:
    problems: list[str] = []
    found = report.outcomes.get(oid, Counter())
    events = report.outcome_events.get(oid, Counter())
    charges = report.charges.get(oid, Counter())
    if len(found) != 1:
        problems.append(f"order {oid} has terminal states {sorted(found) or 'none'}")
    elif len(events) > 1:
        problems.append(
            f"order {oid} has {len(events)} distinct terminal events "
            f"{sorted(found)} (a second outcome, not a redelivery)"
        )
    if len(charges) > 1:
        problems.append(f"order {oid} charged {len(charges)} times")
    if charges and set(found) != {"CONFIRMED"}:
        problems.append(f"order {oid} charged but {sorted(found)}")
    if charges and report.payment_failures[oid]:
        problems.append(f"order {oid} has both PaymentSucceeded and PaymentFailed")
    return problems


def _ledger_problems(report: RunReport, oid: str, approved: list[LedgerCall]) -> list[str]:
    problems: list[str] = []
    moves = money_moves(approved)
    status = report.status_of(oid)
    if moves > 1:
        keys = sorted({c.idempotencyKey for c in approved})
        problems.append(f"order {oid}: money moved {moves} times at the gateway (keys {keys})")
    if moves and status is not None and status != "CONFIRMED":
        problems.append(f"order {oid}: charged at the gateway but {status}")
    if status == "CONFIRMED" and not moves:
        problems.append(f"order {oid}: CONFIRMED without an approved charge at the gateway")
    charged_ids = {c.chargeId for c in approved}
    for charge_id in report.charges.get(oid, ()):
        if charge_id not in charged_ids:
            problems.append(f"order {oid}: payment record {charge_id} the gateway never approved")
    return problems


def leaked_holds(report: RunReport, order_ids: Iterable[str]) -> list[str]:
    """Stock still held for orders that have settled, in words. Call it once the run is quiet
    (the commit or release goes out with the outcome, so a hold may briefly outlive it): a
    hold left then is stock no order will ever take or give back."""
    settled = {o for o in order_ids if o in report.outcomes}
    return [
        f"order {o} {sorted(report.outcomes[o])} still holds {qty} of {s.productId}"
        for s in report.stock.values()
        for o, qty in sorted(s.holds.items())
        if o in settled
    ]


def unexplained_charge_calls(report: RunReport, crashed_pids: Iterable[int]) -> list[str]:
    """Orders charged more than once at the gateway with no crash to explain it, in words.

    A repeat is explained when the process that made the previous approved call was killed
    (it may have died between the gateway's answer and writing the payment record, and the
    worker that took over asked again under the same key). Anything else, two live workers
    charging one order or one worker charging twice, is a bug the idempotency key only hides."""
    crashed = set(crashed_pids)
    problems: list[str] = []
    for oid, calls in report.approved_calls().items():
        for before, after in itertools.pairwise(calls):
            if before.pid == after.pid or before.pid not in crashed:
                why = "one process asked twice" if before.pid == after.pid else "not killed"
                problems.append(
                    f"order {oid}: approved charge calls by pid {before.pid} then pid "
                    f"{after.pid} (key {after.idempotencyKey}): {why}"
                )
                break
    return problems


async def consumer_lag(settings: Settings) -> dict[str, int]:
    """Records not yet committed by the application's consumer group, per input topic."""
    lag: dict[str, int] = {}
    for (topic, _), (committed, end) in (await _group_progress(settings)).items():
        lag[topic] = lag.get(topic, 0) + max(end - committed, 0)
    return lag


async def _group_progress(settings: Settings) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (the group's committed offset, end offset) of every input topic
    (a partition never committed counts from its first offset)."""
    from aiokafka.admin import AIOKafkaAdminClient

    topics = registry(settings)
    inputs = [topics[r].name for r in input_roles(settings)]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **client_options(settings)
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",  # what a downstream consumer sees
        **client_options(settings),
    )
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [TopicPartition(t, p) for t in inputs for p in await partitions_of(consumer, t)]
        end = await consumer.end_offsets(tps)
        start = await consumer.beginning_offsets(tps)
        progress = {}
        for tp in tps:
            done = committed.get(tp)
            at = done.offset if done is not None and done.offset >= 0 else start[tp]
            progress[(tp.topic, tp.partition)] = (at, end[tp])
        return progress
    finally:
        await consumer.stop()
        await admin.close()


async def wait_flushed(settings: Settings, timeout_s: float = 30.0, still_s: float = 2.5) -> bool:
    """Wait until the application's consumer group has committed every record of its input
    topics, or (exactly-once mode: transaction markers stand between the last record and the
    end) until neither its commits nor the topics moved for `still_s` (over two commit
    intervals); False if neither happened within `timeout_s`. A worker commits only once the
    changes its tables made reached their changelogs (write-back tables flush at each commit),
    so the changelogs then hold the effect of every record processed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last, since = None, loop.time()
    while True:
        progress = await _group_progress(settings)
        if all(end <= committed for committed, end in progress.values()):
            return True
        if progress != last:
            last, since = progress, loop.time()
        elif loop.time() - since >= still_s:
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.25)
