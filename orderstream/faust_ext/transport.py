"""Faust's aiokafka transport with the worker's consumer, producer and transaction manager,
registered under the `faust.transports` entry point as `orderstream` (pyproject.toml): a URL
`orderstream://host:9092` selects it (orderstream/worker/app.py maps the user's kafka:// URLs)."""

from __future__ import annotations

from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka

from orderstream.faust_ext.consumer import Consumer
from orderstream.faust_ext.producer import Producer
from orderstream.faust_ext.transactions import TransactionManager

SCHEME = "orderstream"


class Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[Any] = Consumer
    Producer: ClassVar[Any] = Producer
    TransactionManager: ClassVar[Any] = TransactionManager


def broker_urls(urls: str) -> str:
    """The user's broker URLs (kafka://host:port;...) with this transport's scheme."""
    return ";".join(
        f"{SCHEME}://{u.split('://', 1)[-1]}" for u in urls.replace(",", ";").split(";") if u
    )
