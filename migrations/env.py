"""Alembic environment: the models' metadata and the settings' database URL, nothing else."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.config import get_settings
from service.db import make_engine
from service.migrations import migration_connection
from service.models import Base

target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # A caller (tests, `autograde db upgrade`) may hand over its own connection.
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    engine = make_engine(get_settings())
    with migration_connection(engine) as new_connection:
        _configure_and_run(new_connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `autograde db upgrade`")
run_migrations_online()
