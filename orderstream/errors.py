"""One base exception for the project; every message says what to do about it."""


class OrderstreamError(Exception):
    """Base class of every error raised on purpose by orderstream."""


class BrokerError(OrderstreamError):
    """The local Kafka broker could not be set up, started or reached."""


class ConfigError(OrderstreamError):
    """Settings that are missing or contradict each other; the message names the variable."""


class EventError(OrderstreamError):
    """An event could not be decoded or validated; it belongs in the dead-letter topic."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
