"""The error hierarchy of service/errors.py (and the framework's own errors) as JSON responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.dashboard.pages import SignInRequired, dashboard_error, is_dashboard, sign_in_redirect
from service.errors import AppError, TooManyRequests, error_body

logger = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves in the one shape {"error": {"code", "message", "details"}}; on the
    dashboard's pages it is a page with the same message instead."""

    @app.exception_handler(SignInRequired)
    async def sign_in_required(_request: Request, _error: SignInRequired) -> Response:
        return sign_in_redirect()

    @app.exception_handler(AppError)
    async def app_error(request: Request, error: AppError) -> Response:
        if is_dashboard(request):
            return dashboard_error(request, error.status_code, error.message)
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        if isinstance(error, TooManyRequests):
            headers = {"Retry-After": str(error.retry_after_seconds)}
        return JSONResponse(
            error_body(error.code, error.message, error.details),
            status_code=error.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        if is_dashboard(request):
            return dashboard_error(request, 422, "The form or the address has a value the page cannot take.")
        details = [
            {"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", ""))}
            for item in error.errors()[:20]
        ]
        return JSONResponse(
            error_body("invalid_request", "The request is malformed.", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if is_dashboard(request):
            return dashboard_error(request, error.status_code, str(error.detail))
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, error: OperationalError) -> Response:
        # The database is away (restarting, failing over): nothing was stored; the client retries
        # (with its Idempotency-Key) and gets the same submission, never a second one.
        logger.warning("database unavailable: %s", str(error).splitlines()[0][:200])
        if is_dashboard(request):
            return dashboard_error(request, 503, "The database is unavailable; retry shortly.")
        return JSONResponse(
            error_body("database_unavailable", "The database is unavailable; retry shortly."),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> Response:
        logger.exception("unhandled error")
        if is_dashboard(request):
            return dashboard_error(request, 500, "An unexpected error occurred; it has been logged.")
        return JSONResponse(error_body("internal_error", "An unexpected error occurred."), status_code=500)
