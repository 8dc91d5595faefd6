"""The Dockerfile's install steps, replayed where no container engine can pull its base image:
wheels built from exactly what the Dockerfile copies, installed offline into a fresh venv, and
the image's commands run from outside the repository. With podman and a local base image
(ORDERSTREAM_TEST_PYTHON_IMAGE) the real image is built too; `docker compose config` runs
wherever the compose plugin is installed (it needs no engine)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def run(*argv: str | Path, cwd: Path, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    proc = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def builder_copies() -> list[str]:
    """The sources the builder stage COPYs into /src (what the image is built from)."""
    builder = DOCKERFILE.read_text().split("AS runtime", 1)[0]
    sources: list[str] = []
    for line in builder.splitlines():
        match = re.match(r"^COPY\s+(?!--from)(.+)$", line.strip())
        if match:
            sources += match.group(1).split()[:-1]  # the last word is the destination
    return sources


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheels the Dockerfile's builder would make."""
    tmp = tmp_path_factory.mktemp("image")
    context, wheels = tmp / "src", tmp / "wheels"
    context.mkdir()
    for source in builder_copies():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / source)
    # builder, dependency layer: wheels of pyproject's dependencies only
    deps = tomllib.loads((context / "pyproject.toml").read_text())["project"]["dependencies"]
    (context / "requirements.txt").write_text("\n".join(deps) + "\n")
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "-q", "--wheel-dir", wheels, "-r", "requirements.txt", cwd=context)
    # builder, project layer: the project's own wheel
    run(*pip, "wheel", "-q", "--no-deps", "--wheel-dir", wheels, ".", cwd=context)
    # runtime: a clean interpreter, offline install from the wheels alone
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp)
    run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        wheels,
        "orderstream",
        cwd=tmp,
    )
    return venv


def test_the_dockerfile_copies_what_the_package_needs() -> None:
    assert builder_copies() == ["pyproject.toml", "README.md", "orderstream"]


def test_wheel_installed_packages_import_outside_the_repo(image_venv: Path, tmp_path: Path) -> None:
    proc = run(
        image_venv / "bin" / "python",
        "-c",
        "import importlib.util, orderstream.worker.app, orderstream.ops.cli; "
        "print(orderstream.worker.app.__file__); print(importlib.util.find_spec('devtools'))",
        cwd=tmp_path,
    )
    where, devtools = proc.stdout.splitlines()[-2:]
    assert str(image_venv) in where, "imported the repo's package, not the installed wheel"
    assert devtools == "None", "the development tools must not be in the image"


def test_the_image_commands_start(image_venv: Path, tmp_path: Path) -> None:
    bin_dir = image_venv / "bin"
    # CMD ["faust", "-A", "orderstream.worker.app", "worker", "-l", "info"], up to connecting
    app = "orderstream.worker.app"
    assert "worker" in run(bin_dir / "faust", "-A", app, "worker", "--help", cwd=tmp_path).stdout
    # docker-compose.yml's one-shot and simulator commands
    usage = run(bin_dir / "orderstream", "--help", cwd=tmp_path).stdout
    assert "topics" in usage and "demo" in usage


def test_docker_compose_config_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0
    ):
        pytest.skip("the docker compose plugin is not installed")
    config = (docker, "compose", "-f", "docker-compose.yml", "config", "--quiet")
    # The admin token has no default: without it compose refuses, naming the variable
    monkeypatch.delenv("ORDERSTREAM_ADMIN_TOKEN", raising=False)
    refused = subprocess.run(config, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "ORDERSTREAM_ADMIN_TOKEN" in refused.stderr
    monkeypatch.setenv("ORDERSTREAM_ADMIN_TOKEN", "a-secret-for-the-config-check")
    run(*config, cwd=ROOT, timeout=60)


def test_podman_builds_the_image(tmp_path: Path) -> None:
    base = os.environ.get("ORDERSTREAM_TEST_PYTHON_IMAGE", "python:3.11-slim")
    podman = shutil.which("podman")
    if podman is None or subprocess.run([podman, "image", "exists", base]).returncode != 0:
        pytest.skip(f"needs podman and the base image {base} locally")
    tag = "localhost/orderstream:integration-test"
    run(
        podman,
        "build",
        "--isolation=chroot",
        "--network=host",
        "--format=docker",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "-t",
        tag,
        ".",
        cwd=ROOT,
        timeout=800,
    )
    fmt = "{{.Config.User}} {{.Config.Cmd}}"
    inspected = run(podman, "image", "inspect", "--format", fmt, tag, cwd=tmp_path).stdout
    assert inspected.split()[0] == "orderstream", "the image runs as root"
    assert "worker" in inspected
