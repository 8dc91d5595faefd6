"""Deployment files agree with the code: Strimzi topics with the registry, the StatefulSet with
the web endpoints, docker-compose.yml with the CLI, the registry and the files in the repo."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orderstream.contracts.topics import registry
from orderstream.errors import ConfigError
from orderstream.ops.cli import build_parser
from orderstream.ops.manifests import (
    PRODUCTION_MIN_INSYNC_REPLICAS,
    PRODUCTION_REPLICATION_FACTOR,
    production_settings,
    render_topics,
    settings_without_env,
    to_yaml,
)

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
REGENERATE = "run python -m orderstream.ops.manifests > deploy/k8s/topics.yaml"
# Written in another change: checked only once they exist.
MAY_BE_MISSING = {
    "deploy/prometheus/prometheus.yml",
    "deploy/prometheus/alerts.yml",
    "deploy/grafana/provisioning",
    "deploy/grafana/dashboards",
}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_docs() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in load_all(p)]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in k8s_docs()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


# --- Strimzi topics -----------------------------------------------------------------------


def test_every_k8s_yaml_parses_into_named_resources() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {p.name for p in files} >= {
        "topics.yaml",
        "worker.yaml",
        "servicemonitor.yaml",
        "kustomization.yaml",
    }
    for path in files:
        docs = load_all(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path}: {doc}"
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], f"{path}: a {doc['kind']} without a name"


def test_committed_topics_yaml_is_a_fresh_render() -> None:
    fresh = to_yaml(render_topics(production_settings()))
    assert (K8S / "topics.yaml").read_text() == fresh, REGENERATE


def test_rendered_yaml_reads_back_as_the_same_data() -> None:
    docs = render_topics(production_settings(), cluster="prod-kafka")
    assert list(yaml.safe_load_all(to_yaml(docs))) == docs


def test_render_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a shell with other settings, the committed file still comes out the same.
    monkeypatch.setenv("ORDERSTREAM_PARTITIONS", "17")
    monkeypatch.setenv("ORDERSTREAM_TOPIC_PREFIX", "staging.")
    assert (K8S / "topics.yaml").read_text() == to_yaml(render_topics(production_settings()))


def test_kafka_topics_match_the_registry_including_changelogs() -> None:
    specs = registry(production_settings())
    topics = [d for d in load_all(K8S / "topics.yaml") if d["kind"] == "KafkaTopic"]
    by_name = {t["spec"]["topicName"]: t for t in topics}
    assert set(by_name) == {s.name for s in specs.values()}, REGENERATE
    assert any(s.compacted for s in specs.values()), "the registry lost its changelog topics"
    for spec in specs.values():
        topic = by_name[spec.name]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "orderstream"
        assert topic["spec"]["partitions"] == spec.partitions, spec.name
        assert topic["spec"]["replicas"] == spec.replication_factor, spec.name
        assert topic["spec"]["config"] == spec.configs, spec.name


def test_production_topics_survive_one_broker_loss() -> None:
    topics = [d for d in load_all(K8S / "topics.yaml") if d["kind"] == "KafkaTopic"]
    for topic in topics:
        assert topic["spec"]["replicas"] == PRODUCTION_REPLICATION_FACTOR
        assert topic["spec"]["config"]["min.insync.replicas"] == str(PRODUCTION_MIN_INSYNC_REPLICAS)
    policies = {t["spec"]["topicName"]: t["spec"]["config"]["cleanup.policy"] for t in topics}
    assert policies["order-events"] == "delete"  # the order log keeps its history
    assert all(p == "compact" for n, p in policies.items() if n.endswith("-changelog"))


def test_resource_names_are_valid_for_kubernetes() -> None:
    docs = render_topics(settings_without_env(topic_prefix="Prod_EU."))
    for doc in docs:
        name = doc["metadata"]["name"]
        assert name == name.lower() and "_" not in name and len(name) <= 253
        assert doc["spec"]["topicName"].startswith("Prod_EU.") or "changelog" in name


# --- the worker StatefulSet ----------------------------------------------------------------


def worker_container() -> dict[str, Any]:
    sts = one("StatefulSet")
    containers: list[dict[str, Any]] = sts["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def config_map() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap", "orderstream-config")["data"]
    return data


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert numbers, f"no container port named {port!r}"
    return int(numbers[0])


def test_probes_point_at_readyz_and_healthz_on_the_web_port() -> None:
    container = worker_container()
    web_port = int(config_map()["ORDERSTREAM_WEB_PORT"])
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz"
    assert live["path"] == "/healthz"
    assert port_number(container, ready["port"]) == web_port
    assert port_number(container, live["port"]) == web_port


def test_each_pod_keeps_its_rocksdb_volume() -> None:
    sts = one("StatefulSet")
    templates = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in worker_container()["volumeMounts"]}
    datadir = config_map()["ORDERSTREAM_DATADIR"]
    claimed = [name for name, path in mounts.items() if path == datadir]
    assert claimed and claimed[0] in templates, f"{datadir} is not on a volumeClaimTemplate"
    assert templates[claimed[0]]["spec"]["resources"]["requests"]["storage"]


def test_worker_has_requests_and_limits() -> None:
    resources = worker_container()["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[part]), part


def test_worker_settings_agree_with_the_topics() -> None:
    cm = config_map()
    sts = one("StatefulSet")
    specs = registry(production_settings())
    partitions = {s.partitions for s in specs.values()}
    assert partitions == {int(cm["ORDERSTREAM_PARTITIONS"])}
    assert int(cm["ORDERSTREAM_REPLICATION_FACTOR"]) == PRODUCTION_REPLICATION_FACTOR
    assert int(cm["ORDERSTREAM_MIN_INSYNC_REPLICAS"]) == PRODUCTION_MIN_INSYNC_REPLICAS
    assert cm["ORDERSTREAM_WEB_HOST"] == "0.0.0.0"
    # More workers than partitions would sit idle.
    assert 1 <= sts["spec"]["replicas"] <= int(cm["ORDERSTREAM_PARTITIONS"])


def test_admin_token_comes_from_a_secret_not_the_config_map() -> None:
    assert "ORDERSTREAM_ADMIN_TOKEN" not in config_map()
    env = {e["name"]: e for e in worker_container()["env"]}
    ref = env["ORDERSTREAM_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "orderstream-secrets", "key": "admin-token", "optional": False}
    refs = worker_container()["envFrom"]
    assert {"configMapRef": {"name": "orderstream-config"}} in refs
    # the Secret itself is created by hand (see worker.yaml), never committed
    assert not [d for d in k8s_docs() if d["kind"] == "Secret"]


def test_the_config_map_alone_does_not_start_a_worker() -> None:
    # Given the pod's settings from the ConfigMap (it binds 0.0.0.0)
    values = {k.removeprefix("ORDERSTREAM_").lower(): v for k, v in config_map().items()}
    # When the Secret's token is missing, Then the worker refuses to start
    with pytest.raises(ConfigError, match="set ORDERSTREAM_ADMIN_TOKEN to a secret"):
        settings_without_env(**values)
    # And with it, it starts
    settings = settings_without_env(**values, admin_token="from-the-orderstream-secrets-secret")
    assert settings.web_host == "0.0.0.0"


def test_services_select_the_worker_pods() -> None:
    sts = one("StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"] for p in worker_container()["ports"]}
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    for svc in (headless, one("Service", "orderstream-web")):
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in container_ports | {port_number(worker_container(), "web")}
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_monitor_scrapes_metrics_from_a_worker_service() -> None:
    monitor = one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [
        d
        for d in k8s_docs()
        if d["kind"] == "Service" and wanted.items() <= d["metadata"]["labels"].items()
    ]
    assert services, "the ServiceMonitor selects no Service"
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        for svc in services:
            assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_all(K8S / "kustomization.yaml")[0]
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


# --- docker-compose.yml ---------------------------------------------------------------------


def orderstream_services(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, svc in compose["services"].items():
        if "build" in svc:
            yield name, svc


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {"kafka", "topics", "worker-1", "worker-2", "simulator", "prometheus", "grafana"}
    assert expected <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["worker-1"]["ports"] == ["6066:6066"]
    assert services["worker-2"]["ports"] == ["6067:6066"]


def test_compose_workers_keep_separate_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    data_volumes = []
    for name in ("worker-1", "worker-2"):
        mounts = [v.split(":") for v in compose["services"][name]["volumes"]]
        data = [src for src, dst, *_ in mounts if dst == "/data"]
        assert len(data) == 1 and data[0] in declared, name
        data_volumes.append(data[0])
    assert len(set(data_volumes)) == 2
    kafka_mounts = [v.split(":")[0] for v in compose["services"]["kafka"]["volumes"]]
    assert any(m in declared for m in kafka_mounts), "Kafka's data is not on a named volume"


def test_compose_files_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if "build" in svc:
            context = ROOT / (svc["build"] if isinstance(svc["build"], str) else ".")
            assert (context / "Dockerfile").is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
                continue
            relative = Path(source).as_posix().removeprefix("./")
            if relative in MAY_BE_MISSING and not (ROOT / relative).exists():
                continue
            assert (ROOT / relative).exists(), f"{name} mounts {source}, which does not exist"


def test_compose_dependencies_wait_on_real_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                check = services[dep].get("healthcheck", {})
                assert check and not check.get("disable"), f"{dep} has no healthcheck"
            if cond["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not a one-shot"


def test_compose_commands_are_valid_cli_invocations(compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name, svc in orderstream_services(compose):
        command = svc.get("command")
        if command is None:
            continue
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        assert argv[0] == "orderstream", name
        parser.parse_args(argv[1:])  # exits (SystemExit) on an unknown flag
    assert compose["services"]["topics"]["command"][:2] == ["orderstream", "topics"]


def test_compose_requires_an_admin_token_without_a_default(compose: dict[str, Any]) -> None:
    # The image binds 0.0.0.0: a worker refuses the default token, so compose has none to give.
    required = re.compile(r"^\$\{ORDERSTREAM_ADMIN_TOKEN:\?[^}]+\}$")
    for name, svc in orderstream_services(compose):
        token = svc["environment"]["ORDERSTREAM_ADMIN_TOKEN"]
        assert required.match(token), f"{name}: ORDERSTREAM_ADMIN_TOKEN={token}"
    assert "change-me" not in COMPOSE.read_text()
    with pytest.raises(ConfigError, match=r"ORDERSTREAM_WEB_HOST=0\.0\.0\.0 "):
        settings_without_env(web_host="0.0.0.0")  # what the image sets, without the token


def test_compose_uses_only_registry_topics_and_one_partition_count(
    compose: dict[str, Any],
) -> None:
    partitions = set()
    for name, svc in orderstream_services(compose):
        env = {k: str(v) for k, v in svc["environment"].items() if k.startswith("ORDERSTREAM_")}
        settings = settings_without_env(
            **{k.removeprefix("ORDERSTREAM_").lower(): v for k, v in env.items()}
        )
        names = {s.name for s in registry(settings).values()}
        for key, value in env.items():
            if "TOPIC" in key and "PREFIX" not in key:
                assert settings.topic_prefix + value in names, f"{name}: {key}={value}"
        partitions.add(settings.partitions)
        assert env["ORDERSTREAM_BROKER"].startswith("kafka://kafka:"), name
    assert len(partitions) == 1, f"services disagree on ORDERSTREAM_PARTITIONS: {partitions}"


def test_dockerfile_is_configured_by_environment_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "ORDERSTREAM_WEB_HOST=0.0.0.0" in text
    assert "ORDERSTREAM_DATADIR=/data" in text
    assert 'VOLUME ["/data"]' in text
    assert "/healthz" in text and "HEALTHCHECK" in text
    assert 'CMD ["faust", "-A", "orderstream.worker.app", "worker", "-l", "info"]' in text
    runtime = text.split("AS runtime", 1)[1]
    assert "USER orderstream" in runtime
    assert "build-essential" not in runtime and "gcc" not in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", "broker/libs"} <= set(ignored)
