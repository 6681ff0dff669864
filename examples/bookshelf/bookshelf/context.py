"""The request id: set once per HTTP request, read by every log line the request causes."""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"

#: The id of the request being served; None outside a request.
request_id: ContextVar[str | None] = ContextVar("bookshelf_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Stamp each log record with the current request id (`%(request_id)s` in formats)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `record.request_id`, `-` outside a request; keep every record."""
        record.request_id = request_id.get() or "-"
        return True


class RequestIdMiddleware:
    """Take the request id from the `X-Request-ID` header (or make one) and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap the ASGI application `app`."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection with `request_id` set for its whole duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = Headers(scope=scope).get(HEADER) or uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(HEADER, rid)
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
