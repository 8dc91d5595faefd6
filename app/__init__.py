"""orderstream: event-driven order processing on Faust and Apache Kafka."""

from app.application import app

__all__ = ["app"]
