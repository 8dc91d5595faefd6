"""A replicated Kafka cluster on one machine, for failover tests and drills: N local KRaft nodes
(each a `LocalBroker`, broker and controller in one JVM) with one cluster id and one quorum."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devtools.broker import BrokerStatus, ClusterRole, LocalBroker, topic_metadata
from orderstream.errors import BrokerError, ConfigError
from orderstream.settings import Settings, get_settings

__all__ = ["DEFAULT_SIZE", "LocalCluster", "PartitionState"]

DEFAULT_SIZE = 3


@dataclass(frozen=True)
class PartitionState:
    """One partition as the cluster's metadata describes it (node ids; leader -1: none)."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]

    @property
    def in_sync(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


class LocalCluster:
    """Start, stop and kill the nodes of a local cluster described by `Settings`.

    Node i (1-based) listens on `ports[i-1]` (client port, controller port), by default the
    settings' two ports plus 2*(i-1), and keeps its data in `<local_broker_dir>/node-<i>`.
    Internal topics get replication factor `size` and `min_insync_replicas` (default: a
    majority), so the cluster accepts acks=all writes while a minority of the nodes is down.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        size: int = DEFAULT_SIZE,
        ports: Sequence[tuple[int, int]] | None = None,
        min_insync_replicas: int | None = None,
    ) -> None:
        self.settings = s = settings or get_settings()
        if size < 1:
            raise ConfigError(f"a cluster needs at least one node, not {size}")
        pairs = list(ports) if ports is not None else _default_ports(s, size)
        if len(pairs) != size:
            raise ConfigError(f"{len(pairs)} port pairs for {size} nodes: give one per node")
        flat = [port for pair in pairs for port in pair]
        if len(set(flat)) != len(flat):
            raise ConfigError(f"cluster ports repeat ({flat}): give each node two ports of its own")
        isr = min_insync_replicas if min_insync_replicas is not None else size // 2 + 1
        if not 1 <= isr <= size:
            raise ConfigError(f"min.insync.replicas {isr} must be between 1 and {size}")
        base = Path(s.local_broker_dir).expanduser()
        self.base_dir = base if base.is_absolute() else Path.cwd() / base
        host = s.local_broker_host
        voters = ",".join(f"{n}@{host}:{cport}" for n, (_, cport) in enumerate(pairs, 1))
        self.nodes = [
            LocalBroker(
                s.model_copy(
                    update={
                        "local_broker_dir": self.base_dir / f"node-{n}",
                        "local_broker_port": port,
                        "local_controller_port": cport,
                    }
                ),
                ClusterRole(n, voters, size, isr, self.base_dir),
            )
            for n, (port, cport) in enumerate(pairs, 1)
        ]

    @property
    def bootstrap(self) -> str:
        """host:port,host:port,... for Kafka clients."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def broker_url(self) -> str:
        """ORDERSTREAM_BROKER for a worker: every node, in Faust's kafka://...;kafka://... form."""
        return ";".join(f"kafka://{node.bootstrap}" for node in self.nodes)

    def node(self, node_id: int) -> LocalBroker:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise ConfigError(f"no node {node_id} in a cluster of {len(self.nodes)}")

    def start(self, wait: bool = True) -> list[BrokerStatus]:
        """Start every node that is not running; with `wait`, return once all serve metadata.

        All are spawned before any is waited for: a controller alone is no quorum."""
        first = self.nodes[0]
        first.ensure_jars()
        first.cluster_id()  # the shared id exists before any node formats its storage
        for node in self.nodes:
            node.start(wait=False)
        if wait:
            try:
                for node in self.nodes:
                    node.wait_ready()
            except BrokerError:
                self.stop(timeout=10)
                raise
        return [node.status() for node in self.nodes]

    def restart(self, node_id: int) -> BrokerStatus:
        """Start one node again (after `kill` or `stop`) and wait until it serves metadata."""
        return self.node(node_id).start()

    def kill(self, node_id: int) -> bool:
        """kill -9 one node; True when it was running."""
        return self.node(node_id).kill()

    def stop(self, timeout: float = 30.0) -> list[bool]:
        """Stop every node at once (stopped one after the other, the last ones would lose
        their quorum and wait out their controlled shutdown); True for each that was running."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            return list(pool.map(lambda node: node.stop(timeout), self.nodes))

    def wipe(self) -> None:
        """Stop every node and delete their data (jars and cluster id stay)."""
        self.stop()
        for node in self.nodes:
            shutil.rmtree(node.data_dir, ignore_errors=True)

    async def partitions(self, topics: Iterable[str]) -> dict[tuple[str, int], PartitionState]:
        """Leader, replicas and in-sync replicas of every partition of `topics`."""
        options = self.nodes[0].client_options()  # the broker's own login, as its probe
        described = await topic_metadata(self.bootstrap, list(topics), 10.0, options)
        states: dict[tuple[str, int], PartitionState] = {}
        for topic in described:
            if topic["error_code"]:
                raise BrokerError(f"describing topic {topic['topic']}: error {topic['error_code']}")
            for p in topic["partitions"]:
                state = PartitionState(p["leader"], tuple(p["replicas"]), tuple(p["isr"]))
                states[(topic["topic"], p["partition"])] = state
        return states

    async def wait_in_sync(self, topics: Iterable[str], timeout_s: float = 60.0) -> None:
        """Until every partition of `topics` has a leader and all its replicas in sync."""
        names = list(topics)
        deadline = time.monotonic() + timeout_s
        lagging: list[str] = ["not described yet"]
        while time.monotonic() < deadline:
            try:
                states = await self.partitions(names)
                lagging = [f"{t}-{p} {s}" for (t, p), s in states.items() if not s.in_sync]
            except Exception as exc:  # a node in failover: ask again
                lagging = [f"{type(exc).__name__}: {exc}"]
            if not lagging:
                return
            await asyncio.sleep(0.5)
        raise BrokerError(
            f"partitions not back in sync within {timeout_s:.0f}s (is every node running? see "
            f"{self.base_dir}/node-*/broker.log): {'; '.join(lagging[:5])}"
        )


def _default_ports(settings: Settings, size: int) -> list[tuple[int, int]]:
    port, cport = settings.local_broker_port, settings.local_controller_port
    return [(port + 2 * i, cport + 2 * i) for i in range(size)]
