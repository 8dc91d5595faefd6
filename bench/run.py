"""`python -m bench.run`: the benchmark session. Starts a dedicated broker (unless --bootstrap),
runs the scenarios with warm-up and repeats, prints the table and writes the JSON file.

Exit status 1 when a run broke the invariants or reached wrong outcomes; missing a performance
target only shows as MISS in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import latency, peer_orderstream, peer_quix, profiling, raw_loop, recovery, throughput
from bench.config import REPO, RUN_ROOT, SCENARIOS, BenchConfig
from bench.errors import BenchError
from bench.figures import (
    FAUST,
    FAUST_RATIO,
    FAUST_VS_RAW,
    LATENCY_HALF,
    PEER_OURS,
    PEER_QUIX,
    PEER_RATIO,
    RAW,
    RAW_RATIO,
    THROUGHPUT,
    TWO_WORKERS,
    TWO_WORKERS_RATIO,
    latency_at_rate,
    recovery_measures,
)
from bench.peer import PeerRun
from bench.report import (
    Figure,
    Measure,
    Session,
    baseline_medians,
    figures,
    ratio,
    ratio_of_medians,
    table,
    write_json,
)
from bench.stack import bench_broker, settings_with

PROFILE_DIR = REPO / "var" / "bench-profiles"
DISTRIBUTIONS = ("faust-streaming", "aiokafka", "rocksdict", "pydantic", "orjson", "uvloop")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    parser.add_argument("--orders", type=int, help="orders per throughput run")
    parser.add_argument("--repeat", type=int, help="measured runs per scenario")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    parser.add_argument("--baseline", type=Path, help="JSON file of an earlier session")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--quix-python", type=Path, help="interpreter with quixstreams")
    parser.add_argument(
        "--latency-rate",
        type=float,
        help="offered orders/s of the first latency run (default 100; the second offers half "
        "the one-worker throughput measured in the same session)",
    )
    parser.add_argument("--latency-seconds", type=float, help="measured seconds per run")
    parser.add_argument("--recovery-keys", type=int, help="keys in the recovered table")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the workers (e.g. ORDERSTREAM_LOG_LEVEL=warning)",
    )
    parser.add_argument(
        "--no-two-workers",
        action="store_true",
        help="skip the two-worker throughput runs (and the 2 workers vs 1 ratio)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"one extra, unmeasured throughput and recovery run under py-spy ({PROFILE_DIR})",
    )
    return parser


def config_from(args: argparse.Namespace) -> BenchConfig:
    base = BenchConfig.quick_mode() if args.quick else BenchConfig()
    only = tuple(s.strip() for s in args.only.split(",")) if args.only else None
    unknown = set(only or ()) - set(SCENARIOS)
    if unknown:
        raise BenchError(f"unknown scenarios {sorted(unknown)}: pick from {', '.join(SCENARIOS)}")
    env = dict(pair.split("=", 1) for pair in args.worker_env)
    return base.with_overrides(
        orders=args.orders,
        repeat=args.repeat,
        only=only,
        out=args.out,
        baseline=args.baseline,
        bootstrap=args.bootstrap,
        # absolute, not resolved: the peer runs in another directory, and resolving the
        # venv's symlink would leave the venv
        quix_python=Path(os.path.abspath(args.quix_python)) if args.quix_python else None,
        latency_rate=args.latency_rate,
        latency_s=args.latency_seconds,
        recovery_keys=args.recovery_keys,
        profile=args.profile or None,
        two_workers=False if args.no_two_workers else None,
        worker_env=env or None,
        warmup_orders=min(base.warmup_orders, args.orders) if args.orders else None,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        config = config_from(build_parser().parse_args(argv))
        quix = peer_quix.quix_version(config.quix_python) if config.runs("peer") else None
        baseline = _baseline(config.baseline)
        session = Session(meta=_meta(config, quix))
        shutil.rmtree(RUN_ROOT, ignore_errors=True)  # the last session's logs and data dirs
        started = time.monotonic()
        with bench_broker(config.bootstrap) as (bootstrap, kafka_version):
            session.meta["versions"]["kafka"] = kafka_version
            sections: list[tuple[str, Callable[[str, BenchConfig, Session], None]]] = [
                ("throughput", _throughput_and_raw),
                ("peer", _peers),
                ("latency", _latency),
                ("recovery", _recovery),
            ]
            for name, section in sections:
                wanted = config.runs(name) or (name == "throughput" and config.runs("raw"))
                if wanted:
                    _isolated(name, section, bootstrap, config, session)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    session.meta["duration_s"] = round(time.monotonic() - started, 1)
    session.meta["load_after"] = os.getloadavg()
    write_json(session, config.out)
    print()
    print(table(session.figures, baseline))
    print(f"\nwritten to {config.out}")
    for name, detail in session.details.items():
        if isinstance(detail, dict) and "skipped" in detail:
            print(f"SKIPPED {name}: {detail['skipped']}")
    for scenario, problems in session.problems.items():
        print(f"CORRECTNESS {scenario}: " + "; ".join(problems[:5]))
    return 1 if session.problems else 0


def _baseline(path: Path | None) -> dict[str, float] | None:
    if path is None:
        return None
    try:
        return baseline_medians(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"cannot read the baseline {path}: {exc}") from exc


def _meta(config: BenchConfig, quix: str | None) -> dict[str, Any]:
    versions = {d: version(d) for d in DISTRIBUTIONS}
    versions["python"] = platform.python_version()
    if quix:
        versions["quixstreams"] = quix
    worker = settings_with(config.worker_env)
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "load_before": os.getloadavg(),
        },
        "versions": versions,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "worker_settings": worker.model_dump(mode="json", exclude={"admin_token"}),
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")


def _isolated(
    name: str,
    section: Callable[[str, BenchConfig, Session], None],
    bootstrap: str,
    config: BenchConfig,
    session: Session,
) -> None:
    """Run one scenario; if it cannot finish, say so in the results and go on with the next."""
    try:
        section(bootstrap, config, session)
    except BenchError as exc:
        _say(f"   {name} did not finish: {exc}")
        session.problems.setdefault(name, []).append(f"did not finish: {exc}")


def _say(text: str) -> None:
    print(text, flush=True)


def _repeat(config: BenchConfig, label: str, run: Callable[[], Any]) -> list[Any]:
    results = []
    for r in range(1, config.repeat + 1):
        _say(f"  {label}: run {r}/{config.repeat}")
        results.append(run())
    return results


def _throughput_and_raw(bootstrap: str, config: BenchConfig, session: Session) -> None:
    _say(f"== throughput: warm-up with {config.warmup_orders:,} orders")
    warm = throughput.measure(bootstrap, config, config.warmup_orders)
    shape = raw_loop.ChainShape.like(warm)
    with_raw = config.runs("raw")
    if with_raw:
        _say(f"== raw client: warm-up, {shape.hops} hops, {shape.side_per_hop:.2f} side/hop")
        raw_loop.measure(bootstrap, config, config.warmup_orders, shape)
        _say("== bare Faust loop: warm-up, the same chain")
        raw_loop.measure(bootstrap, config, config.warmup_orders, shape, "faust")
    ours: list[throughput.ThroughputRun] = []
    raws: list[raw_loop.RawRun] = []
    bare: list[raw_loop.RawRun] = []
    for r in range(1, config.repeat + 1):  # interleaved, so each pair saw the same machine
        _say(f"== throughput run {r}/{config.repeat}: {config.orders:,} orders")
        ours.append(throughput.measure(bootstrap, config, config.orders))
        _say(f"   {ours[-1].orders_per_s:,.0f} orders/s, {ours[-1].peak_rss_mb:.0f} MB")
        if with_raw:
            raws.append(raw_loop.measure(bootstrap, config, config.orders, shape))
            _say(f"   raw client {raws[-1].orders_per_s:,.0f} orders/s")
            bare.append(raw_loop.measure(bootstrap, config, config.orders, shape, "faust"))
            _say(f"   bare Faust loop {bare[-1].orders_per_s:,.0f} orders/s")
    session.add(*figures(ours, THROUGHPUT))
    if with_raw:
        session.add(*figures(raws, RAW), ratio(RAW_RATIO, ours, raws))
        session.add(*figures(bare, FAUST), ratio(FAUST_RATIO, ours, bare))
        session.add(ratio(FAUST_VS_RAW, bare, raws))
    session.details["throughput"] = {
        "runs": [asdict(o) for o in ours],
        "records_per_order": {
            "read": statistics.median(o.consumed_per_order for o in ours),
            "written": statistics.median(o.produced_per_order for o in ours),
            "per_topic": {t: c / ours[-1].orders for t, c in ours[-1].per_topic.items()},
        },
    }
    if with_raw:
        session.details["raw"] = {"shape": asdict(shape), "runs": [asdict(r) for r in raws]}
        session.details["faust"] = {"shape": asdict(shape), "runs": [asdict(r) for r in bare]}
    _problems(session, "throughput", [p for o in [warm, *ours] for p in o.problems])
    if two_worker_runs(config):
        # Its own section: if it cannot finish, the one-worker figures above still stand.
        _isolated(
            "throughput_2w",
            lambda b, c, s: _two_workers(b, c, s, ours),
            bootstrap,
            config,
            session,
        )
    if config.profile:
        _profiled(
            "throughput", lambda out: throughput.measure(bootstrap, config, config.orders, out)
        )


def _two_workers(
    bootstrap: str, config: BenchConfig, session: Session, one: list[throughput.ThroughputRun]
) -> None:
    """Two workers on this machine, sharing the partitions; after the one-worker runs, not
    interleaved with them, so the ratio is one of medians. --quick: one run."""
    repeat = two_worker_runs(config)
    two: list[throughput.ThroughputRun] = []
    for r in range(1, repeat + 1):
        _say(f"== throughput, 2 workers, run {r}/{repeat}: {config.orders:,} orders")
        two.append(throughput.measure(bootstrap, config, config.orders, workers=2))
        cpu = ", ".join(f"{c:.1f}" for c in two[-1].worker_cpu_s)
        _say(f"   {two[-1].orders_per_s:,.0f} orders/s, worker CPU {cpu} s")
    session.add(*figures(two, [TWO_WORKERS]), ratio_of_medians(TWO_WORKERS_RATIO, two, one))
    session.details["throughput_2w"] = {"workers": 2, "runs": [asdict(o) for o in two]}
    _problems(session, "throughput_2w", [p for o in two for p in o.problems])


def two_worker_runs(config: BenchConfig) -> int:
    """How many two-worker runs: as many as the one-worker runs, one in --quick mode, none with
    --no-two-workers."""
    if not config.two_workers:
        return 0
    return 1 if config.quick else config.repeat


def _peers(bootstrap: str, config: BenchConfig, session: Session) -> None:
    _say(f"== peer: warm-up with {config.warmup_orders:,} commands each")
    warm = [
        peer_quix.measure(bootstrap, config, config.warmup_orders),
        peer_orderstream.measure(bootstrap, config, config.warmup_orders),
    ]
    quix: list[PeerRun] = []
    ours: list[PeerRun] = []
    for r in range(1, config.repeat + 1):
        _say(f"== peer run {r}/{config.repeat}: {config.orders:,} reserve commands")
        quix.append(peer_quix.measure(bootstrap, config, config.orders))
        ours.append(peer_orderstream.measure(bootstrap, config, config.orders))
        _say(f"   orderstream {ours[-1].per_s:,.0f}/s, Quix Streams {quix[-1].per_s:,.0f}/s")
    session.add(*figures(ours, PEER_OURS), *figures(quix, PEER_QUIX))
    session.add(ratio(PEER_RATIO, ours, quix))
    session.details["peer"] = {"runs": [asdict(p) for p in [*ours, *quix]]}
    _problems(
        session,
        "peer",
        [f"{p.implementation}: {m}" for p in [*warm, *ours, *quix] for m in p.problems],
    )


def _latency(bootstrap: str, config: BenchConfig, session: Session) -> None:
    """At the configured offered rate; then at half the one-worker capacity this session
    measured (the throughput scenario), if it did."""
    at_rate = latency_at_rate(config.latency_rate)
    _isolated(
        "latency",
        lambda b, c, s: _latency_at(b, c, s, "latency", at_rate),
        bootstrap,
        config,
        session,
    )
    half = half_capacity(session.figures)
    if half is None:
        why = (
            "no one-worker throughput in this session to take half of "
            "(the throughput scenario did not run or did not finish)"
        )
        _say(f"== latency at half capacity: skipped, {why}")
        session.details["latency_half"] = {"skipped": why}
        return
    at_half = config.with_overrides(latency_rate=half)
    _isolated(
        "latency_half",
        lambda b, c, s: _latency_at(b, c, s, "latency_half", LATENCY_HALF),
        bootstrap,
        at_half,
        session,
    )


ONE_WORKER_RATE = THROUGHPUT[0].key  # "throughput.orders_per_s"


def half_capacity(measured: list[Figure]) -> float | None:
    """Half the median one-worker throughput among a session's figures; None if not measured."""
    found = [f for f in measured if f.key == ONE_WORKER_RATE]
    return found[0].median / 2 if found and found[0].runs else None


def _latency_at(
    bootstrap: str, config: BenchConfig, session: Session, name: str, measures: Sequence[Measure]
) -> None:
    _say(
        f"== {name}: {config.latency_rate:.0f} orders/s, {config.latency_warmup_s:.0f} s "
        f"warm-up + {config.latency_s:.0f} s measured per run"
    )
    runs = _repeat(config, name, lambda: latency.measure(bootstrap, config))
    for run in runs:
        _say(f"   {latency.hops_line(run)}")
    session.add(*figures(runs, measures))
    session.details[name] = {
        "offered_per_s": config.latency_rate,
        "runs": [asdict(r) for r in runs],
    }
    _problems(session, name, [p for r in runs for p in r.problems])


def _recovery(bootstrap: str, config: BenchConfig, session: Session) -> None:
    _say(f"== recovery: filling the orders changelog with {config.recovery_keys:,} keys")
    bench = recovery.RecoveryBench(bootstrap, config)
    _say("   warm-up start")
    warm = bench.measure()
    runs = _repeat(config, "recovery", bench.measure)
    session.add(*figures(runs, recovery_measures(bench.records, config.recovery_probe_orders)))
    session.details["recovery"] = {"runs": [asdict(r) for r in runs]}
    _problems(session, "recovery", [p for r in [warm, *runs] for p in r.problems])
    if config.profile:
        _profiled("recovery", bench.measure)


def _profiled(name: str, run: Callable[[Path], Any]) -> None:
    out = PROFILE_DIR / f"{name}.txt"
    _say(f"== {name}: one more run under py-spy -> {out}")
    run(out)
    summary = PROFILE_DIR / f"{name}-top.txt"
    summary.write_text(profiling.summarize(out))
    _say(f"   hottest functions in {summary}")


def _problems(session: Session, scenario: str, problems: list[str]) -> None:
    if problems:
        session.problems[scenario] = problems


if __name__ == "__main__":
    raise SystemExit(main())
