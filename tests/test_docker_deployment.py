"""The compose deployment for real: build the image, start the stack, grade hw5's solution notebook
through the API, with the worker's sandbox running inside its container.

Starts its own dockerd (tests/deployment/engine.py); no registry is reachable, so the image is built
on a debootstrap base image, with the wheels served from this machine over loopback. Everything runs
on the host's network. Measured on a 2-core machine: 3.5 min cold, 1.2 min warm (docs/operations.md).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.conftest import REPOSITORY_ROOT, create_scratch_database
from tests.deployment.engine import (
    docker,
    docker_env,
    download_wheels,
    ensure_base_image,
    require_tool,
    running_dockerd,
    serving_folder,
)
from tests.worker.cluster import free_port, wait_for

pytestmark = pytest.mark.slow

IMAGE = "autograde:deployment-test"
PROJECT = "autograde-deployment-test"
OVERRIDE = REPOSITORY_ROOT / "tests" / "deployment" / "compose.host-network.yml"
SOLUTION = REPOSITORY_ROOT / "reference" / "hw5" / "solution.ipynb"
# Debian's docker-compose (1.29) hands security_opt to the engine as written; the engine takes neither
# a seccomp file's path nor systempaths=unconfined (the docker CLI and Compose v2 translate both), so
# the test starts worker-cpu with `docker run`, from compose's own resolved definition of it.
WORKER = "worker-cpu"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("docker")
    with running_dockerd(work / "dockerd.log"):
        base = ensure_base_image(work)
        pyproject = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        wheels = work / "wheels"
        download_wheels(pyproject["project"]["dependencies"], wheels)
        with serving_folder(wheels) as wheels_url:
            docker(
                "build", "--network=host", f"--tag={IMAGE}",
                f"--build-arg=BASE_IMAGE={base}",
                "--build-arg=TORCH_INDEX_URL=",
                "--build-arg=PIP_NO_INDEX=1",
                f"--build-arg=PIP_FIND_LINKS={wheels_url}",
                str(REPOSITORY_ROOT),
                timeout=1800,
            )  # fmt: skip
        yield IMAGE


def _compose_env(settings: dict[str, str]) -> dict[str, str]:
    return docker_env() | {"COMPOSE_PROJECT_NAME": PROJECT} | settings


def _compose(settings: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("docker-compose"), *args],
        cwd=REPOSITORY_ROOT,
        env=_compose_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _resolved_stack(settings: dict[str, str], folder: Path) -> tuple[Path, dict[str, Any]]:
    """docker-compose.yml with the host-network override, as compose resolves them."""
    files = ["--file", "docker-compose.yml", "--file", str(OVERRIDE)]
    done = _compose(settings, *files, "config")
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    worker = resolved["services"].pop(WORKER)
    # A host-network container publishes no ports (compose 1.29 refuses the combination).
    resolved["services"]["api"].pop("ports")
    path = folder / "compose.resolved.yml"
    path.write_text(yaml.safe_dump(resolved), encoding="utf-8")
    return path, worker


def _docker_run_arguments(service: dict[str, Any]) -> list[str]:
    arguments = ["--network=host"]
    for option in service["security_opt"]:
        name, _, value = option.replace(":", "=", 1).partition("=")
        if name == "seccomp":
            value = str((REPOSITORY_ROOT / value).resolve())
        arguments.append(f"--security-opt={name}={value}")
    arguments += [f"--env={key}={value}" for key, value in service["environment"].items()]
    return [*arguments, service["image"], *service["command"]]


@dataclass(frozen=True)
class Stack:
    base_url: str
    settings: dict[str, str]
    compose_file: Path
    worker: dict[str, Any]


@pytest.fixture(scope="module")
def stack(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    database_url, drop = create_scratch_database("postgres", folder)
    redis_port = free_port()
    redis = subprocess.Popen(
        [require_tool("redis-server"), "--bind", "127.0.0.1", "--port", str(redis_port),
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    port = free_port()
    settings = {
        "AUTOGRADE_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTOGRADE_TEST_IMAGE": image,
        "AUTOGRADE_TEST_DATABASE_URL": database_url,
        "AUTOGRADE_TEST_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AUTOGRADE_TEST_PORT": str(port),
    }
    resolved, worker = _resolved_stack(settings, folder)
    worker_name = f"{PROJECT}-{WORKER}"
    try:
        up = _compose(settings, "--file", str(resolved), "up", "--detach", "--no-build")
        assert up.returncode == 0, up.stdout + up.stderr
        docker("run", "--detach", f"--name={worker_name}", *_docker_run_arguments(worker))
        yield Stack(f"http://127.0.0.1:{port}", settings, resolved, worker)
    finally:
        print(docker("logs", "--tail=40", worker_name, check=False).stderr[-4000:])
        docker("rm", "--force", worker_name, check=False)
        _compose(settings, "--file", str(resolved), "down", "--volumes", "--timeout=5")
        redis.kill()
        redis.wait()
        drop()


def _in_api_container(stack: Stack, *command: str) -> str:
    # exec, not run: compose 1.29 links a `run` container to its dependencies, which host networking refuses.
    done = _compose(stack.settings, "--file", str(stack.compose_file), "exec", "-T", "api", *command)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_compose_stack_grades_a_notebook_in_the_workers_sandbox(stack: Stack) -> None:
    base_url = stack.base_url
    assert wait_for(lambda: _healthy(base_url), 120), "the api container did not become healthy"
    _in_api_container(stack, "autograde", "assignments", "load", "reference/hw5", "--course", "dl")
    token = _in_api_container(stack, "autograde", "users", "add", "alice", "--course", "dl").split()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx2.post(
        f"{base_url}/api/v1/courses/dl/assignments/hw5/submissions",
        data={"answers": "{}"},
        files={"q4": ("hw5.ipynb", SOLUTION.read_bytes())},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    location = f"{base_url}{response.headers['location']}"
    deadline = time.monotonic() + 300
    while (result := httpx2.get(location, headers=headers, timeout=30).json())["status"] != "graded":
        assert result["status"] in ("queued", "running"), result
        assert time.monotonic() < deadline, "not graded within 5 minutes"
        time.sleep(1)
    q4 = result["questions"]["q4"]
    assert (q4["verdict"], q4["score"], q4["max_score"]) == ("correct", 10.0, 10.0), q4["feedback"]
    assert httpx2.get(f"{base_url}/readyz", timeout=30).status_code == 200


def test_a_worker_under_dockers_default_seccomp_refuses_to_start(stack: Stack) -> None:
    # The same worker container without the security options of docker-compose.yml.
    arguments = [
        argument for argument in _docker_run_arguments(stack.worker) if "--security-opt" not in argument
    ]
    done = docker("run", "--rm", *arguments, check=False, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    (refusal,) = [line for line in lines if line["level"] == "ERROR"]
    assert refusal["message"].startswith("refusing to start: the sandbox cannot run here: a sandboxed run")
    assert "namespace" in refusal["message"]


def _healthy(base_url: str) -> bool:
    try:
        return httpx2.get(f"{base_url}/healthz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False
