"""Agent tests: Faust's test_context with in-memory transport and store; published events are
captured instead of sent. The environment must be set before the app module is imported."""

from __future__ import annotations

import os

os.environ["ORDERSTREAM_STORE"] = "memory://"
os.environ["ORDERSTREAM_APP_ID"] = "orderstream-agent-tests"
