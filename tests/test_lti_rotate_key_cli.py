"""`autograde lti rotate-key`, run as the operator runs it (a real process) against a migrated
database of its own: the new key signs, and the old one stays in the published JWKS for the grace
period, then drops out of it. Real SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.lti import service as lti_service
from service.migrations import upgrade_database
from service.models import LtiToolKey
from tests.conftest import REPOSITORY_ROOT, create_scratch_database


def _rotate(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "lti", "rotate-key"],
        cwd=REPOSITORY_ROOT,
        env={"AUTOGRADE_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_operator_rotates_the_tools_key_from_the_command_line(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    try:
        upgrade_database(engine)
        factory = make_session_factory(engine)
        with factory() as session, session.begin():
            first = lti_service.rotate_tool_key(session, settings)

        done = _rotate(url)
        assert done.returncode == 0, done.stdout + done.stderr
        with factory() as session:
            kid, private_key = lti_service.signing_key(session, settings)
            assert kid != first
            assert done.stdout.startswith(f"new signing key {kid};")
            published = [key["kid"] for key in lti_service.tool_jwks(session, settings).keys]
            assert published == [kid, first]  # the old key stays for the grace period
            without_grace = settings.model_copy(update={"lti_key_grace_seconds": 0})
            assert [key["kid"] for key in lti_service.tool_jwks(session, without_grace).keys] == [kid]
            stored = session.scalars(select(LtiToolKey.private_key_encrypted)).all()
        assert len(stored) == 2
        assert "PRIVATE KEY" in private_key
        assert all("PRIVATE KEY" not in text for text in stored)  # encrypted at rest
    finally:
        engine.dispose()
        drop()
