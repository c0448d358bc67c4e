"""What every dashboard page gets: the signed-in staff member, the request's one unit of work, the
templates, CSRF protection, and errors shown as a page rather than as JSON.

The staff member's API token is kept in an HTTP-only, Secure, SameSite=Strict cookie scoped to
/dashboard (never in a URL or in local storage); each request authenticates it as the API does, so
revoking the token signs the dashboard out too. Every state-changing request carries a CSRF token
derived from the cookie's token (an HMAC under the service's secret key): a page of another site can
neither read it nor, with SameSite=Strict, send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from service.api import RequestScope
from service.auth.service import Principal, hash_token
from service.config import Settings
from service.errors import AppError, Forbidden, Unauthenticated

Result = TypeVar("Result")

SESSION_COOKIE = "autograde_dashboard"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
DASHBOARD_PATH = "/dashboard"
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


class SignInRequired(Exception):
    """No valid staff token in the cookie: the page sends the browser to the sign-in form."""


def csrf_token(settings: Settings, api_token: str) -> str:
    key = settings.secret_key.encode()
    return hmac.new(key, b"csrf:" + hash_token(api_token).encode(), hashlib.sha256).hexdigest()


class DashboardScope:
    """One dashboard request: the cookie's token, and work run as the API runs it (one transaction
    on a worker thread, service.api.RequestScope), signing in again when the token is not valid."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.settings: Settings = request.app.state.settings
        self.token: str | None = request.cookies.get(SESSION_COOKIE)
        self._api = RequestScope(request, self.token)

    @property
    def csrf(self) -> str:
        return csrf_token(self.settings, self.token or "")

    async def run(self, work: Callable[[Session, Principal], Result]) -> Result:
        """Run `work` for the signed-in user; SignInRequired if the cookie holds no valid token."""
        try:
            return await self._api.run(work)
        except Unauthenticated:
            raise SignInRequired from None

    async def run_anonymous(self, work: Callable[[Session], Result]) -> Result:
        return await self._api.run_anonymous(work)

    async def check_csrf(self) -> dict[str, Any]:
        """The form of a state-changing request, after its CSRF token (form field or header) and
        its Origin (when the browser sends one) are checked; Forbidden otherwise."""
        form = dict(await self.request.form()) if _is_form(self.request) else {}
        sent = self.request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not self.token or not hmac.compare_digest(sent, self.csrf):
            raise Forbidden("The form is stale or came from another site; reload the page and try again.")
        origin = self.request.headers.get("origin")
        if origin is not None and origin != _own_origin(self.request):
            raise Forbidden("The request came from another site.")
        return form


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    return content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def dashboard_scope(request: Request) -> DashboardScope:
    return DashboardScope(request)


Page = Annotated[DashboardScope, Depends(dashboard_scope)]


def render(
    scope: DashboardScope, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page from its template, with what every page's layout needs (the CSRF token, the user)."""
    return TEMPLATES.TemplateResponse(
        scope.request,
        template,
        {"csrf_token": scope.csrf, "csrf_field": CSRF_FIELD, "csrf_header": CSRF_HEADER} | context,
        status_code=status_code,
    )


def is_dashboard(request: Request) -> bool:
    return request.url.path == DASHBOARD_PATH or request.url.path.startswith(DASHBOARD_PATH + "/")


def dashboard_error(request: Request, status_code: int, message: str) -> Response:
    """An error raised anywhere in a dashboard request, as a page with its message."""
    if status_code == 401:
        return sign_in_redirect()
    scope = DashboardScope(request)
    title = _ERROR_TITLES.get(status_code, "Something went wrong")
    return render(scope, "error.html", {"title": title, "message": message}, status_code=status_code)


def error_page(scope: DashboardScope, error: AppError) -> Response:
    """An API error as a page: its message, never a stack trace or a blank page."""
    if isinstance(error, Unauthenticated):
        return sign_in_redirect()
    return dashboard_error(scope.request, error.status_code, error.message)


def sign_in_redirect() -> RedirectResponse:
    return RedirectResponse(f"{DASHBOARD_PATH}/sign-in", status_code=303)


_ERROR_TITLES = {
    403: "Not allowed",
    404: "Not found",
    409: "Changed meanwhile",
    413: "Too large",
    422: "Cannot accept this",
    429: "Too many requests",
}
