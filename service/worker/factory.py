"""The executor a process runs, chosen by AUTOGRADE_EXECUTOR (and AUTOGRADE_LOCAL_WORKERS)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from service.config import ExecutorKind, Settings
from service.db import make_engine, make_session_factory
from service.worker.executor import Executor, NullExecutor
from service.worker.local import LocalExecutor


def create_executor(settings: Settings, session_factory: sessionmaker[Session] | None = None) -> Executor:
    if settings.executor is ExecutorKind.CELERY:
        from service.worker.celery_executor import CeleryExecutor

        return CeleryExecutor(settings, session_factory or make_session_factory(make_engine(settings)))
    if settings.local_workers == 0:
        return NullExecutor()
    return LocalExecutor(settings, settings.local_workers)
