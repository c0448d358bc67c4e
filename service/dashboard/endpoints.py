"""Signing in and out, the home page (the courses and assignments the caller teaches), and the
third-party browser assets, served by the service itself (no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from service.assignments.service import assignments_taught_by
from service.auth.service import MAX_TOKEN_LENGTH, authenticate
from service.dashboard.pages import (
    DASHBOARD_PATH,
    SESSION_COOKIE,
    Page,
    render,
    sign_in_redirect,
)
from service.errors import Forbidden, Unauthenticated

router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"], include_in_schema=False)

# The npm packages `make venv` installs (service/dashboard/assets/package.json), by the name the
# pages load them under; nothing else under node_modules is served.
ASSETS = Path(__file__).parent / "assets" / "node_modules"
VENDOR_FILES = {"htmx.min.js": ASSETS / "htmx.org" / "dist" / "htmx.min.js"}
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {path.name: path for path in STATIC.iterdir() if path.is_file()}
# A day: the files change only with a new release of the service.
ASSET_CACHE = "public, max-age=86400"


@router.get("/sign-in")
async def sign_in_form(scope: Page) -> Response:
    return render(scope, "sign_in.html", {"title": "Sign in"})


@router.post("/sign-in")
async def sign_in(scope: Page, token: Annotated[str, Form(max_length=MAX_TOKEN_LENGTH)]) -> Response:
    """A staff member's API token, checked, then kept in the session cookie."""
    token = token.strip()

    def check(session: Session) -> None:
        principal = authenticate(session, token)
        if not assignments_taught_by(session, principal):
            raise Forbidden("The dashboard is for the teaching staff of a course; this token is a student's.")

    try:
        await scope.run_anonymous(check)
    except Unauthenticated:
        return render(scope, "sign_in.html", {"title": "Sign in", "problem": "That token is not valid."}, 401)
    except Forbidden as error:
        return render(scope, "sign_in.html", {"title": "Sign in", "problem": error.message}, 403)
    response = RedirectResponse(DASHBOARD_PATH, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        secure=True,
        samesite="strict",
        path=DASHBOARD_PATH,
        max_age=scope.settings.dashboard_session_seconds,
    )
    return response


@router.post("/sign-out")
async def sign_out(scope: Page) -> Response:
    await scope.check_csrf()
    response = sign_in_redirect()
    response.delete_cookie(SESSION_COOKIE, path=DASHBOARD_PATH, secure=True, httponly=True, samesite="strict")
    return response


@router.get("")
async def home(scope: Page) -> Response:
    principal, assignments = await scope.run(
        lambda session, principal: (principal, assignments_taught_by(session, principal))
    )
    if not assignments:
        raise Forbidden("The dashboard is for the teaching staff of a course.")
    return render(
        scope, "home.html", {"title": "Courses", "user": principal.username, "assignments": assignments}
    )


@router.get("/vendor/{name}")
async def vendor_asset(name: str) -> Response:
    path = VENDOR_FILES.get(name)
    if path is None or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, headers={"Cache-Control": ASSET_CACHE})


@router.get("/static/{name}")
async def static_asset(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, headers={"Cache-Control": ASSET_CACHE})
