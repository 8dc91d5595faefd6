"""GET /: a small page for people: stock per product and the latest orders, refreshing itself.
It is self-contained (no CDN) and reads the same JSON views as any other client."""

from __future__ import annotations

from importlib.resources import files

from faust.web import Request, Response, View

from orderstream.worker.app import app

PAGE = files("orderstream.web").joinpath("page.html").read_text(encoding="utf-8")


@app.page("/")
class Page(View):
    async def get(self, request: Request) -> Response:
        return self.html(PAGE, headers={"Cache-Control": "no-cache"})
