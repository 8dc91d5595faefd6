"""Unit tests of devtools/broker.py that need neither Kafka nor a JVM."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import broker as broker_mod
from devtools.broker import LocalBroker, find_java, parse_java_version, port_in_use
from devtools.local_cluster import LocalCluster, PartitionState
from orderstream.errors import BrokerError, ConfigError
from orderstream.settings import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "local_broker_dir": tmp_path / "kafka",
        "local_broker_host": "127.0.0.1",
        "local_broker_port": free_port(),
        "local_controller_port": free_port(),
        "kafka_version": "4.1.1",
        "partitions": 4,
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


def write_script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock
    finally:
        sock.close()


# --- server.properties -------------------------------------------------------------------


def test_server_properties_use_configured_ports_and_dirs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, local_broker_port=29092, local_controller_port=29093)
    text = LocalBroker(settings).render_server_properties()
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "4"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def parse_properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_a_single_node_is_its_own_quorum_and_keeps_one_copy(tmp_path: Path) -> None:
    props = parse_properties(LocalBroker(make_settings(tmp_path)).render_server_properties())
    assert props["node.id"] == "1"
    assert props["default.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"


# --- a cluster of nodes (devtools/local_cluster.py) --------------------------------------------


def cluster_of_three(tmp_path: Path) -> LocalCluster:
    ports = [(29092, 29093), (29094, 29095), (29096, 29097)]
    return LocalCluster(make_settings(tmp_path, local_broker_heap="512m"), 3, ports)


def test_cluster_nodes_share_one_quorum_with_own_ports_and_dirs(tmp_path: Path) -> None:
    cluster = cluster_of_three(tmp_path)
    props = [parse_properties(n.render_server_properties()) for n in cluster.nodes]
    voters = "1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert [p["listeners"] for p in props] == [
        f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}"
        for port in (29092, 29094, 29096)
    ]
    assert [p["advertised.listeners"] for p in props] == [
        f"PLAINTEXT://127.0.0.1:{port}" for port in (29092, 29094, 29096)
    ]
    assert [p["log.dirs"] for p in props] == [
        str(tmp_path / "kafka" / f"node-{n}" / "data") for n in (1, 2, 3)
    ]
    assert all(p["process.roles"] == "broker,controller" for p in props)
    assert all(p["inter.broker.listener.name"] == "PLAINTEXT" for p in props)


def test_cluster_internal_topics_survive_one_node_loss(tmp_path: Path) -> None:
    for node in cluster_of_three(tmp_path).nodes:
        props = parse_properties(node.render_server_properties())
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["transaction.state.log.replication.factor"] == "3"
        assert props["default.replication.factor"] == "3"
        # acks=all needs 2 copies: writes go on with one node down, stop with two down
        assert props["min.insync.replicas"] == "2"
        assert props["transaction.state.log.min.isr"] == "2"


def test_cluster_nodes_share_cluster_id_and_jars(tmp_path: Path) -> None:
    cluster = cluster_of_three(tmp_path)
    ids = {node.cluster_id() for node in cluster.nodes}
    assert len(ids) == 1
    assert (tmp_path / "kafka" / "cluster.id").read_text().strip() in ids
    assert {node.libs_dir for node in cluster.nodes} == {tmp_path / "kafka" / "libs-4.1.1"}
    assert len({node.pidfile for node in cluster.nodes}) == 3
    assert cluster_of_three(tmp_path).nodes[2].cluster_id() in ids  # kept across instances


def test_cluster_addresses_for_clients_and_workers(tmp_path: Path) -> None:
    cluster = cluster_of_three(tmp_path)
    assert cluster.bootstrap == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    assert cluster.broker_url == (
        "kafka://127.0.0.1:29092;kafka://127.0.0.1:29094;kafka://127.0.0.1:29096"
    )
    # the worker's settings turn either Faust URL form back into the client's list
    assert Settings(broker=cluster.broker_url).bootstrap_servers == cluster.bootstrap
    assert Settings(broker=f"kafka://{cluster.bootstrap}").bootstrap_servers == cluster.bootstrap
    assert cluster.node(2).port == 29094
    with pytest.raises(ConfigError, match="no node 4"):
        cluster.node(4)


def test_cluster_default_ports_follow_the_settings(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, local_broker_port=31092, local_controller_port=31093)
    cluster = LocalCluster(settings, size=2)
    assert [(n.port, n.controller_port) for n in cluster.nodes] == [(31092, 31093), (31094, 31095)]
    # two nodes: a majority is both of them
    assert "min.insync.replicas=2" in cluster.nodes[0].render_server_properties()


@pytest.mark.parametrize(
    ("size", "ports", "isr", "message"),
    [
        (0, None, None, "at least one node"),
        (2, [(29092, 29093)], None, "1 port pairs for 2 nodes"),
        (2, [(29092, 29093), (29093, 29094)], None, "cluster ports repeat"),
        (3, None, 4, "between 1 and 3"),
    ],
)
def test_cluster_rejects_impossible_layouts(
    tmp_path: Path,
    size: int,
    ports: list[tuple[int, int]] | None,
    isr: int | None,
    message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalCluster(make_settings(tmp_path), size, ports, min_insync_replicas=isr)


def test_cluster_stop_and_kill_when_nothing_runs(tmp_path: Path) -> None:
    cluster = cluster_of_three(tmp_path)
    assert cluster.stop() == [False, False, False]
    assert cluster.kill(2) is False
    cluster.wipe()


@pytest.mark.parametrize(
    ("state", "in_sync"),
    [
        (PartitionState(1, (1, 2, 3), (3, 1, 2)), True),
        (PartitionState(1, (1, 2, 3), (1, 2)), False),
        (PartitionState(-1, (1, 2, 3), (1, 2, 3)), False),
    ],
)
def test_partition_in_sync_needs_a_leader_and_every_replica(
    state: PartitionState, in_sync: bool
) -> None:
    assert state.in_sync is in_sync


def test_write_server_properties_creates_the_broker_dir(tmp_path: Path) -> None:
    broker = LocalBroker(make_settings(tmp_path))
    path = broker.write_server_properties()
    assert path == tmp_path / "kafka" / "server.properties"
    assert f"PLAINTEXT://127.0.0.1:{broker.port}" in path.read_text()


def test_relative_broker_dir_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = LocalBroker(make_settings(tmp_path, local_broker_dir=Path("var/kafka")))
    assert broker.base_dir == tmp_path / "var" / "kafka"
    assert broker.data_dir == tmp_path / "var" / "kafka" / "data"
    assert broker.libs_dir == tmp_path / "var" / "kafka" / "libs-4.1.1"
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"


def test_cluster_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    broker = LocalBroker(make_settings(tmp_path))
    first = broker.cluster_id()
    assert len(first) == 22
    assert not first.startswith("-")
    assert LocalBroker(make_settings(tmp_path)).cluster_id() == first


def test_pom_and_log4j_config_ship_with_the_repo() -> None:
    pom = broker_mod.POM_FILE.read_text()
    assert "<kafka.version>4.1.1</kafka.version>" in pom
    assert "<artifactId>kafka-tools</artifactId>" not in pom
    assert "<artifactId>slf4j-api</artifactId>" in pom
    assert broker_mod.LOG4J2_CONFIG.is_file()


# --- java --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_292"\nJava(TM) SE Runtime Environment', 8),
        ("1.8.0_292", 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("21", 21),
        ('openjdk version "22-ea" 2024-03-19', 22),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ("not a java", None),
    ],
)
def test_parse_java_version(output: str, expected: int | None) -> None:
    assert parse_java_version(output) == expected


def test_missing_java_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrokerError, match=r"Java 17\+ not found: install a JDK 17"):
        find_java()


def test_old_java_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    write_script(bin_dir, "java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BrokerError, match="or set JAVA_HOME"):
        LocalBroker(make_settings(tmp_path)).java()


def test_java_home_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "jdk21"
    java = write_script(home / "bin", "java", "echo 'openjdk version \"21.0.1\"' >&2\n")
    write_script(tmp_path / "bin", "java", "echo 'openjdk version \"17.0.1\"' >&2\n")
    monkeypatch.setenv("JAVA_HOME", str(home))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_java() == str(java)


def test_too_old_java_home_falls_back_to_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "jdk8"
    write_script(home / "bin", "java", "echo 'java version \"1.8.0_292\"' >&2\n")
    on_path = write_script(tmp_path / "bin", "java", "echo 'openjdk version \"17.0.1\"' >&2\n")
    monkeypatch.setenv("JAVA_HOME", str(home))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_java() == str(on_path)


# --- maven -------------------------------------------------------------------------------


def test_missing_maven_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devtools.broker.shutil.which", lambda name, *a, **k: None)
    with pytest.raises(BrokerError, match=r"Maven not found: install Maven 3\.8\+"):
        LocalBroker(make_settings(tmp_path)).ensure_jars()


def test_failing_maven_shows_its_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    write_script(bin_dir, "mvn", "echo 'Could not resolve kafka_2.13:9.9.9'\nexit 1\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    broker = LocalBroker(make_settings(tmp_path, kafka_version="9.9.9"))
    with pytest.raises(
        BrokerError, match=r"(?s)Maven failed.*Could not resolve kafka_2\.13:9\.9\.9"
    ):
        broker.ensure_jars()
    assert not (broker.libs_dir / ".complete").exists()


def test_jars_are_fetched_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    # Fake mvn: finds -DoutputDirectory=... and drops the broker jar there.
    body = (
        f'echo run >> "{calls}"\n'
        'for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#*=}";; esac; done\n'
        ': > "$out/kafka_2.13-4.1.1.jar"\n'
    )
    write_script(tmp_path / "bin", "mvn", body)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    broker = LocalBroker(make_settings(tmp_path))
    assert broker.ensure_jars() == broker.libs_dir
    assert broker.ensure_jars() == broker.libs_dir
    assert calls.read_text().count("run") == 1
    assert (broker.libs_dir / ".complete").is_file()


def test_half_finished_download_is_redone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broker = LocalBroker(make_settings(tmp_path))
    broker.libs_dir.mkdir(parents=True)
    (broker.libs_dir / "kafka_2.13-4.1.1.jar").touch()  # jar present but no marker
    monkeypatch.setattr("devtools.broker.shutil.which", lambda name, *a, **k: None)
    with pytest.raises(BrokerError, match="Maven not found"):
        broker.ensure_jars()


# --- ports and process state -------------------------------------------------------------


def test_port_in_use_detects_a_listener(listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    assert port_in_use("127.0.0.1", port)
    listening_socket.close()
    assert not port_in_use("127.0.0.1", port)


def test_taken_broker_port_is_reported(tmp_path: Path, listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    broker = LocalBroker(make_settings(tmp_path, local_broker_port=port))
    with pytest.raises(BrokerError, match=rf"port {port} is in use by another process") as info:
        broker.start()
    assert "ORDERSTREAM_LOCAL_BROKER_PORT" in str(info.value)


def test_taken_controller_port_is_reported(tmp_path: Path, listening_socket: socket.socket) -> None:
    port = listening_socket.getsockname()[1]
    broker = LocalBroker(make_settings(tmp_path, local_controller_port=port))
    with pytest.raises(BrokerError, match=rf"port {port} is in use") as info:
        broker.start()
    assert "ORDERSTREAM_LOCAL_CONTROLLER_PORT" in str(info.value)


def test_status_stop_kill_when_nothing_runs(tmp_path: Path) -> None:
    broker = LocalBroker(make_settings(tmp_path))
    status = broker.status()
    assert status.running is False
    assert status.pid is None
    assert status.bootstrap == f"127.0.0.1:{broker.port}"
    assert status.data_dir == tmp_path / "kafka" / "data"
    assert status.version == "4.1.1"
    assert broker.stop() is False
    assert broker.kill() is False
    broker.wipe()


def test_stale_pidfile_of_another_process_is_ignored(tmp_path: Path) -> None:
    broker = LocalBroker(make_settings(tmp_path))
    broker.base_dir.mkdir(parents=True)
    broker.pidfile.write_text(f"{os.getpid()}\n")  # alive, but not our kafka.Kafka
    assert broker.pid() is None
    assert broker.stop() is False  # must not signal the test process
    assert not broker.pidfile.exists()


def test_wipe_deletes_data_but_keeps_cluster_id(tmp_path: Path) -> None:
    broker = LocalBroker(make_settings(tmp_path))
    cluster_id = broker.cluster_id()
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("x")
    broker.wipe()
    assert not broker.data_dir.exists()
    assert broker.cluster_id() == cluster_id


def test_early_exit_reports_the_broker_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fake JDK: reports 17, "formats" fine, and the broker itself dies at once.
    body = (
        'case "$*" in\n'
        "  *-version*) echo 'openjdk version \"17.0.15\"' >&2 ;;\n"
        "  *StorageTool*) exit 0 ;;\n"
        "  *) echo 'ERROR fatal: boom in kafka.Kafka' >&2; exit 1 ;;\n"
        "esac\n"
    )
    write_script(tmp_path / "jdk" / "bin", "java", body)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    broker = LocalBroker(make_settings(tmp_path))
    broker.libs_dir.mkdir(parents=True)
    (broker.libs_dir / "kafka_2.13-4.1.1.jar").touch()
    (broker.libs_dir / ".complete").touch()
    with pytest.raises(BrokerError, match=r"(?s)exited during startup.*boom"):
        broker.start()
    assert not broker.pidfile.exists()
    assert broker.status().running is False


def test_own_child_counts_as_running_while_it_still_execs(tmp_path: Path) -> None:
    # Right after Popen returns, /proc/<pid>/cmdline can still be empty (execve not finished);
    # a live child we spawned ourselves is ours whatever /proc says.
    broker = LocalBroker(make_settings(tmp_path))
    child = subprocess.Popen(["sleep", "30"])  # not kafka.Kafka, so /proc alone would say no
    broker_mod._CHILDREN[child.pid] = child
    try:
        assert broker._is_our_broker(child.pid) is True
        child.kill()
        child.wait()
        assert broker._is_our_broker(child.pid) is False
        assert child.pid not in broker_mod._CHILDREN
    finally:
        broker_mod._CHILDREN.pop(child.pid, None)
        child.kill()
        child.wait()
