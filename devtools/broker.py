"""The project's own Apache Kafka broker (KRaft) for local development and tests: one node on
its own, or one node of a replicated cluster (devtools/local_cluster.py).

Jars come from Maven (broker/pom.xml), the JVM is a local Java 17+; no Docker, no Kafka tarball.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr

from orderstream.errors import BrokerError, ConfigError
from orderstream.kafka.auth import ClientOptions, client_options
from orderstream.settings import Settings, get_settings

__all__ = [
    "BROKER_PROJECT_DIR",
    "MIN_JAVA_VERSION",
    "BrokerStatus",
    "ClusterRole",
    "LocalBroker",
    "find_java",
    "find_maven",
    "java_version",
    "parse_java_version",
    "parse_sasl_users",
    "port_in_use",
    "topic_metadata",
]

BROKER_PROJECT_DIR = Path(__file__).resolve().parent.parent / "broker"
POM_FILE = BROKER_PROJECT_DIR / "pom.xml"
LOG4J2_CONFIG = BROKER_PROJECT_DIR / "log4j2.properties"
MIN_JAVA_VERSION = 17
MAVEN_TIMEOUT_S = 900.0
JAVA_MISSING = (
    "Java 17+ not found: install a JDK 17 (apt-get install openjdk-17-jre-headless) "
    "or set JAVA_HOME"
)
MAVEN_MISSING = "Maven not found: install Maven 3.8+ (apt-get install maven)"
# SASL mode (ORDERSTREAM_LOCAL_BROKER_SASL_USERS): the client listener and its one mechanism.
SASL_LISTENER = "SASL_PLAINTEXT"
SCRAM_MECHANISM = "SCRAM-SHA-512"
# Characters that would break the --add-scram argument or the JAAS line they are written into.
_SCRAM_TOKEN = re.compile(r'[^\s,:"\[\]=\\;]+')

_T = TypeVar("_T")
# Children spawned by this interpreter, kept so they can be reaped (no zombies in long test runs).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BrokerStatus:
    """What `orderstream broker status` shows."""

    running: bool
    pid: int | None
    bootstrap: str
    data_dir: Path
    version: str


@dataclass(frozen=True)
class ClusterRole:
    """A node's place in a multi-node cluster: its id, the controller quorum every node votes
    in, the replication of the internal topics, and the directory the nodes share."""

    node_id: int
    quorum_voters: str  # controller.quorum.voters: "1@host:port,2@host:port,..."
    replication_factor: int
    min_insync_replicas: int
    shared_dir: Path  # the cluster's id and its jars: one cluster id, one download

    @property
    def cluster_id_file(self) -> Path:
        return self.shared_dir / "cluster.id"


# --- helpers (module level so unit tests can reach them without a broker) -------------------


def parse_java_version(output: str) -> int | None:
    """Major version from `java -version` output or a bare version ("1.8.0_292" -> 8)."""
    quoted = re.search(r'version\s+"([^"]+)"', output)
    text = quoted.group(1) if quoted else output.strip()
    match = re.match(r"(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older report themselves as 1.x.
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


def java_version(java: str) -> int | None:
    """Run `java -version` (it prints to stderr) and parse the major version."""
    try:
        proc = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return parse_java_version(proc.stderr + "\n" + proc.stdout)


def find_java(minimum: int = MIN_JAVA_VERSION) -> str:
    """Path of a java >= `minimum`: $JAVA_HOME/bin/java first, then PATH."""
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        version = java_version(candidate)
        if version is not None and version >= minimum:
            return candidate
    raise BrokerError(JAVA_MISSING)


def find_maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(MAVEN_MISSING)
    return mvn


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port (or the address cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like the JVM does, so a TIME_WAIT left by our last broker is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise BrokerError(f"cannot bind {host}:{port}: {exc}") from exc
    return False


def parse_sasl_users(spec: str) -> list[tuple[str, str]]:
    """ "admin:secret,orders:pw" -> [("admin", "secret"), ("orders", "pw")]; "" -> []."""
    users: list[tuple[str, str]] = []
    for n, entry in enumerate(part.strip() for part in spec.split(",") if part.strip()):
        name, sep, password = entry.partition(":")
        if not sep or not _SCRAM_TOKEN.fullmatch(name) or not _SCRAM_TOKEN.fullmatch(password):
            # Never echo the entry: it holds a password.
            raise ConfigError(
                f"ORDERSTREAM_LOCAL_BROKER_SASL_USERS entry {n + 1} is not name:password "
                '(no spaces and none of , : " [ ] = \\ ; in either part)'
            )
        users.append((name, password))
    return users


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _new_cluster_id() -> str:
    # Same format as `kafka-storage random-uuid`: 16 random bytes, URL-safe base64, no padding;
    # computing it here saves a JVM start. Kafka rejects ids starting with "-".
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _run_coro(coro: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run, also from code that already runs inside an event loop (then in a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[_T] = []
    failure: list[BaseException] = []

    def runner() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=runner, name="broker-probe", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


async def _metadata_brokers(
    bootstrap: str, timeout_s: float, options: Mapping[str, Any] | None = None
) -> int:
    """Number of live brokers in a real Metadata response (0 while the broker is fenced)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        retry_backoff_ms=100,
        **(options or {}),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
    finally:
        await admin.close()
    return len(cluster.get("brokers", []))


async def topic_metadata(
    bootstrap: str, topics: list[str], timeout_s: float, options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The Metadata response's topics: per partition its leader, replicas and isr (node ids)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000 / 2)),
        retry_backoff_ms=200,
        **(options or {}),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            described: list[dict[str, Any]] = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return described


# --- the broker ---------------------------------------------------------------------------


class LocalBroker:
    """Fetch, configure, start and stop the local KRaft broker described by `Settings`; with a
    `role`, one node of a cluster (its own ports and data dir come from `settings` too)."""

    def __init__(self, settings: Settings | None = None, role: ClusterRole | None = None) -> None:
        self.settings = settings or get_settings()
        self.role = role
        self.node_id = role.node_id if role is not None else 1
        base = Path(self.settings.local_broker_dir).expanduser()
        # Relative paths are relative to where the command runs, like every other setting.
        self.base_dir = base if base.is_absolute() else Path.cwd() / base
        self.version = self.settings.kafka_version
        self.host = self.settings.local_broker_host
        self.port = self.settings.local_broker_port
        self.controller_port = self.settings.local_controller_port
        self.sasl_users = parse_sasl_users(self.settings.local_broker_sasl_users.get_secret_value())
        self._java: str | None = None

    # -- paths -----------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def libs_dir(self) -> Path:
        shared = self.role.shared_dir if self.role is not None else self.base_dir
        return shared / f"libs-{self.version}"

    @property
    def properties_file(self) -> Path:
        return self.base_dir / "server.properties"

    @property
    def pidfile(self) -> Path:
        return self.base_dir / "broker.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.role.cluster_id_file if self.role is not None else self.base_dir / "cluster.id"

    @property
    def log_file(self) -> Path:
        """Written by log4j2 (broker/log4j2.properties) via -Dkafka.logs.dir."""
        return self.base_dir / "broker.log"

    @property
    def out_file(self) -> Path:
        """JVM stdout/stderr: crashes before log4j2 is up end here."""
        return self.base_dir / "broker.out"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def client_options(self) -> ClientOptions:
        """How the broker's own probe logs in: as the first SASL user, or in plain text."""
        if not self.sasl_users:
            return ClientOptions()
        name, password = self.sasl_users[0]
        login = self.settings.model_copy(
            update={
                "kafka_security_protocol": SASL_LISTENER,
                "kafka_sasl_mechanism": SCRAM_MECHANISM,
                "kafka_username": name,
                "kafka_password": SecretStr(password),
                "kafka_ssl_cafile": None,
                "kafka_ssl_certfile": None,
                "kafka_ssl_keyfile": None,
            }
        )
        return client_options(login)

    def _mask(self, text: str) -> str:
        """`text` with every SASL password replaced, for error messages."""
        for _name, password in self.sasl_users:
            text = text.replace(password, "***")
        return text

    # -- prerequisites ---------------------------------------------------------------------

    def java(self) -> str:
        """The java executable to use (>= 17); BrokerError when there is none."""
        if self._java is None:
            self._java = find_java(MIN_JAVA_VERSION)
        return self._java

    def ensure_jars(self) -> Path:
        """Download the broker jars with Maven unless a complete copy is already there."""
        jar = self.libs_dir / f"kafka_2.13-{self.version}.jar"
        marker = self.libs_dir / ".complete"
        if jar.is_file() and marker.is_file():
            return self.libs_dir
        mvn = find_maven()
        # No marker means an interrupted copy: start from an empty directory.
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        self.libs_dir.mkdir(parents=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM_FILE),
            f"-Dkafka.version={self.version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs_dir}",
            "-DincludeScope=runtime",
        ]
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"Maven did not finish within {MAVEN_TIMEOUT_S:.0f}s fetching Kafka "
                f"{self.version}: check network access to Maven Central"
            ) from exc
        except OSError as exc:
            raise BrokerError(f"{MAVEN_MISSING} ({exc})") from exc
        output = "\n".join((proc.stdout or "").splitlines()[-30:])
        if proc.returncode != 0:
            raise BrokerError(
                f"Maven failed to fetch Kafka {self.version} (exit {proc.returncode}); "
                f"check the version and network access:\n{output}"
            )
        if not jar.is_file():
            raise BrokerError(f"Maven finished but {jar} is missing:\n{output}")
        marker.write_text(f"kafka {self.version}\n")
        return self.libs_dir

    # -- configuration ---------------------------------------------------------------------

    def render_server_properties(self) -> str:
        s, role = self.settings, self.role
        host, port, cport = self.host, self.port, self.controller_port
        # Alone, the internal topics must fit on one node; in a cluster they survive losing one.
        rf = role.replication_factor if role is not None else 1
        isr = role.min_insync_replicas if role is not None else 1
        props: dict[str, object] = {
            # KRaft: every process is a broker and a controller; alone, its own quorum
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": (
                role.quorum_voters if role is not None else f"{self.node_id}@{host}:{cport}"
            ),
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.data_dir,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": 10,
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            # topics are created explicitly by orderstream/contracts/topics.py, never by a typo
            "auto.create.topics.enable": "false",
            "num.partitions": s.partitions,
            "group.initial.rebalance.delay.ms": 0,
            # small dev box: few threads, moderate segments, small cleaner buffer
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "background.threads": 4,
            "log.segment.bytes": 64 * 1024 * 1024,
            "log.retention.hours": 168,
            "log.retention.check.interval.ms": 300_000,
            "log.cleaner.dedupe.buffer.size": 32 * 1024 * 1024,
        }
        if self.sasl_users:
            props.update(self._sasl_properties())
        header = "# Generated by devtools/broker.py on every start; edit Settings, not this file.\n"
        return header + "".join(f"{key}={value}\n" for key, value in props.items())

    def _sasl_properties(self) -> dict[str, object]:
        """Clients and the broker itself (inter-broker) authenticate with SCRAM-SHA-512; the
        controller listener stays PLAINTEXT (KRaft cannot check SCRAM there) on its own port."""
        host, port, cport, sasl = self.host, self.port, self.controller_port, SASL_LISTENER
        admin, password = self.sasl_users[0]
        listener = sasl.lower()
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{admin}" password="{password}";'
        )
        return {
            "listeners": f"{sasl}://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"{sasl}://{host}:{port}",
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{sasl}:{sasl}",
            "inter.broker.listener.name": sasl,
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.{listener}.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.{listener}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        }

    def write_server_properties(self) -> Path:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.render_server_properties())
        if self.sasl_users:
            self.properties_file.chmod(0o600)  # it holds the inter-broker password
        return self.properties_file

    def cluster_id(self) -> str:
        """Stable cluster id, kept next to the data so a wiped data dir gets the same one (a
        cluster's nodes share one file)."""
        if self.cluster_id_file.is_file():
            stored = self.cluster_id_file.read_text().strip()
            if stored:
                return stored
        cluster_id = _new_cluster_id()
        self.cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _jvm_flags(self) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.base_dir}",
            "-Djava.awt.headless=true",
        ]

    def format_storage(self) -> bool:
        """Format the KRaft storage unless it is already formatted; True when it formatted."""
        if (self.data_dir / "meta.properties").is_file():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.java(),
            "-Xmx256m",
            *self._jvm_flags(),
            "-cp",
            str(self.libs_dir / "*"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id(),
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        ]
        # KRaft keeps SCRAM credentials in its metadata log: users are created at format time.
        for name, password in self.sasl_users:
            cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            output = self._mask("\n".join((proc.stdout + proc.stderr).splitlines()[-30:]))
            raise BrokerError(
                f"formatting Kafka storage in {self.data_dir} failed; "
                f"`orderstream broker wipe` starts from scratch:\n{output}"
            )
        return True

    # -- process handling ------------------------------------------------------------------

    def _read_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_broker(self, pid: int) -> bool:
        """Alive, not a zombie, and (given /proc) our kafka.Kafka rather than a reused pid."""
        child = _CHILDREN.get(pid)
        if child is not None:
            # Our own unreaped child cannot be a reused pid; and /proc is no help right after
            # the spawn: Popen returns while execve is still running, cmdline reads empty.
            if child.poll() is None:
                return True
            del _CHILDREN[pid]
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else; /proc decides below
        proc_dir = Path("/proc") / str(pid)
        if not Path("/proc/self").exists():
            return True
        try:
            stat = (proc_dir / "stat").read_text()
            cmdline = (proc_dir / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        state = stat.rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):
            return False
        return "kafka.Kafka" in cmdline and str(self.properties_file) in cmdline

    def pid(self) -> int | None:
        """Pid of our running broker process, or None."""
        pid = self._read_pid()
        if pid is not None and self._is_our_broker(pid):
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self.pid()
        return BrokerStatus(
            running=pid is not None and _port_accepts(self.host, self.port),
            pid=pid,
            bootstrap=self.bootstrap,
            data_dir=self.data_dir,
            version=self.version,
        )

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        # Two `broker start` at once (CLI + test session) must not spawn two JVMs.
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with (self.base_dir / ".start.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def start(self, wait: bool = True) -> BrokerStatus:
        """Start the broker unless it already runs; with `wait`, return once it serves metadata."""
        with self._start_lock():
            pid = self.pid()
            if pid is None:
                self.pidfile.unlink(missing_ok=True)
                pid = self._spawn()
            if wait:
                self.wait_ready(pid)
        return self.status()

    def _spawn(self) -> int:
        for port, env in (
            (self.port, "ORDERSTREAM_LOCAL_BROKER_PORT"),
            (self.controller_port, "ORDERSTREAM_LOCAL_CONTROLLER_PORT"),
        ):
            if port_in_use(self.host, port):
                raise BrokerError(f"port {port} is in use by another process: stop it or set {env}")
        java = self.java()
        self.ensure_jars()
        self.write_server_properties()
        self.format_storage()
        cmd = [
            java,
            f"-Xmx{self.settings.local_broker_heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            *self._jvm_flags(),
            "-cp",
            str(self.libs_dir / "*"),
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.out_file.open("ab") as out:
            # Own session: Ctrl-C in the terminal that started it must not stop the broker.
            proc = subprocess.Popen(
                cmd,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _CHILDREN[proc.pid] = proc
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def wait_ready(self, pid: int | None = None, timeout: float | None = None) -> None:
        """Block until the port accepts and a Metadata request lists the broker."""
        pid = pid if pid is not None else self._read_pid()
        limit = timeout if timeout is not None else self.settings.local_broker_start_timeout_s
        deadline = time.monotonic() + limit
        last_error = "port not open yet"
        while time.monotonic() < deadline:
            if pid is None or not self._is_our_broker(pid):
                self.pidfile.unlink(missing_ok=True)
                raise BrokerError(f"the Kafka broker exited during startup:\n{self._log_tail()}")
            if _port_accepts(self.host, self.port):
                remaining = max(1.0, min(10.0, deadline - time.monotonic()))
                try:
                    probe = _metadata_brokers(self.bootstrap, remaining, self.client_options())
                    if _run_coro(probe) > 0:
                        return
                    last_error = "metadata lists no broker yet"
                except Exception as exc:  # any client failure just means "not ready yet"
                    last_error = self._mask(f"{type(exc).__name__}: {exc}")
            time.sleep(0.25)
        # A broker that never became ready is of no use: do not leave it behind.
        self.stop(timeout=10)
        hint = (
            "SASL users are created when the storage is formatted: after changing "
            "ORDERSTREAM_LOCAL_BROKER_SASL_USERS run `orderstream broker wipe`; "
            if self.sasl_users and "Authentication" in last_error
            else ""
        )
        raise BrokerError(
            f"the Kafka broker did not become ready within {limit:.0f}s ({last_error}); "
            f"{hint}raise ORDERSTREAM_LOCAL_BROKER_START_TIMEOUT_S or see {self.log_file}:\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        parts = [
            f"--- {path} ---\n{tail}"
            for path in (self.log_file, self.out_file)
            if (tail := _tail(path, 25))
        ]
        return "\n".join(parts) or f"(no output in {self.log_file} or {self.out_file})"

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        child = _CHILDREN.get(pid)
        if child is not None:
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return False
            _CHILDREN.pop(pid, None)
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._is_our_broker(pid):
                return True
            time.sleep(0.1)
        return not self._is_our_broker(pid)

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM (clean shutdown), SIGKILL after `timeout`; True when a broker was running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        self._signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout):
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 10.0)
        self.pidfile.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL without a clean shutdown (fault tests); True when a broker was running."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        self._signal(pid, signal.SIGKILL)
        self._wait_gone(pid, 10.0)
        self.pidfile.unlink(missing_ok=True)
        return True

    def wipe(self) -> None:
        """Stop the broker and delete its data (jars and cluster id stay)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
