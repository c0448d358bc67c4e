"""What a process refuses at start-up: unsafe production settings, and grading without a sandbox.

The commands run as real processes; "no sandbox" is made real by a PATH on which bubblewrap is not.
"""

from __future__ import annotations

import base64
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from graders.sandbox import SandboxMode, bwrap_path, sandbox_problem
from service.config import DEVELOPMENT_SECRET, Settings
from tests.conftest import REPOSITORY_ROOT, Api

CLI = [sys.executable, "-m", "service.cli"]
STRONG_KEY = secrets.token_urlsafe(48)
NO_SANDBOX_LINE = "refusing to start: the sandbox cannot run here: bubblewrap (bwrap) is not installed"


def _env(tmp_path: Path, path: str | None = None, **settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTOGRADE_")}
    if path is not None:
        env["PATH"] = path
    # COLUMNS: rich wraps its messages at the terminal's width, 80 without a terminal.
    return env | {"COLUMNS": "1000", "AUTOGRADE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", **settings}


def _folder_without_bwrap(tmp_path: Path) -> str:
    folder = tmp_path / "bin-without-bwrap"
    folder.mkdir()
    return str(folder)


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *command], cwd=REPOSITORY_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "key",
    [DEVELOPMENT_SECRET, "a" * 32, "a" * 200, "ab" * 32, "0123456789" * 4, "k" * 40, secrets.token_hex(16)],
    ids=["development", "32-a", "200-a", "ab-repeated", "digits-repeated", "40-k", "hex-128-bit"],
)
def test_production_refuses_keys_without_real_entropy(key: str) -> None:
    with pytest.raises(ValidationError, match="AUTOGRADE_SECRET_KEY must be a random value"):
        Settings(env="production", secret_key=key)


def test_production_accepts_generated_keys() -> None:
    # Keys as secrets.token_urlsafe and token_hex make them, from a seeded generator: the same 600
    # keys each run (the estimates are statistics: a rare random key must not make CI flaky).
    generator = random.Random(20261201)
    for _ in range(200):
        for key in (
            base64.urlsafe_b64encode(generator.randbytes(48)).rstrip(b"=").decode(),
            base64.urlsafe_b64encode(generator.randbytes(24)).rstrip(b"=").decode(),
            generator.randbytes(32).hex(),
        ):
            assert Settings(env="production", secret_key=key).secret_key == key


def test_production_refuses_the_unsafe_dev_sandbox(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AUTOGRADE_SANDBOX=unsafe-dev"):
        Settings(env="production", secret_key=STRONG_KEY, sandbox="unsafe-dev")
    env = _env(tmp_path, AUTOGRADE_ENV="production", AUTOGRADE_SECRET_KEY=STRONG_KEY)
    refused = _run(["worker"], env | {"AUTOGRADE_SANDBOX": "unsafe-dev"})
    assert refused.returncode == 2
    assert "AUTOGRADE_SANDBOX=unsafe-dev runs students' code unconfined" in refused.stdout
    # Development keeps it, for machines without bubblewrap.
    assert Settings(sandbox="unsafe-dev").sandbox == "unsafe-dev"


def test_production_on_sqlite_starts_with_a_loud_warning(tmp_path: Path) -> None:
    production = _run(
        ["db", "upgrade"], _env(tmp_path, AUTOGRADE_ENV="production", AUTOGRADE_SECRET_KEY=STRONG_KEY)
    )
    assert production.returncode == 0, production.stdout + production.stderr
    assert "WARNING: AUTOGRADE_DATABASE_URL is SQLite in production" in production.stderr
    development = _run(["db", "upgrade"], _env(tmp_path))
    assert development.returncode == 0
    assert "WARNING" not in development.stderr


def test_the_sandbox_probe_runs_here() -> None:
    assert bwrap_path() is not None, "bubblewrap is missing: make system-deps installs it"
    assert sandbox_problem(SandboxMode.BWRAP) is None
    assert sandbox_problem(SandboxMode.UNSAFE_DEV) is None


@pytest.mark.parametrize(
    ("command", "settings"),
    [
        (["worker"], {}),
        (["worker", "--queues", "cpu"], {"AUTOGRADE_EXECUTOR": "celery"}),
        (["serve"], {"AUTOGRADE_LOCAL_WORKERS": "1"}),
    ],
    ids=["local-worker", "celery-worker", "serve-with-local-workers"],
)
def test_grading_refuses_to_start_without_a_sandbox(
    tmp_path: Path, command: list[str], settings: dict[str, str]
) -> None:
    env = _env(tmp_path, _folder_without_bwrap(tmp_path), **settings)
    refused = _run(command, env)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert NO_SANDBOX_LINE in refused.stderr
    assert "Traceback" not in refused.stderr


def test_unsafe_dev_in_development_still_starts_without_bubblewrap(tmp_path: Path) -> None:
    env = _env(tmp_path, _folder_without_bwrap(tmp_path), AUTOGRADE_SANDBOX="unsafe-dev")
    assert _run(["db", "upgrade"], env).returncode == 0
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [*CLI, "worker"], cwd=REPOSITORY_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "grading process(es) running" not in log.read_text():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)


def test_readyz_is_not_ready_while_local_grading_cannot_sandbox(
    api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app_state = api.client.app.state  # type: ignore[attr-defined]
    app_state.settings = app_state.settings.model_copy(update={"local_workers": 1})
    assert api.client.get("/readyz").status_code == 200
    monkeypatch.setenv("PATH", _folder_without_bwrap(tmp_path))
    response = api.client.get("/readyz")
    assert response.status_code == 503
    (problem,) = response.json()["error"]["details"]
    assert problem.startswith("the grading processes cannot run the sandbox (bubblewrap (bwrap) is not")
    # An API whose grading runs in separate workers does not need the sandbox itself.
    app_state.settings = app_state.settings.model_copy(update={"local_workers": 0})
    assert api.client.get("/readyz").status_code == 200
