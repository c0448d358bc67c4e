"""The executor interface. Jobs live in the database; an executor only gets told their ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Executor(Protocol):
    def start(self) -> None:
        """Start whatever runs the jobs (processes, connections)."""

    def notify(self, job_ids: Sequence[int]) -> None:
        """Jobs were committed and are ready; called only after the commit."""

    def stop(self) -> None:
        """Stop; jobs in flight are finished or left to expire and be claimed again."""

    def broker_problem(self) -> str | None:
        """Why the broker that carries this executor's jobs does not answer, or None (also when the
        jobs need no broker). Readiness asks this, so health knows no executor's internals."""


class NullExecutor:
    """For an API whose grading runs elsewhere (separate `autograde worker` processes poll)."""

    def start(self) -> None:
        return None

    def notify(self, job_ids: Sequence[int]) -> None:
        return None

    def stop(self) -> None:
        return None

    def broker_problem(self) -> str | None:
        return None
