"""The migrations build exactly the schema the models describe, on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from service.config import Settings
from service.db import make_engine
from service.migrations import alembic_config, upgrade_database
from service.models import Base
from tests.conftest import create_scratch_database


def test_migrations_and_models_agree(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_and_downgrade_round_trip(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        config = alembic_config()
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        drop()
