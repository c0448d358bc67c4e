"""create_app(): routers, middleware, error handlers and the executor's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.assignments.endpoints import router as assignments_router
from service.auth.endpoints import router as auth_router
from service.config import ExecutorKind, Settings, get_settings
from service.db import make_engine, make_session_factory
from service.errors import AppError, PayloadTooLarge, TooManyRequests
from service.health.endpoints import router as health_router
from service.openapi import operation_id, with_request_body_components
from service.submissions.endpoints import router as submissions_router
from service.worker.executor import Executor, NullExecutor
from service.worker.local import LocalExecutor

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


class BodySizeLimit:
    """Refuse bodies over the limit before they are read whole (Content-Length or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_multipart_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Uploads (multipart/form-data) may carry files up to their own limit on top.
        self.max_multipart_bytes = max_multipart_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        is_upload = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        limit = self.max_multipart_bytes if is_upload else self.max_bytes
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                declared = limit + 1
            if declared > limit:
                await self._refuse(send, limit)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send, limit: int) -> None:
        response = JSONResponse(
            error_body("payload_too_large", f"The request body exceeds {limit} bytes."),
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def create_executor(settings: Settings, session_factory: sessionmaker[Session] | None = None) -> Executor:
    if settings.executor is ExecutorKind.CELERY:
        from service.worker.celery_executor import CeleryExecutor

        return CeleryExecutor(settings, session_factory or make_session_factory(make_engine(settings)))
    if settings.local_workers == 0:
        return NullExecutor()
    return LocalExecutor(settings, settings.local_workers)


def create_app(settings: Settings | None = None, executor: Executor | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.executor.start()
        try:
            yield
        finally:
            app.state.executor.stop()
            engine.dispose()

    app = FastAPI(
        title="autograde",
        version="0.1.0",
        summary="Autograding for deep-learning courses",
        description=(
            "Students submit answers; the service grades them off the request path against the "
            "instructor's reference and stores the scores. "
            "Authenticate with `Authorization: Bearer <token>`. "
            'Every error has the shape `{"error": {"code", "message", "details"}}`.'
        ),
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.session_factory = make_session_factory(engine)
    app.state.executor = executor or create_executor(settings, app.state.session_factory)

    app.include_router(health_router)
    app.include_router(assignments_router)
    app.include_router(submissions_router)
    app.include_router(auth_router)
    app.openapi = with_request_body_components(app)  # type: ignore[method-assign]
    _install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        # Room for the JSON answers and two files of the upload limit.
        max_multipart_bytes=settings.max_body_bytes + 2 * settings.max_upload_bytes,
    )
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(_request: Request, error: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        if isinstance(error, TooManyRequests):
            headers = {"Retry-After": str(error.retry_after_seconds)}
        return JSONResponse(
            error_body(error.code, error.message, error.details),
            status_code=error.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", ""))}
            for item in error.errors()[:20]
        ]
        return JSONResponse(
            error_body("invalid_request", "The request is malformed.", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(OperationalError)
    async def database_unavailable(_request: Request, error: OperationalError) -> JSONResponse:
        # The database is away (restarting, failing over): nothing was stored; the client retries
        # (with its Idempotency-Key) and gets the same submission, never a second one.
        logger.warning("database unavailable: %s", str(error).splitlines()[0][:200])
        return JSONResponse(
            error_body("database_unavailable", "The database is unavailable; retry shortly."),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "An unexpected error occurred."), status_code=500)
