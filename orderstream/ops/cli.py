"""The `orderstream` command: topics, worker, dead letters and replay; and, from a checkout of
the repository, the development commands (broker, demo, run: devtools/, imported when run)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from orderstream.errors import OrderstreamError
from orderstream.settings import Settings, get_settings


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def need_devtools(command: str) -> None:
    """The development commands import devtools/, which is in the checkout but not in the
    package: importable from the checkout's root (python -m, PYTHONPATH), or found next to the
    package of an editable install (the `orderstream` script of `make install`)."""
    if importlib.util.find_spec("devtools") is not None:
        return
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "devtools" / "__init__.py").is_file():
        sys.path.append(str(checkout))
        return
    raise OrderstreamError(
        f"`orderstream {command}` is a development command: run it from a checkout of the "
        "repository (devtools/ is not installed with the package, nor in the image)"
    )


@contextmanager
def stack(settings: Settings, *, worker: bool = True) -> Iterator[None]:
    """Broker, topics and one worker, started if not already up; what it started it stops
    (the caller checked `need_devtools`)."""
    from devtools.broker import LocalBroker
    from devtools.workers import WorkerProcess
    from orderstream.kafka.admin import ensure_topics

    broker = LocalBroker(settings)
    # Use any broker already listening at the configured address (compose, a cluster);
    # start the project's own local broker only when nothing is there.
    started_broker = not broker.status().running and not _reachable(settings.bootstrap_servers)
    if started_broker:
        print("starting the local Kafka broker ...", flush=True)
        broker.start()
    proc: WorkerProcess | None = None
    try:
        created = asyncio.run(ensure_topics(settings))
        if created:
            print(f"created topics: {', '.join(created)}", flush=True)
        if worker:
            if _answers(settings.web_port):
                raise OrderstreamError(
                    f"a worker already answers on port {settings.web_port}: stop it, pass "
                    "--no-worker to use it, or set ORDERSTREAM_WEB_PORT"
                )
            print(
                f"starting a worker (web on :{settings.web_port}, log var/worker.log) ...",
                flush=True,
            )
            proc = WorkerProcess(
                "worker", Path(settings.datadir), settings.web_port, log_path=Path("var/worker.log")
            )
            proc.start()
            proc.wait_ready()
        yield
    finally:
        if proc is not None:
            print("stopping the worker ...", flush=True)
            proc.stop()
        if started_broker:
            print("stopping the broker ...", flush=True)
            broker.stop()


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    need_devtools("broker")
    from devtools.broker import LocalBroker

    broker = LocalBroker(settings)
    if args.action == "start":
        broker.start()
    elif args.action == "stop":
        broker.stop()
    elif args.action == "kill":
        broker.kill()
    elif args.action == "wipe":
        broker.wipe()
    status = broker.status()
    print(
        f"broker {'running' if status.running else 'stopped'}: pid={status.pid} "
        f"bootstrap={status.bootstrap} data={status.data_dir} kafka={status.version}"
    )
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from orderstream.contracts.topics import registry
    from orderstream.kafka.admin import ensure_topics

    created = asyncio.run(ensure_topics(settings))
    for spec in registry(settings).values():
        mark = "created" if spec.name in created else "exists "
        configs = " ".join(f"{k}={v}" for k, v in sorted(spec.configs.items()))
        print(f"{mark} {spec.name:<34} p={spec.partitions} rf={spec.replication_factor} {configs}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "faust",
            "-A",
            "orderstream.worker.app",
            "worker",
            "-l",
            settings.log_level,
        ],
    )


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    need_devtools("demo")
    from devtools import demo

    with stack(settings, worker=not args.no_worker):
        result = asyncio.run(
            demo.run(settings, args.orders, rate=args.rate, timeout_s=args.timeout)
        )
    print(demo.summary(result))
    return 0 if result.ok else 1


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Live: orders keep flowing in rounds, progress every second, until Ctrl-C."""
    need_devtools("run")
    from devtools import demo

    rounds = 0
    totals: Counter[str] = Counter()  # statuses seen, updated live (also mid-round)
    try:
        with stack(settings):
            while True:
                rounds += 1
                result = asyncio.run(
                    demo.run(settings, args.round, rate=args.rate, seed=rounds, totals=totals)
                )
                state = "invariants OK" if result.ok else "INVARIANTS BROKEN"
                print(
                    f"-- round {rounds}: {result.settled} orders settled "
                    f"({sum(totals.values())} in total), {state}",
                    flush=True,
                )
                if not result.ok:
                    print(demo.summary(result))
                    return 1
    except KeyboardInterrupt:
        mix = ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
        print(f"\nstopped in round {rounds}: {sum(totals.values())} orders settled ({mix})")
    return 0


def cmd_dlq(args: argparse.Namespace, settings: Settings) -> int:
    from orderstream.ops import dead_letters

    found = asyncio.run(dead_letters.letters(settings))
    if args.action == "list":
        for letter in found:
            print(letter.line())
        print(f"{len(found)} dead letters")
        return 0
    chosen = dead_letters.choose(found, refs=args.ref, kind=args.kind, everything=args.all)
    if not chosen:
        print("nothing chosen: pass --ref PARTITION:OFFSET, --kind KIND or --all")
        return 1
    sent = asyncio.run(dead_letters.replay(settings, chosen))
    print(f"replayed {sent} dead letters to their source topics")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the read models from order-status; with --compare, diff them with the live ones."""
    from orderstream.ops import replay

    def show(progress: replay.Progress) -> None:
        print(progress.line(), flush=True)

    if not args.compare:
        models, _ = asyncio.run(replay.rebuild(settings, until=args.until, report=show))
        print(f"rebuilt: {replay.summary(models)}")
        return 0
    rebuilt, live, differences = asyncio.run(
        replay.compare(settings, until=args.until, wait_s=args.wait, report=show)
    )
    print(f"rebuilt: {replay.summary(rebuilt)}\nlive:    {replay.summary(live)}")
    for line in differences[: args.show]:
        print(f"  {line}")
    print(f"diff: {len(differences)}")
    return 1 if differences else 0


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("broker", help="the local Apache Kafka broker (KRaft)")
    p.add_argument("action", choices=["start", "stop", "status", "kill", "wipe"])
    p.set_defaults(func=cmd_broker)
    sub.add_parser("topics", help="create the registry's topics").set_defaults(func=cmd_topics)
    sub.add_parser("worker", help="run a Faust worker").set_defaults(func=cmd_worker)
    p = sub.add_parser("demo", help="feed N simulated orders, check invariants, print a summary")
    p.add_argument("--orders", type=int, default=5000)
    p.add_argument("--rate", type=float, default=None, help="orders per second (default: all)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--no-worker", action="store_true", help="use workers already running")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("dlq", help="list dead letters, or replay chosen ones")
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("--ref", action="append", default=[], help="PARTITION:OFFSET in the DLQ")
    p.add_argument("--kind", help="every letter of this error kind")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_dlq)
    p = sub.add_parser("replay", help="rebuild the read models from the log; --compare: diff")
    p.add_argument("--compare", action="store_true", help="diff with the live read models")
    p.add_argument("--until", type=_instant, help="only records up to this ISO-8601 time")
    p.add_argument("--wait", type=float, default=0.0, help="retry a diff for S seconds")
    p.add_argument("--show", type=int, default=20, help="differences to print")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("run", help="live demo until Ctrl-C")
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--round", type=int, default=2000, help="orders per round")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, get_settings()))
    except OrderstreamError as exc:
        print(f"orderstream: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
