"""SASL/SCRAM on a real broker: a worker with the right password processes orders, one with a
wrong password is refused and says so, a client without credentials gets nowhere; no log shows
a password. Then the same over TLS (SASL_SSL), the way managed clusters are reached.

The brokers are this module's own (SASL mode, free ports, temp dirs), not the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

from devtools import demo
from devtools.broker import LocalBroker, find_java
from devtools.workers import WorkerProcess
from orderstream.faust_ext.bulk_restore import Span, restore
from orderstream.kafka.auth import ClientOptions, client_options
from orderstream.settings import Settings
from tests import tls_certs
from tests.integration.conftest import Stack, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DEV_BROKER_PORTS = {19092, 19093}  # the developer's own broker: never touch it
USER = "orders"
AUTH_FAILED = re.compile(r"SaslAuthenticationFailed|Authentication failed", re.IGNORECASE)
REFUSAL_WAIT_S = 30.0


@dataclass(frozen=True)
class SaslBroker:
    broker: LocalBroker
    password: str  # USER's
    admin_password: str

    def stack(self, name: str, **overrides: object) -> Stack:
        """Topics (created with the right password) and worker env for one test."""
        return Stack(
            self.broker,
            name,
            **overrides,
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_username=USER,
            kafka_password=self.password,
        )

    def settings(self, **overrides: object) -> Settings:
        fields: dict[str, object] = {
            "broker": f"kafka://{self.broker.bootstrap}",
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_username": USER,
            "kafka_password": self.password,
        }
        return Settings(**{**fields, **overrides})  # type: ignore[arg-type]


def broker_settings(directory: Path, admin_password: str, password: str) -> Settings:
    find_java()  # a clear BrokerError when Java 17+ is missing
    port, controller_port = free_ports(2)
    assert not {port, controller_port} & DEV_BROKER_PORTS
    return Settings(
        local_broker_dir=directory,
        local_broker_port=port,
        local_controller_port=controller_port,
        local_broker_heap="512m",
        local_broker_start_timeout_s=90.0,
        local_broker_sasl_users=f"admin:{admin_password},{USER}:{password}",
    )


@pytest.fixture(scope="module")
def sasl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    # Random passwords: finding one in a log cannot be a coincidence.
    admin_password, password = secrets.token_hex(12), secrets.token_hex(12)
    directory = tmp_path_factory.mktemp("sasl") / "kafka"
    broker = LocalBroker(broker_settings(directory, admin_password, password))
    try:
        started = time.monotonic()
        broker.start()
        print(f"SASL broker ready in {time.monotonic() - started:.1f}s")
        yield SaslBroker(broker, password, admin_password)
    finally:
        broker.stop(timeout=15)


def assert_no_password(path: Path, *passwords: str) -> str:
    text = path.read_text(errors="replace")
    for password in passwords:
        assert password not in text, f"a password appears in {path}"
    return text


def ready(worker: WorkerProcess) -> bool:
    try:
        url = f"http://127.0.0.1:{worker.web_port}/readyz"
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_for_lag_metric(worker: WorkerProcess, timeout_s: float = 15.0) -> bool:
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if b"\norderstream_consumer_lag{" in resp.read():
                return True
        time.sleep(0.5)
    return False


def test_worker_with_the_right_password_processes_orders(sasl: SaslBroker) -> None:
    # Given topics created over SASL and a worker logging in as `orders`
    s = sasl.stack("sasl-ok", metrics_refresh_s=1)
    try:
        started = time.monotonic()
        worker = s.worker()
        ready_s = time.monotonic() - started
        # When 50 orders go through it (the demo's clients log in too)
        result = asyncio.run(demo.run(s.settings, 50, quiet=True, timeout_s=120))
        # Then all settle as expected and the invariants hold
        assert result.settled == 50, demo.summary(result)
        assert result.ok, demo.summary(result)
        # and the worker's own admin client (the lag gauge) is logged in as well
        assert wait_for_lag_metric(worker), "no orderstream_consumer_lag in /metrics"
        assert worker.running
    finally:
        s.stop()
    assert worker.log_path is not None
    log = assert_no_password(worker.log_path, sasl.password, sasl.admin_password)
    assert not AUTH_FAILED.search(log)
    print(f"SASL worker ready in {ready_s:.1f}s, 50 orders in {result.elapsed_s:.1f}s")


def test_worker_with_a_wrong_password_is_refused(sasl: SaslBroker) -> None:
    # Given the topics exist, so a worker with access would start processing
    s = sasl.stack("sasl-bad")
    wrong = secrets.token_hex(12)
    (port,) = free_ports(1)
    worker = WorkerProcess(
        "bad",
        s.dir / "bad",
        port,
        env={**s.env, "ORDERSTREAM_KAFKA_PASSWORD": wrong},
        log_path=s.dir / "bad.log",
    )
    # When a worker starts with a wrong password
    worker.start()
    s.started.append(worker)
    assert worker.proc is not None and worker.log_path is not None
    deadline = time.monotonic() + REFUSAL_WAIT_S
    became_ready = False
    try:
        while worker.running and time.monotonic() < deadline:
            became_ready = became_ready or ready(worker)
            time.sleep(0.3)
        returncode = worker.proc.poll()
    finally:
        s.stop()
    # Then it never becomes ready: it logs the authentication failure and exits with an error
    # (a supervisor restarts it; Kubernetes shows CrashLoopBackOff), and no password is logged.
    log = assert_no_password(worker.log_path, wrong, sasl.password, sasl.admin_password)
    assert not became_ready
    assert returncode is not None, f"still running after {REFUSAL_WAIT_S:.0f}s:\n{log[-3000:]}"
    assert returncode != 0
    assert AUTH_FAILED.search(log), (
        f"no authentication failure in {worker.log_path}:\n{log[-3000:]}"
    )


async def _metadata(settings_options: dict[str, object], bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **settings_options
    )
    try:
        async with asyncio.timeout(20):
            await admin.start()
            topics: list[str] = await admin.list_topics()
            return topics
    finally:
        await admin.close()


def test_clients_without_valid_credentials_are_refused(
    sasl: SaslBroker, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = sasl.broker.bootstrap
    # With the right password the client works
    assert isinstance(asyncio.run(_metadata(client_options(sasl.settings()), bootstrap)), list)
    # With a wrong one it cannot bootstrap, and aiokafka's log says why
    wrong = client_options(sasl.settings(kafka_password=secrets.token_hex(12)))
    with caplog.at_level(logging.WARNING, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        asyncio.run(_metadata(wrong, bootstrap))
    assert AUTH_FAILED.search(caplog.text)
    assert wrong["sasl_plain_password"] not in caplog.text
    caplog.clear()

    # Without credentials the broker closes the connection before answering anything
    async def produce_in_plaintext() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            async with asyncio.timeout(20):
                await producer.start()
                await producer.send_and_wait("anything", b"x")
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(_metadata({}, bootstrap))
    with pytest.raises(KafkaConnectionError):
        asyncio.run(produce_in_plaintext())
    # The broker recorded the failed login, and neither of its logs holds a password
    broker_log = assert_no_password(sasl.broker.log_file, sasl.password, sasl.admin_password)
    assert "Failed authentication" in broker_log
    assert_no_password(sasl.broker.out_file, sasl.password, sasl.admin_password)


# --- SASL over TLS -----------------------------------------------------------------------


class TlsBroker(LocalBroker):
    """The SASL broker with its client listener on TLS (SASL_SSL). Test-only: the local dev
    broker has no TLS, but this is the path MSK and Confluent Cloud take, end to end."""

    def __init__(self, settings: Settings, pki: tls_certs.Pki) -> None:
        super().__init__(settings)
        self.pki = pki

    def render_server_properties(self) -> str:
        text = super().render_server_properties()
        text = text.replace("SASL_PLAINTEXT", "SASL_SSL").replace(".sasl_plaintext.", ".sasl_ssl.")
        keystore = self.base_dir / "server-keystore.pem"
        keystore.write_text(self.pki.server_key.read_text() + self.pki.server_cert.read_text())
        keystore.chmod(0o600)
        tls = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": keystore,
            # the broker's inter-broker login goes over TLS too, so it trusts our CA
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.pki.ca,
        }
        return text + "".join(f"{k}={v}\n" for k, v in tls.items())

    def client_options(self) -> ClientOptions:
        name, password = self.sasl_users[0]
        login = Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_username=name,
            kafka_password=password,
            kafka_ssl_cafile=self.pki.ca,
        )
        return client_options(login)


async def _records_over_sasl(settings: Settings, topic: str, n: int) -> None:
    options = client_options(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, **options)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_the_bulk_restore_logs_in_as_the_worker_does(sasl: SaslBroker) -> None:
    # Given a changelog-like topic of 100 records, written by a client logged in as `orders`
    settings = sasl.settings()
    topic = f"sasl-restore-{secrets.token_hex(4)}"
    asyncio.run(_records_over_sasl(settings, topic, 100))
    tp = TopicPartition(topic, 0)
    read: list[int] = []
    # When the bulk restore reads it with the worker's settings (its own Kafka client)
    reached = asyncio.run(
        restore(
            settings,
            {tp: Span(0, 100)},
            lambda _, records: read.extend(r.offset for r in records),
            lambda: True,
        )
    )
    # Then it logged in and read every record once, in order
    assert reached == {tp: 100}
    assert read == list(range(100))
    # and with a wrong password it is refused, not left waiting
    wrong = sasl.settings(kafka_password="wrong-" + secrets.token_hex(4))
    with pytest.raises(KafkaConnectionError):
        asyncio.run(restore(wrong, {tp: Span(0, 100)}, lambda *_: None, lambda: True))


def test_sasl_over_tls_with_the_configured_ca(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not tls_certs.available():
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    # Given a broker that takes SASL/SCRAM only over TLS, its certificate signed by our own CA
    pki = tls_certs.make_pki(tmp_path / "pki")
    admin_password, password = secrets.token_hex(12), secrets.token_hex(12)
    broker = TlsBroker(broker_settings(tmp_path / "kafka", admin_password, password), pki)
    stack: Stack | None = None
    try:
        broker.start()
        assert "SASL_SSL://" in broker.properties_file.read_text()
        stack = Stack(
            broker,
            "sasl-tls",
            kafka_security_protocol="SASL_SSL",
            kafka_username=USER,
            kafka_password=password,
            kafka_ssl_cafile=pki.ca,
        )
        # When a worker and the demo's clients connect with the CA file
        worker = stack.worker()
        result = asyncio.run(demo.run(stack.settings, 20, quiet=True, timeout_s=120))
        # Then orders flow as without TLS
        assert result.settled == 20, demo.summary(result)
        assert result.ok, demo.summary(result)
        # and a client that does not trust the CA (system CAs only) is refused by TLS itself
        untrusted = client_options(stack.settings.model_copy(update={"kafka_ssl_cafile": None}))
        capture = caplog.at_level(logging.WARNING, logger="aiokafka")
        with capture, pytest.raises(KafkaConnectionError):
            asyncio.run(_metadata(untrusted, broker.bootstrap))
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    finally:
        if stack is not None:
            stack.stop()
        broker.stop(timeout=15)
    assert worker.log_path is not None
    assert_no_password(worker.log_path, password, admin_password)
