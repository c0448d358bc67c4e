"""Dependencies shared by every router: settings, the request's transaction, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.auth.service import Principal, authenticate
from service.config import Settings
from service.db import commit_and_run_callbacks
from service.schemas import ErrorResponse
from service.worker.executor import Executor


def get_settings_dependency(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_executor(request: Request) -> Executor:
    executor: Executor = request.app.state.executor
    return executor


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed before the response is sent, rolled back on error."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
        commit_and_run_callbacks(session)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
# scope="function": the commit runs when the route returns, before the response goes out, so a
# client that got a 2xx can rely on the row being there.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(request: Request, session: DbSession) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return authenticate(session, token.strip() if scheme.lower() == "bearer" else None)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


_ERROR_DESCRIPTIONS = {
    400: "The body cannot be read (not UTF-8 or not JSON)",
    401: "Missing or invalid bearer token",
    403: "The caller may not see or change this",
    404: "Not found (or not visible to the caller)",
    409: "Conflicts with an earlier request",
    413: "Request body too large",
    422: "The request or an answer has the wrong form",
    429: "Too many submissions in the window; retry after `Retry-After` seconds",
    503: "A dependency (database, broker) does not answer",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can return, all in the one error shape."""
    return {code: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}
