"""Kafka security settings (orderstream/kafka/auth.py) and the local broker's SASL mode, without
Kafka."""

from __future__ import annotations

import ast
import logging
import socket
import ssl
import stat
import threading
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism
from pydantic import ValidationError

from devtools.broker import LocalBroker, parse_sasl_users
from orderstream.errors import BrokerError, ConfigError
from orderstream.kafka.auth import MASK, broker_credentials, client_options, ssl_context
from orderstream.settings import Settings
from tests import tls_certs

PASSWORD = "pw-7f3c1d9e-never-log-me"
ADMIN_PASSWORD = "admin-pw-51a2b0c4"


def settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


def sasl_settings(**overrides: object) -> Settings:
    fields: dict[str, object] = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_username": "orders",
        "kafka_password": PASSWORD,
    }
    return settings(**{**fields, **overrides})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tls_certs.Pki:
    if not tls_certs.available():
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    return tls_certs.make_pki(tmp_path_factory.mktemp("pki"))


# --- settings and secrets ----------------------------------------------------------------


def test_security_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ORDERSTREAM_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("ORDERSTREAM_KAFKA_USERNAME", "orders")
    monkeypatch.setenv("ORDERSTREAM_KAFKA_PASSWORD", PASSWORD)
    monkeypatch.setenv("ORDERSTREAM_KAFKA_SSL_CAFILE", "/etc/kafka/ca.pem")
    s = Settings()
    assert s.kafka_security_protocol == "SASL_SSL"
    assert s.kafka_sasl_mechanism == "PLAIN"
    assert s.kafka_username == "orders"
    assert s.kafka_password is not None
    assert s.kafka_password.get_secret_value() == PASSWORD
    assert s.kafka_ssl_cafile == Path("/etc/kafka/ca.pem")


def test_defaults_are_plaintext_without_credentials() -> None:
    s = Settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert s.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert s.kafka_username is None
    assert s.kafka_password is None
    assert s.local_broker_sasl_users.get_secret_value() == ""


def test_unknown_protocol_or_mechanism_is_rejected() -> None:
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        settings(kafka_security_protocol="TLS")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        settings(kafka_sasl_mechanism="SCRAM-SHA-1")


def test_settings_never_show_passwords() -> None:
    s = sasl_settings(local_broker_sasl_users=f"admin:{ADMIN_PASSWORD},orders:{PASSWORD}")
    for text in (repr(s), str(s), s.model_dump_json(), repr(s.model_dump())):
        assert PASSWORD not in text
        assert ADMIN_PASSWORD not in text
    assert "orders" in repr(s)  # the user name is not a secret


def test_client_options_and_credentials_never_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = sasl_settings()
    options = client_options(s)
    credentials = broker_credentials(s)
    with caplog.at_level(logging.INFO):
        logging.getLogger("orderstream.test").info(
            "kafka: %s %r / %s", options, options, credentials
        )
    for text in (repr(options), str(options), f"{options}", repr(credentials), str(credentials)):
        assert PASSWORD not in text
    assert PASSWORD not in caplog.text
    assert MASK in repr(options)
    assert options["sasl_plain_password"] == PASSWORD  # masked only when shown


# --- aiokafka options and Faust credentials ----------------------------------------------


def test_plaintext_is_the_default() -> None:
    assert client_options(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(Settings()) is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext(mechanism: str) -> None:
    s = sasl_settings(kafka_sasl_mechanism=mechanism)
    assert client_options(s) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "orders",
        "sasl_plain_password": PASSWORD,
    }
    credentials = broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism(mechanism)
    assert (credentials.username, credentials.password) == ("orders", PASSWORD)


def test_faust_and_plain_clients_get_the_same_kwargs() -> None:
    # The worker (Faust) and the CLI's clients must log in identically.
    s = sasl_settings()
    from_faust = credentials_to_aiokafka_auth(broker_credentials(s))
    assert from_faust == {**client_options(s), "ssl_context": None}


def test_sasl_ssl_uses_the_system_cas_without_a_ca_file() -> None:
    s = sasl_settings(kafka_security_protocol="SASL_SSL")
    options = client_options(s)
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert options["security_protocol"] == "SASL_SSL"
    credentials = broker_credentials(s)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    assert isinstance(credentials.ssl_context, ssl.SSLContext)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"kafka_password": None},
            "needs ORDERSTREAM_KAFKA_USERNAME and ORDERSTREAM_KAFKA_PASSWORD",
        ),
        ({"kafka_username": None}, "needs ORDERSTREAM_KAFKA_USERNAME"),
        ({"kafka_password": ""}, "needs ORDERSTREAM_KAFKA_USERNAME"),
        ({"kafka_security_protocol": "PLAINTEXT"}, "set it to SASL_SSL"),
        ({"kafka_security_protocol": "SSL"}, "sends no credentials"),
        ({"kafka_ssl_cafile": "/x/ca.pem"}, "does not use TLS: set it to SSL or SASL_SSL"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_ssl_keyfile": "/x/k.pem"},
            "KEYFILE is set without ORDERSTREAM_KAFKA_SSL_CERTFILE",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"},
            "ORDERSTREAM_KAFKA_SSL_CAFILE=/nonexistent/ca.pem cannot be loaded",
        ),
    ],
)
def test_contradicting_settings_say_what_to_fix(overrides: dict[str, object], message: str) -> None:
    s = sasl_settings(**overrides)
    with pytest.raises(ConfigError, match=message) as info:
        client_options(s)
    assert PASSWORD not in str(info.value)
    with pytest.raises(ConfigError, match=message):
        broker_credentials(s)


# --- TLS ---------------------------------------------------------------------------------


def common_names(cert: Any) -> list[str]:
    """The CN of a certificate as the ssl module describes it (getpeercert, get_ca_certs)."""
    return [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]


def test_ssl_context_trusts_exactly_the_configured_ca(pki: tls_certs.Pki) -> None:
    context = ssl_context(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca))
    assert context is not None
    assert [common_names(cert) for cert in context.get_ca_certs()] == [[tls_certs.CA_NAME]]
    credentials = broker_credentials(
        settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca)
    )
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL
    assert [c["subject"] for c in credentials.context.get_ca_certs()] == [
        c["subject"] for c in context.get_ca_certs()
    ]


def _handshake(client: ssl.SSLContext, pki: tls_certs.Pki) -> str:
    """A real TLS handshake against a server that requires a client certificate from our CA;
    returns the client certificate's CN as the server saw it."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    server.load_verify_locations(pki.ca)
    server.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []
    left, right = socket.socketpair()

    def serve() -> None:
        try:
            with server.wrap_socket(left, server_side=True) as tls:
                seen.extend(common_names(tls.getpeercert() or {}))
                tls.sendall(tls.recv(1))
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with client.wrap_socket(right, server_hostname=tls_certs.SERVER_NAME) as tls:
            tls.settimeout(5)
            tls.sendall(b"x")
            assert tls.recv(1) == b"x"  # an echo: the server accepted our certificate
    finally:
        thread.join(5)
        left.close()
    return seen[0] if seen else ""


def test_mutual_tls_context_completes_a_handshake(pki: tls_certs.Pki) -> None:
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.client_key,
    )
    context = client_options(s)["ssl_context"]
    assert _handshake(context, pki) == tls_certs.CLIENT_NAME


def test_without_our_ca_the_server_is_not_trusted(pki: tls_certs.Pki) -> None:
    context = ssl_context(settings(kafka_security_protocol="SSL"))  # system CAs only
    assert context is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context, pki)


def test_unreadable_client_key_says_which_setting(pki: tls_certs.Pki) -> None:
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=pki.ca,
        kafka_ssl_certfile=pki.client_cert,
        kafka_ssl_keyfile=pki.server_key,  # does not match the certificate
    )
    with pytest.raises(ConfigError, match=r"ORDERSTREAM_KAFKA_SSL_CERTFILE=.*cannot be loaded"):
        ssl_context(s)


# --- the local broker's SASL mode --------------------------------------------------------


def broker_settings(tmp_path: Path, **overrides: object) -> Settings:
    return settings(
        local_broker_dir=tmp_path / "kafka",
        local_broker_port=29092,
        local_controller_port=29093,
        **overrides,
    )


def properties(broker: LocalBroker) -> dict[str, str]:
    text = broker.render_server_properties()
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


def test_parse_sasl_users() -> None:
    assert parse_sasl_users("") == []
    assert parse_sasl_users(" admin:a-1 , orders:o.2@x ,") == [
        ("admin", "a-1"),
        ("orders", "o.2@x"),
    ]


@pytest.mark.parametrize(
    "spec",
    [
        "admin",
        "admin:",
        ":secret",
        "u:p:q",
        f"admin:{PASSWORD} x",
        f'admin:"{PASSWORD}"',
        f"a=b:{PASSWORD}",
    ],
)
def test_bad_sasl_users_are_refused_without_echoing_them(spec: str) -> None:
    with pytest.raises(ConfigError, match="ORDERSTREAM_LOCAL_BROKER_SASL_USERS entry 1") as info:
        parse_sasl_users(spec)
    assert PASSWORD not in str(info.value)


def test_default_broker_has_no_sasl(tmp_path: Path) -> None:
    broker = LocalBroker(broker_settings(tmp_path))
    props = properties(broker)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert not [k for k in props if "sasl" in k]
    assert broker.client_options() == {}


def test_sasl_broker_renders_a_scram_listener(tmp_path: Path) -> None:
    users = f"admin:{ADMIN_PASSWORD},orders:{PASSWORD}"
    broker = LocalBroker(broker_settings(tmp_path, local_broker_sasl_users=users))
    props = properties(broker)
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:29092"
    assert props["listener.security.protocol.map"] == (
        "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{ADMIN_PASSWORD}";'
    )
    # only the inter-broker (first) user's password is in the file, and only its owner reads it
    assert PASSWORD not in broker.render_server_properties()
    path = broker.write_server_properties()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sasl_broker_probe_logs_in_as_the_first_user(tmp_path: Path) -> None:
    users = f"admin:{ADMIN_PASSWORD},orders:{PASSWORD}"
    options = LocalBroker(broker_settings(tmp_path, local_broker_sasl_users=users)).client_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "admin",
        "sasl_plain_password": ADMIN_PASSWORD,
    }
    assert ADMIN_PASSWORD not in repr(options)


def fake_java(tmp_path: Path, storage_tool: str) -> None:
    """A JDK that reports 17 and runs `storage_tool` (shell) for kafka.tools.StorageTool."""
    bin_dir = tmp_path / "jdk" / "bin"
    bin_dir.mkdir(parents=True)
    java = bin_dir / "java"
    java.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  *-version*) echo 'openjdk version \"17.0.15\"' >&2 ;;\n"
        f"  *StorageTool*) {storage_tool} ;;\n"
        "esac\n"
    )
    java.chmod(0o755)


def test_format_creates_the_scram_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = tmp_path / "args"
    fake_java(tmp_path, f'for a in "$@"; do echo "$a"; done > {args}')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    users = f"admin:{ADMIN_PASSWORD},orders:{PASSWORD}"
    broker = LocalBroker(broker_settings(tmp_path, local_broker_sasl_users=users))
    broker.write_server_properties()
    assert broker.format_storage() is True
    argv = args.read_text().splitlines()
    scram = [argv[i + 1] for i, a in enumerate(argv) if a == "--add-scram"]
    assert scram == [
        f"SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]",
        f"SCRAM-SHA-512=[name=orders,password={PASSWORD}]",
    ]


def test_format_without_users_adds_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = tmp_path / "args"
    fake_java(tmp_path, f'echo "$*" > {args}')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    broker = LocalBroker(broker_settings(tmp_path))
    broker.write_server_properties()
    broker.format_storage()
    assert "StorageTool format" in args.read_text()
    assert "--add-scram" not in args.read_text()


def test_format_failure_masks_the_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_java(tmp_path, 'echo "bad argument: $*" >&2; exit 1')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    users = f"admin:{ADMIN_PASSWORD},orders:{PASSWORD}"
    broker = LocalBroker(broker_settings(tmp_path, local_broker_sasl_users=users))
    broker.write_server_properties()
    with pytest.raises(BrokerError, match=r"(?s)formatting Kafka storage.*bad argument") as info:
        broker.format_storage()
    assert "name=orders,password=***" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert ADMIN_PASSWORD not in str(info.value)


# --- every client logs in ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]
# The local broker's readiness probe logs in with its own first SASL user (options=...).
OWN_LOGIN = {("devtools/broker.py", "AIOKafkaAdminClient")}


def _kafka_clients() -> list[tuple[str, str, ast.Call]]:
    found = []
    for package in ("orderstream", "devtools"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = ast.unparse(node.func).rsplit(".", 1)[-1]
                if name.startswith("AIOKafka") or ast.unparse(node.func) == "faust.App":
                    found.append((str(path.relative_to(ROOT)), name, node))
    return found


def test_every_kafka_client_in_the_project_uses_the_security_settings() -> None:
    clients = _kafka_clients()
    assert len(clients) >= 8  # the scan itself works
    missing = []
    for path, name, call in clients:
        if (path, name) in OWN_LOGIN:
            continue
        if name == "App":
            ok = any(k.arg == "broker_credentials" for k in call.keywords)
        else:
            ok = any(
                k.arg is None and ast.unparse(k.value).startswith("client_options(")
                for k in call.keywords
            )
        if not ok:
            missing.append(f"{path}:{call.lineno} {name}")
    assert not missing, f"Kafka clients without **client_options(settings): {missing}"
