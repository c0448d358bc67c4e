"""What every route gets: settings, the executor, and the request's one unit of work.

A route's database work runs in ONE worker-thread call that opens the session, authenticates the
caller, runs the service, commits (then notifies the executor) and closes, before the response
is sent. Spreading it over several sync dependencies would hand a request from thread to thread
while it holds a pooled connection; under load every thread then waits for a connection that a
request waiting for a thread holds, until the pool times out. One call per request cannot
deadlock that way, and costs one thread hop instead of four.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.auth.service import Principal, authenticate
from service.config import Settings
from service.db import transaction
from service.schemas import ErrorResponse
from service.worker.executor import Executor

Result = TypeVar("Result")

bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`")


class RequestScope:
    def __init__(self, request: Request, token: str | None) -> None:
        self.settings: Settings = request.app.state.settings
        self.executor: Executor = request.app.state.executor
        self._session_factory: sessionmaker[Session] = request.app.state.session_factory
        self._token = token
        # GET and HEAD only read: on SQLite they must not queue for the write lock.
        self._read_only = request.method in ("GET", "HEAD")

    async def run(self, work: Callable[[Session, Principal], Result]) -> Result:
        """Run `work` for the authenticated caller in one transaction on a worker thread."""

        def authenticated(session: Session) -> Result:
            return work(session, authenticate(session, self._token))

        return await run_in_threadpool(self._in_transaction, authenticated)

    async def run_anonymous(self, work: Callable[[Session], Result]) -> Result:
        return await run_in_threadpool(self._in_transaction, work)

    def _in_transaction(self, work: Callable[[Session], Result]) -> Result:
        with transaction(
            self._session_factory, read_only=self._read_only, notify_jobs=self.executor.notify
        ) as session:
            return work(session)


async def request_scope(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> RequestScope:
    return RequestScope(request, credentials.credentials.strip() if credentials else None)


Scope = Annotated[RequestScope, Depends(request_scope)]


_ERROR_DESCRIPTIONS = {
    400: "The body cannot be read (not UTF-8 or not JSON)",
    401: "Missing or invalid bearer token",
    403: "The caller may not see or change this (or the assignment is not open, or past its deadline)",
    404: "Not found (or not visible to the caller)",
    409: "Conflicts with an earlier request",
    413: "Request body too large",
    422: "The request or an answer has the wrong form",
    429: "Too many requests (submissions, previews) in the window; retry after `Retry-After` seconds",
    503: "A dependency (database, broker) does not answer",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can return, all in the one error shape."""
    return {code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}
