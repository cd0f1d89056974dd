"""The bare applications every benchmark row wraps, and the end-to-end apps.

A bare app does the least an endpoint can: answer ``200 ok`` with two headers.
It neither reads the request id nor the body, so a row's cost minus the bare
row's cost is the middleware's own overhead. The streaming factories send the
same answer in *chunks* body messages (ASGI) or yielded chunks (WSGI).

The module-level ``asgi_*`` and ``wsgi_*`` objects are what ``e2e.py`` hands to
uvicorn, waitress and gunicorn (``_apps:asgi_ours`` and so on).
"""

from __future__ import annotations

import typing

from _reference import ReferenceASGI, ReferenceWSGI

from adapters import asgi, wsgi

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from adapters._types import Receive, Scope, Send

    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY = b"ok"
CHUNK = b"0123456789abcdef"
#: The id the benchmark's requests carry, and the one the ``echo`` apps send.
HEADER_VALUE = "0f8fad5bd9cb469fa16570867728950e"


async def asgi_bare(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``200 ok`` to an HTTP request; ignore other scope types."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


async def asgi_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The bare app, with a constant ``X-Request-ID`` response header of its own.

    It prices what a server charges for the header every request-id
    middleware adds (``e2e_instructions.py``).
    """
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", b"2"),
                (b"x-request-id", HEADER_VALUE.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def make_asgi_stream(chunks: int) -> ASGIApp:
    """Return an ASGI app that streams *chunks* body messages of 16 bytes."""

    async def asgi_stream(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for _ in range(chunks - 1):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": CHUNK})

    return asgi_stream


def wsgi_bare(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Answer ``200 ok`` with a list body (a server sees its length)."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [BODY]


def wsgi_echo(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """The bare app, with a constant ``X-Request-ID`` response header of its own."""
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", "2"),
            ("X-Request-ID", HEADER_VALUE),
        ],
    )
    return [BODY]


def make_wsgi_stream(chunks: int) -> WSGIApplication:
    """Return a WSGI app whose body is a generator of *chunks* 16-byte chunks."""

    def body() -> Iterator[bytes]:
        for _ in range(chunks):
            yield CHUNK

    def wsgi_stream(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body()

    return wsgi_stream


# The end-to-end apps: the bare app, and the same app behind each middleware.
asgi_ours = asgi.RequestIdMiddleware(asgi_bare)
asgi_reference = ReferenceASGI(asgi_bare)
wsgi_ours = wsgi.RequestIdMiddleware(wsgi_bare)
wsgi_reference = ReferenceWSGI(wsgi_bare)
