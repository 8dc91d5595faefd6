"""The shipped Prometheus config, alert rules and Grafana dashboards, proved on a real Prometheus
(Debian's `prometheus` package) scraping two real workers while they process orders: promtool
accepts them, and every PromQL expression parses and returns data."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import demo
from devtools.workers import WorkerProcess
from tests.integration.conftest import REPO, Stack, free_ports
from tests.integration.webclient import eventually, get

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__interval": "5s", "$__range": "5m"}
# Top-level set operators of an alert condition, and a trailing comparison with a number.
SET_OPERATOR = re.compile(r"\s+(?:and|or|unless)\s+")
COMPARISON = re.compile(r"\s*(?:==|!=|>=|<=|>|<)\s*-?[0-9.e+]+\s*$")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: apt-get install prometheus (.ci/run does it)")
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def dashboard_exprs() -> list[str]:
    """Every target expression of every panel (rows included), Grafana variables filled in."""
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", ()) if t.get("expr"))
            walk(panel.get("panels", []))

    for path in DASHBOARDS:
        walk(json.loads(path.read_text())["panels"])
    for variable, value in GRAFANA_VARIABLES.items():
        found = [e.replace(variable, value) for e in found]
    return found


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    return [" ".join(r["expr"].split()) for g in rules["groups"] for r in g["rules"]]


def _top_level_split(expr: str) -> list[str]:
    """`a > 1 and b > 0` -> [`a > 1`, `b > 0`] (operators inside parentheses stay)."""
    parts, depth, start = [], 0, 0
    for m in re.finditer(r"[()]|" + SET_OPERATOR.pattern, expr):
        token = m.group(0)
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0:
            parts.append(expr[start : m.start()])
            start = m.end()
    return [*parts, expr[start:]]


def measured_parts(condition: str) -> list[str]:
    """What an alert condition compares: each operand without its threshold."""
    return [COMPARISON.sub("", part) for part in _top_level_split(condition)]


def test_alert_condition_parts_are_split_at_the_top_level_only() -> None:
    condition = "sum by (t) (x) > 1000 and sum by (t) (delta(x[10m])) > 0"
    assert measured_parts(condition) == ["sum by (t) (x)", "sum by (t) (delta(x[10m]))"]
    assert measured_parts("sum(a) / sum(b) > 0.5") == ["sum(a) / sum(b)"]
    assert measured_parts("max(x and on() y) == 0") == ["max(x and on() y)"]


def test_promtool_accepts_the_rules_and_the_config() -> None:
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_exprs())} rules found" in rules.stdout
    config = promtool("check", "config", str(CONFIG))
    assert config.returncode == 0, config.stdout + config.stderr


def render_config(workers: list[WorkerProcess], into: Path) -> Path:
    """The shipped prometheus.yml, scraping the test's workers every second."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    (job,) = config["scrape_configs"]
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{w.web_port}" for w in workers]}]
    path = into / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Prometheus:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def query(self, expr: str, at: float) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = self.api("query", query=expr, time=f"{at:.3f}")
        except urllib.error.HTTPError as err:  # 400 for a parse error, with the reason
            answer = json.loads(err.read())
        return answer


@pytest.fixture
def prometheus(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Starts a real Prometheus for a rendered config; stops it after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path) -> Prometheus:
        (port,) = free_ports(1)
        log = (tmp_path / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        prom = Prometheus(port)

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
                return False

        eventually(ready, 30, "Prometheus ready")
        return prom

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(10)


def test_every_dashboard_and_alert_expression_has_data(
    stack: type[Stack], prometheus: Any, tmp_path: Path
) -> None:
    # Given two workers scraped every second by a real Prometheus with the shipped config
    s = stack(metrics_refresh_s=1)
    workers = s.workers("w1", "w2")
    config = render_config(workers, tmp_path)
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    prom = prometheus(config)

    def targets_up() -> bool:
        active = prom.api("targets")["data"]["activeTargets"]
        return len(active) == 2 and all(t["health"] == "up" for t in active)

    eventually(targets_up, 30, "both workers scraped")
    eventually(lambda: all(get(w, "/readyz").status == 200 for w in workers), 60, "ready")

    # When they process orders for a while, one of them a bad message (a dead letter)
    result = asyncio.run(
        demo.run(
            s.settings,
            600,
            rate=60,
            quiet=True,
            inject=lambda _: {5: [(b"bad-1", b'{"eventType": "OrderPlaced", "orderId": ')]},
        )
    )
    assert result.ok, demo.summary(result)
    assert result.report.dead_letters == 1
    time.sleep(3)  # the last scrapes and lag refreshes
    at = time.time()

    # Then every dashboard expression and every measured part of every alert has data
    exprs = dashboard_exprs() + [p for e in alert_exprs() for p in measured_parts(e)]
    assert len(exprs) > 30
    empty, failed = [], []
    for expr in exprs:
        answer = prom.query(expr, at)
        if answer["status"] != "success":
            failed.append(f"{expr}: {answer.get('error')}")
            continue
        values = [float(r["value"][1]) for r in answer["data"]["result"]]
        if not any(math.isfinite(v) for v in values):
            empty.append(expr)
    assert failed == [], failed
    assert empty == [], empty
    # ... the workers time their garbage collector (set up when a worker starts)
    collections = prom.query("sum(orderstream_gc_pause_seconds_count)", at)["data"]["result"]
    assert collections and float(collections[0]["value"][1]) > 0, collections
    # ... every alert rule evaluates, and the only one firing is the dead letter's
    for expr in alert_exprs():
        assert prom.query(expr, at)["status"] == "success", expr
    groups = prom.api("rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == len(alert_exprs())
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

    def firing() -> set[str]:
        alerts = prom.api("alerts")["data"]["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    eventually(firing, 30, "the dead-letter alert")
    assert firing() == {"OrderstreamDeadLetters"}
