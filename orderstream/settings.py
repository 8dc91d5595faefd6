"""All configuration in one place: environment variables with the ORDERSTREAM_ prefix."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orderstream.errors import ConfigError

# The admin token's default: good enough on 127.0.0.1, refused on an address others can reach.
ADMIN_TOKEN_PLACEHOLDER = "change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERSTREAM_", env_file=None, extra="ignore")

    # --- Faust application -------------------------------------------------
    app_id: str = "orderstream"
    broker: str = "kafka://127.0.0.1:19092"
    datadir: Path = Path("var/worker")
    # RocksDB through rocksdict (orderstream/faust_ext/store.py); memory:// only for agent tests
    store: str = "orderstream://"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # The host other workers use to reach this one (table_route); web_host is the bind address.
    web_advertised_host: str | None = None
    web_builtin_views: bool = False  # Faust's own /table and /router views (expose table data)
    web_wait_max_s: float = 30.0  # upper bound of GET /orders/{id}?wait=
    web_max_body_bytes: int = 64 * 1024  # larger request bodies get 413
    table_standby_replicas: int = 0
    # Per RocksDB database (one per table and partition; see
    # orderstream.worker.app.rocksdb_options).
    rocksdb_write_buffer_mb: int = 8
    rocksdb_block_cache_mb: int = 8
    log_level: str = "info"
    event_loop: Literal["aio", "uvloop"] = "uvloop"
    # Python's cyclic garbage collector (orderstream/worker/memory.py): the youngest generation
    # is collected after this many allocations net of deallocations (Python's default: 700),
    # and the objects alive once the worker started (modules, Faust's services, the agents,
    # the tables) are left out of later collections.
    gc_young_threshold: int = 50_000
    gc_freeze_at_start: bool = True
    # Records an agent's stream takes from its queue between two turns of the event loop
    # (orderstream/faust_ext/stream.py; Faust's own loop: 1, a turn before every record).
    stream_yield_every: int = 32
    # Table writes queue in Faust's producer buffer; past this many, stream processing waits.
    producer_buffer_max: int = 100
    # How long the Kafka producer waits to fill a batch before sending it. The client sends one
    # request per broker at a time, so under load records gather while one is in flight anyway;
    # a linger only delays the first record of a quiet hop (5 ms: latency p50 at 100 orders/s
    # 45.9 -> 22.7 ms at 0, throughput not lower; docs/performance.md).
    producer_linger_ms: int = 0
    # Per partition the Kafka client fills one batch at a time and, when it is full, waits for it
    # to reach the broker; at the client's 16 KB a few large table records filled it, and the
    # table writes queued behind it stopped the streams (see docs/scaling.md).
    producer_batch_kb: int = 256
    # Records handed over per fetch, all partitions together. Faust's default (no limit) hands
    # over everything the client prefetched (1 MB per partition: ~3,300 orders each), and what
    # is handed over is processed: the bound on open orders (saga_max_open) did not hold, ~13,000
    # orders were opened at once (see orderstream/worker/agents/order_intake.py).
    max_poll_records: int = 500
    # at_least_once: every record is processed at least once, and every state change and
    # event is safe to apply twice (the default). exactly_once: Kafka transactions per task
    # (orderstream/faust_ext/transactions.py): a worker that lost its partitions without noticing
    # (paused, partitioned) is fenced by the broker; consumers of the topics must read
    # committed records only, and each hop waits for a commit (eos_commit_interval_s).
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # Offsets are committed every commit_interval_s, or sooner after commit_every records (that
    # one beside the fetch loop: orderstream/faust_ext/consumer.py `_commit_by_count`). Faust's
    # 10,000: below that many records a second the interval sets the cadence; each commit
    # flushes the producer and the write-back tables (more commits, more changelog records).
    commit_every: int = 10_000
    commit_interval_s: float = 1.0
    # Longest wait of a fetch at the broker for records to arrive. The Kafka client has one fetch
    # in flight per broker, and a partition whose records were just handed over is not in it:
    # its next records wait for that fetch to come back. Faust's 1.5 s made a quiet hop wait up
    # to that long; at a few ms, an idle worker asks a few hundred times a second.
    fetch_max_wait_ms: int = 5
    eos_commit_interval_s: float = 0.1  # exactly_once: a record is visible once committed
    # Write-back tables (orderstream/faust_ext/write_back.py): the last value per key goes to the
    # changelog and RocksDB at each commit. None: every table in exactly_once mode; at least
    # once, the tables whose replay decides what the first run did (the read models, the stock:
    # orderstream/worker/app.py `raw_table`). The saga's orders table writes through at least
    # once: the events a record caused are out at once while its state would wait for the
    # commit, and a crash replays its records in another interleaving of its input topics
    # against older state, which can decide differently (the chaos test showed it); in
    # exactly_once mode the events and the state commit together. False: no table writes back.
    table_write_back: bool | None = None
    # At least once, the saga's stock commits go out at each offset commit, one record per
    # partition of inventory-requests with the commits decided since the last one
    # (orderstream/worker/commit_batches.py), not one record per order line. A commit holds
    # nothing up (the order is confirmed already); the product's hold is sold one commit interval
    # later at most. False: one CommitStock per line, sent at once (always in exactly_once mode).
    commit_batches: bool = True
    # A crashed worker's partitions move after this long without heartbeats.
    session_timeout_s: float = 10.0
    partition_watchdog_s: float = 2.0  # see orderstream/worker/timers/partition_watchdog.py
    # Comma-separated agent names this worker runs (empty: all). A stage deployed on its own
    # (e.g. "inventory") needs its own app_id, so its consumer group holds only its topics.
    agents: str = ""
    # A table partition at least this many changelog records behind is restored in bulk, not
    # through Faust's per-record path (orderstream/faust_ext/bulk_restore.py); 0 turns the bulk path
    # off. Even a few records: Faust's path took ~1 s to start fetching them.
    recovery_bulk_min: int = 1
    # An unexpected error on a record (a store, disk or broker error: not bad input, which is a
    # dead letter) is retried in place this many times, the waits doubling from the back-off;
    # then the record's partition stops and is rewound to it after partition_fault_retry_s.
    handler_max_attempts: int = 5
    handler_retry_backoff_s: float = 0.1
    partition_fault_retry_s: float = 30.0

    # --- topics (names and configs; see orderstream/contracts/topics.py) -------------------
    topic_prefix: str = ""
    order_topic: str = "order-events"
    partitions: int = 4
    replication_factor: int = 1
    min_insync_replicas: int = 1
    order_retention_ms: int = 7 * 24 * 3600 * 1000

    # --- saga ----------------------------------------------------------------
    saga_timeout_s: float = 60.0
    saga_timeout_scan_s: float = 5.0
    # A passed deadline restarts while a topic of its step has more records waiting than this,
    # and is being consumed (orderstream/worker/timers/timeouts.py).
    saga_backlog_limit: int = 1000
    # Open (not yet settled) orders per worker; past it no new orders are fetched (the ones
    # already handed over are still taken: see orderstream/worker/agents/order_intake.py).
    saga_max_open: int = 1000

    # --- payment -------------------------------------------------------------
    # "inline": the saga charges in its own step (same key, same partition: one hop and ~4.5
    # Kafka records fewer per order); "agent": the payment agent charges, from payment requests
    # (for a gateway so slow that it must hold up only that agent, not the saga's partitions).
    payment_mode: Literal["inline", "agent"] = "inline"
    payment_limit_per_order: float = 1000.0  # simulated gateway declines above this amount
    payment_declined_customers: str = ""  # comma-separated customer ids always declined
    payment_transient_failure_rate: float = 0.0  # share of attempts failing transiently
    payment_max_attempts: int = 3
    payment_retry_backoff_s: float = 0.05
    # The simulated gateway appends every charge call here (orderstream/worker/gateway.py), one JSON
    # line each; the verifier reads it to check "charged at most once". None: no ledger.
    gateway_ledger: Path | None = None

    # --- local development broker (devtools/broker.py) ---------------------------
    kafka_version: str = "4.1.1"
    local_broker_dir: Path = Path("var/kafka")
    local_broker_host: str = "127.0.0.1"
    local_broker_port: int = 19092
    local_controller_port: int = 19093
    local_broker_heap: str = "768m"
    local_broker_start_timeout_s: float = 90.0
    # "name:password,...": SCRAM-SHA-512 users; set, the client listener is SASL_PLAINTEXT.
    local_broker_sasl_users: SecretStr = Field(default=SecretStr(""))

    # --- fault injection (tests, chaos drills) -------------------------------
    chaos_duplicate_sends: bool = False  # publish every event twice, as a retrying producer might
    chaos_store_failures: int = 0  # the first N table writes of a worker raise (a failing disk)
    # die once in a flush of the tables (orderstream/worker/chaos.py)
    chaos_crash_in_flush: Path | None = None

    # --- metrics (orderstream/observability/metrics.py) -------------------------------------------
    metrics_stock_label_cap: int = 100  # products with their own label; the rest sum to "_other"
    metrics_refresh_s: float = 5.0  # consumer lag and readiness gauges

    # --- tracing: OpenTelemetry (orderstream/observability/tracing.py), off without an exporter ---
    otel_exporter: Literal["none", "otlp", "memory", "file"] = "none"
    otel_endpoint: str = "http://127.0.0.1:4318/v1/traces"  # OTLP over HTTP
    otel_file: Path = Path("var/traces.jsonl")  # "file": one JSON span per line
    otel_service_name: str = "orderstream"

    # --- security --------------------------------------------------------
    # Authorizes stock adjustments over HTTP; must be a real secret once web_host is not loopback.
    admin_token: SecretStr = Field(default=SecretStr(ADMIN_TOKEN_PLACEHOLDER))

    # --- Kafka client security (orderstream/kafka/auth.py; every Kafka client uses it) ---
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # None: the system's trusted CAs
    kafka_ssl_certfile: Path | None = None  # client certificate (mutual TLS)
    kafka_ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _exposed_web_needs_a_secret_token(self) -> Settings:
        """A worker whose web server others can reach refuses to start with the default or an
        empty admin token: anyone on the network could adjust the stock."""
        token = self.admin_token.get_secret_value().strip()
        if is_loopback(self.web_host) or token not in ("", ADMIN_TOKEN_PLACEHOLDER):
            return self
        which = "empty" if not token else f"the default {ADMIN_TOKEN_PLACEHOLDER!r}"
        raise ConfigError(
            f"ORDERSTREAM_WEB_HOST={self.web_host or '(all addresses)'} serves the admin endpoints "
            f"beyond this machine, but ORDERSTREAM_ADMIN_TOKEN is {which}: set "
            "ORDERSTREAM_ADMIN_TOKEN to a secret (e.g. the output of `openssl rand -hex 24`; "
            "docker compose takes it from your shell, Kubernetes from the orderstream-secrets "
            "Secret), or bind ORDERSTREAM_WEB_HOST=127.0.0.1"
        )

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def write_back(self) -> bool:
        return self.exactly_once if self.table_write_back is None else self.table_write_back

    @property
    def write_back_replayable(self) -> bool:
        return self.table_write_back is not False

    @property
    def hold_markers(self) -> bool:
        """Whether the inventory marks each committed hold (orderstream/worker/tables/
        committed_holds.py): against a reserve that comes after its order's commit, from a saga
        rebuilt behind the commit it sent. Not needed where the commits go in batches at least
        once (sent only once the saga states that decided them are acknowledged:
        orderstream/worker/commit_batches.py) and the stock and the sales write back (the sales
        acknowledged first: a redelivered commit's sale is recorded already)."""
        return not (self.commit_batches and not self.exactly_once and self.write_back_replayable)

    @property
    def bootstrap_servers(self) -> str:
        """host:port list for plain Kafka clients (without the faust URL scheme)."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    def faust_flow(self) -> dict[str, Any]:
        """faust.App options for producing, committing and fetching: the worker's, and the
        benchmark's bare Faust loop's (bench/faust_client.py), so the two cannot drift."""
        return {
            "producer_acks": -1,
            "producer_linger_ms": self.producer_linger_ms,
            "producer_max_batch_size": self.producer_batch_kb * 1024,
            "broker_commit_every": self.commit_every,
            "broker_commit_interval": (
                self.eos_commit_interval_s if self.exactly_once else self.commit_interval_s
            ),
            "processing_guarantee": self.processing_guarantee,
            "stream_buffer_maxsize": 4096,
            "broker_max_poll_records": self.max_poll_records,
        }


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost); a host
    name or an empty host (every address) is not."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
