"""Tables split over workers: the partition of a key, whether this worker owns it, and asking
every worker for its share of a table (lists that span all partitions).

Single keys are routed with Faust's `@app.table_route`; its key -> partition lookup is the
producer's (murmur2 over the raw key bytes), the function `owns` uses too
(orderstream/kafka/partitioner.py).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp
from faust.types import TP
from faust.web import Request
from faust.web.exceptions import ParseError, ServiceUnavailable
from yarl import URL

from orderstream.kafka.partitioner import key_hash
from orderstream.worker.app import app, settings

FAN_OUT_TIMEOUT_S = 5.0

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


# Path parameters are ids (orderId, productId): the same rule as in the event contracts.
VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")


def routed(table: Any, match_info: str) -> Callable[[Handler], Handler]:
    """Faust's `@app.table_route`: serve the request on the worker that owns the key in the
    URL (this one answers itself, another is asked over HTTP); a malformed id is a 400."""
    route = cast(Callable[[Handler], Handler], app.table_route(table=table, match_info=match_info))

    def decorate(handler: Handler) -> Handler:
        to_owner = route(handler)

        @functools.wraps(handler)
        async def checked(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
            path_id(request, match_info)
            return await to_owner(view, request, *args, **kwargs)

        return cast(Handler, checked)

    return decorate


def path_id(request: Request, name: str) -> str:
    """The id in the URL's `name` part; a malformed one is a 400."""
    value: str = request.match_info.get(name, "")
    if not VALID_ID.match(value):
        raise ParseError(f"invalid {name}: 1-64 of A-Z a-z 0-9 . _ : @ -")
    return value


def active_partitions(table: Any) -> list[int]:
    """The partitions of the table this worker holds as active (not standby)."""
    topic = table.changelog_topic.get_topic_name()
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


def owns(table: Any, key: bytes) -> bool:
    """True when this worker holds the key's partition of the table as active (not standby)."""
    tp = TP(table.changelog_topic.get_topic_name(), key_hash(key) % settings.partitions)
    return tp in app.assignor.assigned_actives()


def _same_worker(a: URL, b: URL) -> bool:
    return (a.host, a.port) == (b.host, b.port)


async def from_every_worker(
    table: Any, request: Request, local: Callable[[], Awaitable[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """This worker's share (`local()`) and every other owner's (the same request with
    scope=local). Refuses with 503 while a rebalance leaves partitions without an owner."""
    topic = table.changelog_topic.get_topic_name()
    owners: dict[str, set[int]] = {
        url: set(tps.get(topic, ()))
        for url, tps in app.router.table_metadata(table.name).items()
        if tps.get(topic)
    }
    covered = set().union(*owners.values()) if owners else set()
    if covered != set(range(settings.partitions)):
        raise ServiceUnavailable("partitions are being reassigned between workers; retry shortly")
    me = URL(str(app.conf.canonical_url))
    asks = [local() if _same_worker(URL(u), me) else _ask(URL(u), request) for u in sorted(owners)]
    return list(await asyncio.gather(*asks))


async def _ask(worker: URL, request: Request) -> dict[str, Any]:
    url = worker.with_path(request.rel_url.path).with_query({**request.query, "scope": "local"})
    try:
        async with app.http_client.get(
            url, timeout=aiohttp.ClientTimeout(total=FAN_OUT_TIMEOUT_S)
        ) as resp:
            if resp.status != 200:
                raise ServiceUnavailable(f"worker {worker} answered {resp.status}; retry shortly")
            share: dict[str, Any] = await resp.json()
            return share
    except (aiohttp.ClientError, TimeoutError):
        raise ServiceUnavailable(f"worker {worker} did not answer; retry shortly") from None
