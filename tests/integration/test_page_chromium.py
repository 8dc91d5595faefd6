"""The page at / in a real browser (headless Chromium, Debian's `chromium` package): after its
script ran, a person sees every product's stock and the latest orders with their status,
gathered from both workers. The screenshot is kept in test-artifacts/page.png."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, Stack
from tests.integration.webclient import TOKEN, eventually, get, place, restock, settled, stock_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ARTIFACTS = REPO / "test-artifacts"


def chromium(tmp_path: Path, url: str, *mode: str) -> str:
    """Run headless Chromium on the page; returns what it prints (the DOM for --dump-dom)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium not found: apt-get install chromium (.ci/run does it)")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    flags = [
        "--headless",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
        "--virtual-time-budget=5000",
    ]
    done = subprocess.run(
        [binary, *flags, *mode, url], capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Seen(HTMLParser):
    """What the rendered page shows: product rows, order rows with their status, any error."""

    def __init__(self) -> None:
        super().__init__()
        self.products: dict[str, list[str]] = {}
        self.orders: dict[str, str] = {}
        self.error_shown = False
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-product"):
            self._row = str(a["data-product"])
            self.products[self._row] = []
        elif tag == "tr" and a.get("data-order"):
            self.orders[str(a["data-order"])] = str(a.get("data-status"))
        elif a.get("id") == "error" and "display: block" in (a.get("style") or ""):
            self.error_shown = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self.products[self._row].append(data.strip())


def test_page_shows_stock_and_latest_orders_from_both_workers(
    stack: type[Stack], tmp_path: Path
) -> None:
    # Given two workers, three products and orders that end each way
    s = stack(admin_token=TOKEN)
    w1, w2 = s.workers("w1", "w2")
    eventually(lambda: get(w1, "/readyz").status == 200, what="w1 ready after the rebalance")
    skus = ["PAGE-A", "PAGE-B", "PAGE-C"]
    for sku in skus:
        restock(w1, sku, 50)
    for sku in skus:
        eventually(lambda sku=sku: stock_of(w2, sku), what=f"{sku} restocked")
    expected = {
        "page-1": "CONFIRMED",
        "page-2": "CONFIRMED",
        "page-3": "REJECTED",  # an unknown product
        "page-4": "CANCELLED",  # above the payment limit
        "page-5": "CONFIRMED",
    }
    place(w1, "page-1", [("PAGE-A", 2)], 20.0)
    place(w2, "page-2", [("PAGE-B", 1), ("PAGE-C", 3)], 40.0)
    place(w1, "page-3", [("PAGE-A", 1), ("NOT-SOLD-HERE", 1)], 20.0)
    place(w2, "page-4", [("PAGE-C", 1)], 4000.0)
    place(w1, "page-5", [("PAGE-A", 1)], 10.0)
    for order_id, status in expected.items():
        assert settled(w1, order_id)["status"] == status
    eventually(lambda: stock_of(w1, "PAGE-C")["held"] == 0, what="holds released")  # type: ignore[index]

    # When a person opens the page of one worker
    url = f"http://127.0.0.1:{w1.web_port}/"
    seen = Seen()
    seen.feed(chromium(tmp_path, url, "--dump-dom"))

    # Then every product shows its stock (available, held, sold) and every order its status
    assert not seen.error_shown
    assert {p: cells[:4] for p, cells in seen.products.items() if p in skus} == {
        "PAGE-A": ["PAGE-A", "47", "0", "3"],
        "PAGE-B": ["PAGE-B", "49", "0", "1"],
        "PAGE-C": ["PAGE-C", "47", "0", "3"],
    }
    assert seen.orders == expected
    # ... and what it looks like is kept for people to check
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "page.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, url, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000
