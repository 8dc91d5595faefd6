"""The worker's HTTP server: Faust's aiohttp driver with JSON errors and without Faust's own
index at `/` (the page for people lives there). Registered as the `orderstream://` web driver
(pyproject entry point `faust.web.drivers`)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web as aiohttp_web
from faust.web.drivers import aiohttp as faust_aiohttp

from orderstream.settings import get_settings

log = logging.getLogger(__name__)


def error_response(status: int, message: str, **details: Any) -> aiohttp_web.Response:
    """The one shape of every error, as Faust's views give it too: {"error": message, ...}."""
    return aiohttp_web.json_response({"error": message, **details}, status=status)


@aiohttp_web.middleware
async def json_errors(request: aiohttp_web.Request, handler: Any) -> aiohttp_web.StreamResponse:
    """Unknown paths, wrong methods and unexpected failures answer JSON, never a stack trace."""
    try:
        response: aiohttp_web.StreamResponse = await handler(request)
        return response
    except aiohttp_web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        resp = error_response(exc.status, exc.reason)
        resp.headers.update(allow)
        return resp
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error; the worker's log has the details")


class Web(faust_aiohttp.Web):
    # Faust mounts a placeholder index at "/" when its statistics views are off.
    production_blueprints = ()

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.web_app.middlewares.append(json_errors)
        # Bodies over the limit are refused with 413 before a view reads them.
        self.web_app._client_max_size = get_settings().web_max_body_bytes
