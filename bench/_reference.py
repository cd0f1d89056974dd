"""The reference middleware: the least a request-id middleware can do.

Written for the benchmark, as the issue describes it: read the header, set a
ContextVar, echo the header, reset. No validation, no list joining, no scope
copy, no body wrapping; ``uuid4().hex`` when the header is absent. Its overhead
is the yardstick the adapters' targets are ratios of. It is deliberately not
correct by the project's contract (a WSGI generator body runs after the reset,
a forged value is echoed as is): it is a floor, not an alternative.
"""

from __future__ import annotations

import typing
from contextvars import ContextVar
from uuid import uuid4

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    Scope = MutableMapping[str, typing.Any]
    Message = MutableMapping[str, typing.Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID: ContextVar[str | None] = ContextVar("bench.reference", default=None)

_ASGI_NAME = b"x-request-id"
_WSGI_KEY = "HTTP_X_REQUEST_ID"
_WSGI_NAME = "X-Request-ID"


class ReferenceASGI:
    """Minimal ASGI request-id middleware: the benchmark's yardstick."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the incoming (or a new) id around the app and echo it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value: bytes | None = None
        for name, raw in scope["headers"]:
            if name == _ASGI_NAME:
                value = raw
                break
        if value is None:
            request_id = uuid4().hex
            value = request_id.encode("latin-1")
        else:
            request_id = value.decode("latin-1")
        echo = value

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (_ASGI_NAME, echo)]
            await send(message)

        token = _REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _REQUEST_ID.reset(token)


class ReferenceWSGI:
    """Minimal WSGI request-id middleware: the benchmark's yardstick."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Bind the incoming (or a new) id around the app call and echo it."""
        request_id = environ.get(_WSGI_KEY) or uuid4().hex

        def start_response_with_id(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
            /,
        ) -> Callable[[bytes], object]:
            headers.append((_WSGI_NAME, request_id))
            return start_response(status, headers, exc_info)

        token = _REQUEST_ID.set(request_id)
        try:
            return self.app(environ, start_response_with_id)
        finally:
            _REQUEST_ID.reset(token)
