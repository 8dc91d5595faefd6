"""Kafka security from Settings: one TLS context, SASL credentials for Faust, kwargs for aiokafka.

Every Kafka client in the project connects through here, so all of them authenticate alike.
"""

from __future__ import annotations

import ssl
from typing import Any

from orderstream.errors import ConfigError
from orderstream.settings import Settings

__all__ = [
    "SASL_PROTOCOLS",
    "TLS_PROTOCOLS",
    "ClientOptions",
    "broker_credentials",
    "client_options",
    "ssl_context",
]

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
MASK = "**********"


class ClientOptions(dict[str, Any]):
    """aiokafka keyword arguments (`**options`); repr and str mask the password."""

    def __repr__(self) -> str:
        shown = {k: MASK if k == "sasl_plain_password" and v else v for k, v in self.items()}
        return f"{type(self).__name__}({shown!r})"


def _check(settings: Settings) -> None:
    """Refuse settings that would silently connect with less security than asked for."""
    protocol = settings.kafka_security_protocol
    var = f"ORDERSTREAM_KAFKA_SECURITY_PROTOCOL={protocol}"
    has_login = settings.kafka_username is not None or settings.kafka_password is not None
    if protocol in SASL_PROTOCOLS:
        _login(settings)
    elif has_login:
        raise ConfigError(
            f"ORDERSTREAM_KAFKA_USERNAME/PASSWORD are set but {var} sends no credentials: "
            "set it to SASL_SSL (or SASL_PLAINTEXT), or unset them"
        )
    tls_files = (settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if protocol not in TLS_PROTOCOLS and any(f is not None for f in tls_files):
        raise ConfigError(
            f"ORDERSTREAM_KAFKA_SSL_* files are set but {var} does not use TLS: "
            "set it to SSL or SASL_SSL, or unset them"
        )
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        raise ConfigError(
            "ORDERSTREAM_KAFKA_SSL_KEYFILE is set without ORDERSTREAM_KAFKA_SSL_CERTFILE: "
            "set the client certificate too"
        )


def _login(settings: Settings) -> tuple[str, str]:
    username, password = settings.kafka_username, settings.kafka_password
    if not username or password is None or not password.get_secret_value():
        raise ConfigError(
            f"ORDERSTREAM_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "ORDERSTREAM_KAFKA_USERNAME and ORDERSTREAM_KAFKA_PASSWORD"
        )
    return username, password.get_secret_value()


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (CA file or the system CAs, optional client cert)."""
    _check(settings)
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    cafile = settings.kafka_ssl_cafile
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ORDERSTREAM_KAFKA_SSL_CAFILE={cafile} cannot be loaded: {exc}") from exc
    if settings.kafka_ssl_certfile is not None:
        keyfile = settings.kafka_ssl_keyfile
        try:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile), str(keyfile) if keyfile else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ORDERSTREAM_KAFKA_SSL_CERTFILE={settings.kafka_ssl_certfile} / "
                f"ORDERSTREAM_KAFKA_SSL_KEYFILE={keyfile} cannot be loaded: {exc}"
            ) from exc
    return context


def client_options(settings: Settings) -> ClientOptions:
    """Security kwargs for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    context = ssl_context(settings)
    protocol = settings.kafka_security_protocol
    options = ClientOptions(security_protocol=protocol)
    if context is not None:
        options["ssl_context"] = context
    if protocol in SASL_PROTOCOLS:
        username, password = _login(settings)
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = username
        options["sasl_plain_password"] = password
    return options


def broker_credentials(settings: Settings) -> Any:
    """Faust's `broker_credentials`: SASLCredentials, SSLCredentials, or None for PLAINTEXT."""
    import faust  # here, not at the top: plain clients (admin, demo) need no Faust

    context = ssl_context(settings)
    protocol = settings.kafka_security_protocol
    if protocol in SASL_PROTOCOLS:
        username, password = _login(settings)
        # With an ssl_context Faust picks SASL_SSL, without it SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=username,
            password=password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None
