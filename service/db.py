"""Engine and sessions. One engine per process; one transaction per request or per worker step."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVarTuple

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.selectable import TypedReturnsRows

from service.config import Settings

AFTER_COMMIT_KEY = "autograde_after_commit"
# Who hears of the grading jobs a unit of work created, once it commits (the executor).
JOB_NOTIFIER_KEY = "autograde_job_notifier"
JobNotifier = Callable[[Sequence[int]], None]
# An execution option: this transaction only reads (on SQLite it begins deferred, see below).
READ_ONLY = "autograde_read_only"
Columns = TypeVarTuple("Columns")


def make_engine(settings: Settings) -> Engine:
    # A failed statement's error (and so every log line and traceback that quotes it) leaves its
    # parameters out: they are students' answers, feedback and tokens' hashes.
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module (it defers BEGIN and breaks SAVEPOINT) ...
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; the API and the grading processes share the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # ... and begin every transaction that may write holding the write lock: a transaction that
    # reads and then writes cannot then fail with SQLITE_BUSY when another process wrote in between.
    # A read-only one begins deferred: in WAL mode it reads a snapshot and never waits for a writer.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def advisory_xact_lock(session: Session, lock_class: int, key: int) -> None:
    """Serialise the transactions that take the same (class, key) until they end (Postgres: an
    advisory lock). SQLite needs none: every writing transaction begins holding its write lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(lock_class, key)))


def read_on_connection(
    session: Session, statement: TypedReturnsRows[*Columns], parameters: Mapping[str, Any]
) -> CursorResult[*Columns]:
    """Run a read of plain columns on the session's connection, in its transaction: past the ORM's
    per-statement work, which costs two to three times the rest of a small select's Python time
    (for the reads every request makes). Pending changes are flushed first, as Session.execute's
    autoflush would."""
    session.flush()
    return session.connection().execute(statement, parameters)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run callback once the session's transaction has committed (e.g. hand job ids to workers)."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


def notify_jobs_after_commit(session: Session, job_ids: Sequence[int]) -> None:
    """Tell the unit of work's job notifier about these jobs once they are committed. A unit of
    work opened without one (a CLI command) leaves them to the workers' polling and the sweeper."""
    notify: JobNotifier | None = session.info.get(JOB_NOTIFIER_KEY)
    if notify is not None:
        ids = list(job_ids)
        after_commit(session, lambda: notify(ids))


def commit_and_run_callbacks(session: Session) -> None:
    session.commit()
    callbacks: list[Callable[[], None]] = session.info.pop(AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        callback()


@contextmanager
def transaction(
    factory: sessionmaker[Session], *, read_only: bool = False, notify_jobs: JobNotifier | None = None
) -> Iterator[Session]:
    """The one way to open a unit of work: a session whose work commits at the end (then runs
    the after-commit callbacks), or rolls back on any error.

    read_only: the work only reads (a GET, the grading loop's load); on SQLite it then does not
    take the write lock, so it never waits for a writer nor makes one wait.
    notify_jobs: hears of the grading jobs the work created, after the commit (the executor).
    """
    session = factory()
    if notify_jobs is not None:
        session.info[JOB_NOTIFIER_KEY] = notify_jobs
    try:
        if read_only and session.get_bind().dialect.name == "sqlite":
            # Only SQLite begins differently; elsewhere connect lazily, as the work would.
            session.connection(execution_options={READ_ONLY: True})
        yield session
        commit_and_run_callbacks(session)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
