"""Paths with a NUL character are refused (404) before any route sees them.

A percent-encoded NUL (`%00`) arrives decoded in a path parameter (a course, an assignment, a
username, a question id); PostgreSQL refuses a NUL in a text parameter, so the first query with
it would fail with a 500. No slug, username or question id holds one: nothing by that name exists.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from service.body_size import ASGIApp, Receive, Scope, Send
from service.dashboard.pages import dashboard_error, is_dashboard
from service.errors import error_body


class NulFreePaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "\x00" in scope.get("path", ""):
            request = Request(scope)
            # The dashboard's pages answer with a page, the API with its error shape.
            response = (
                dashboard_error(request, 404, "There is no such page.")
                if is_dashboard(request)
                else JSONResponse(error_body("not_found", "Not Found"), status_code=404)
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
