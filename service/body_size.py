"""The body-size limit: requests over it are refused (413) before their body is read whole."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from service.errors import PayloadTooLarge, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodySizeLimit:
    """Refuse bodies over the limit before they are read whole (Content-Length or streamed)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_multipart_bytes: int | None = None,
        upload_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Uploads (multipart/form-data) may carry files up to their own limit on top.
        self.max_multipart_bytes = max_multipart_bytes or max_bytes
        # JSON bodies that carry files too (an LMS event with a notebook in base64) get that limit.
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        is_upload = headers.get(b"content-type", b"").startswith(b"multipart/form-data")
        is_upload = is_upload or scope.get("path") in self.upload_paths
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
