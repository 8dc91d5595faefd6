"""Set before anything imports the Faust app (orderstream.worker.app builds it from the
environment at import): tests in this process that import the worker get in-memory tables and
their own application id. Worker processes the integration tests start set their own (real
RocksDB tables, an id per test: tests/integration/conftest.py)."""

from __future__ import annotations

import os

os.environ["ORDERSTREAM_STORE"] = "memory://"
os.environ["ORDERSTREAM_APP_ID"] = "orderstream-agent-tests"
