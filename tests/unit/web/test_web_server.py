"""The HTTP server's error middleware and the partition of a key (no worker, no Kafka)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from orderstream.kafka.partitioner import key_hash
from orderstream.web.server import json_errors


async def _answers(path: str, method: str = "GET") -> tuple[int, str, Any, dict[str, str]]:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail")

    async def fine(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/broken", broken)
    app.router.add_get("/fine", fine)
    async with TestClient(TestServer(app)) as client:
        resp = await client.request(method, path)
        return resp.status, resp.content_type, await resp.json(), dict(resp.headers)


def test_unexpected_errors_answer_json_without_the_trace() -> None:
    status, ctype, body, _ = asyncio.run(_answers("/broken"))
    assert (status, ctype) == (500, "application/json")
    assert "secret detail" not in str(body) and "Traceback" not in str(body)
    assert "log" in body["error"]


def test_unknown_paths_and_methods_answer_json() -> None:
    assert asyncio.run(_answers("/nowhere"))[:3] == (
        404,
        "application/json",
        {"error": "Not Found"},
    )
    status, _, body, headers = asyncio.run(_answers("/fine", "POST"))
    assert status == 405 and body == {"error": "Method Not Allowed"}
    assert "GET" in headers["Allow"]
    assert asyncio.run(_answers("/fine"))[2] == {"ok": True}


@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_a_key_lands_where_the_java_client_puts_it(key: bytes, partition: int) -> None:
    # Vectors of Kafka's own (Java) partitioner over 1000 partitions: routing by key finds the
    # partition any murmur2 producer wrote to, aiokafka's, the Java client's or KafkaJS's.
    assert key_hash(key) % 1000 == partition
