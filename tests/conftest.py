"""Fixtures on the real path: migrated SQLite and PostgreSQL databases, rolled back per test.

PostgreSQL tests fail (not skip) when AUTOGRADE_REQUIRE_SERVICES=1 and the server is down.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from service.assignments import snapshots
from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.grading.runner import GradingRunner
from service.main import create_app
from service.migrations import upgrade_database
from service.worker.executor import NullExecutor
from tests.factories import Accounts, seed_courses

POSTGRES_ADMIN_DSN = os.environ.get(
    "AUTOGRADE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("AUTOGRADE_REQUIRE_SERVICES") == "1"
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
HW5_FOLDER = REPOSITORY_ROOT / "reference" / "hw5"
SHARED_HW5 = REPOSITORY_ROOT.parent / "shared" / "hw5"


def postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL is not reachable ({reason}); start it or unset AUTOGRADE_REQUIRE_SERVICES"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def sqlalchemy_postgres_url(database: str) -> str:
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


def create_scratch_database(backend: str, tmp_dir: Path) -> tuple[str, Callable[[], None]]:
    """A new, empty database; returns its URL and a function that drops it."""
    if backend == "sqlite":
        path = tmp_dir / f"autograde-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: None
    name = f"autograde_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        postgres_unavailable(str(error).strip())

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return sqlalchemy_postgres_url(name), drop


@dataclass
class ScratchService:
    settings: Settings
    session_factory: sessionmaker[Session]
    tokens: dict[str, str]
    client: TestClient


@contextmanager
def scratch_service(backend: str, tmp_path: Path, **settings_values: Any) -> Iterator[ScratchService]:
    """A migrated database of its own with the seeded courses, and the API on it: real commits and
    real connections (other threads and processes see them), unlike the rolled-back `api`."""
    url, drop = create_scratch_database(backend, tmp_path)
    settings = Settings(database_url=url, local_workers=0, **settings_values)
    engine = make_engine(settings)
    try:
        upgrade_database(engine)
        factory = make_session_factory(engine)
        with factory() as session:
            tokens = seed_courses(session, settings, tmp_path).tokens
        with TestClient(create_app(settings, executor=NullExecutor())) as client:
            yield ScratchService(settings, factory, tokens, client)
    finally:
        engine.dispose()
        drop()


# For tests whose cost is sandbox runs and whose database work is the API's usual (the other
# suites cover it on both backends): PostgreSQL, the production database, only.
ON_POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url, drop = create_scratch_database(backend, tmp_path_factory.mktemp(backend))
    engine = make_engine(Settings(database_url=url))
    upgrade_database(engine)
    yield engine
    engine.dispose()
    drop()


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    """One transaction per test, rolled back at the end: every session below runs in savepoints."""
    with migrated_engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture(autouse=True)
def forget_cached_snapshots() -> Iterator[None]:
    """The per-process snapshot cache is keyed by version id, but tests roll their versions back
    (SQLite gives the id to the next version inserted) and the SQLite and PostgreSQL runs share the
    process: a version cached by another test (or backend) under the same id is not this one."""
    snapshots._snapshots.clear()
    yield
    snapshots._snapshots.clear()


@pytest.fixture
def settings(migrated_engine: Engine) -> Settings:
    return Settings(
        database_url=str(migrated_engine.url.render_as_string(hide_password=False)), local_workers=0
    )


class RecordingExecutor:
    """Stands in for the worker processes in in-process API tests: it records the job ids it is
    told about; the test then runs the real grading loop itself (`Api.grade_pending`)."""

    def __init__(self) -> None:
        self.notified: list[int] = []

    def start(self) -> None:
        return None

    def notify(self, job_ids: Sequence[int]) -> None:
        self.notified.extend(job_ids)

    def stop(self) -> None:
        return None

    def broker_problem(self) -> str | None:
        return None


@dataclass
class Api:
    client: TestClient
    accounts: Accounts
    executor: RecordingExecutor
    runner: GradingRunner

    def submit(
        self, who: str, answers: dict[str, Any], assignment: str = "hw5", course: str = "demo", **headers: str
    ) -> httpx2.Response:
        return self.client.post(
            f"/api/v1/courses/{course}/assignments/{assignment}/submissions",
            json={"answers": answers},
            headers=self.accounts.header(who) | headers,
        )

    def upload_notebook(
        self, who: str, assignment: str, question: str, content: bytes, course: str = "demo"
    ) -> httpx2.Response:
        """A submission answering one notebook question with an uploaded file (no other answers)."""
        return self.client.post(
            f"/api/v1/courses/{course}/assignments/{assignment}/submissions",
            data={"answers": "{}"},
            files={question: (f"{question}.ipynb", content)},
            headers=self.accounts.header(who),
        )

    def get(self, who: str, path: str) -> httpx2.Response:
        return self.client.get(path, headers=self.accounts.header(who))

    def grade_pending(self) -> int:
        graded = 0
        while claimed := self.runner.run_once():
            graded += claimed
        return graded


def load_material_folder(
    session_factory: sessionmaker[Session], folder: Path, files: dict[str, str] | None = None
) -> None:
    """Load the assignment in `folder` into the demo course, writing `files` (name: text) there first."""
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    with session_factory() as session:
        load_assignment(session, "demo", read_material(folder))
        session.commit()


@pytest.fixture
def api(session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path) -> Iterator[Api]:
    with session_factory() as setup_session:
        accounts = seed_courses(setup_session, settings, tmp_path)
    executor = RecordingExecutor()
    app = create_app(settings, executor=executor)
    app.state.session_factory = session_factory
    runner = GradingRunner(session_factory, settings, "test-worker", ["cpu", "gpu"])
    with TestClient(app) as client:
        yield Api(client, accounts, executor, runner)
