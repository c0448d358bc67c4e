"""Running the Alembic migrations from code (CLI, demo, tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from service.config import REPOSITORY_ROOT


def alembic_config() -> Config:
    return Config(str(REPOSITORY_ROOT / "alembic.ini"))


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade_database(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)


def _run(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    with migration_connection(engine) as connection:
        config.attributes["connection"] = connection
        step(config, revision)


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """One transaction for the whole migration. On SQLite, foreign keys are off while it runs and
    checked before it commits: batch mode rebuilds a table by dropping it, and with foreign keys on
    the drop would refuse (or cascade to) the rows of every table that points at it."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
        if driver is not None:
            # Outside the transaction: inside one, SQLite ignores this pragma.
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                yield connection
                if driver is not None:
                    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if dangling:
                        raise RuntimeError(f"the migration left rows that point nowhere: {dangling[:5]}")
        finally:
            if driver is not None:
                driver.execute("PRAGMA foreign_keys=ON")
