"""The driver pair: one request through each adapter, reported the same way.

Not a test module. ``serve_asgi`` and ``serve_wsgi`` take the same
``Request`` (the id header's occurrences as a client sent them, how the
client spelled the name, how a WSGI server joins repeats, the id headers the
app sets itself) and return the same ``Served``: what the app saw and what
the server got. A test that compares the adapters, or runs one table through
both, uses these; a test about one adapter's own machinery (streaming,
exceptions, WebSocket) builds its own app with ``asgi_testing`` or
``wsgi_testing``.

Both drivers check the protocol on the way: the ASGI one that the caller's
scope is left as it was, the WSGI one both sides of the middleware with
``wsgiref.validate``; and both that no id is left bound afterwards. The ASGI
app never waits, so a request runs as one step of its coroutine, without an
event loop: a profiler around a driver sees the request and nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from asgi_testing import Recorder, http_scope, receive_empty_body, response_start
from asgi_testing import values_of as asgi_values
from wsgi_testing import environ_key, make_environ, run_wsgi, validated
from wsgi_testing import values_of as wsgi_values

from adapters import asgi, wsgi
from correlation import Config, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from adapters._types import Receive, Scope, Send

__all__ = [
    "DRIVERS",
    "Request",
    "Served",
    "run_to_completion",
    "serve_asgi",
    "serve_wsgi",
]


@dataclass(frozen=True)
class Request:
    """One HTTP request as the client sent it, and what the app will answer."""

    #: The id header's occurrences, raw, or ``None`` for no header.
    occurrences: Sequence[bytes] | None = None
    #: How the client spelled the header's name; ``None``: ``header_name``
    #: lowercased (ASGI servers lowercase names; a WSGI key has no case).
    wire_name: str | None = None
    #: How the WSGI server joins repeated occurrences into one environ value.
    joiner: str = ", "
    #: Id headers the app puts on its response itself: (spelling, value).
    app_headers: Sequence[tuple[str, str]] = ()
    #: Other request headers, raw, one (name, value) per occurrence: the
    #: fallback sources' headers, say.
    other_headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class Served:
    """What one request through one adapter came to."""

    #: ``get_request_id()`` inside the app.
    seen_id: str | None
    #: The request's ``header_name`` values as the app saw them (ASGI: one
    #: per header tuple; WSGI: the one environ value, if any).
    request_header: tuple[str, ...]
    #: ASGI ``scope["state"]["request_id"]``; WSGI
    #: ``environ["correlation.request_id"]``.
    stored: str | None
    #: The response's ``header_name`` values, in order.
    response_header: tuple[str, ...]
    #: Every request header (ASGI) or environ value (WSGI) the app got, as
    #: text: where a rejected value must not be.
    app_view: tuple[str, ...] = field(repr=False)
    #: ``get_request_id()`` in the server's code at each send (ASGI) or at
    #: ``start_response`` (WSGI).
    server_ids: tuple[str | None, ...]

    def texts(self) -> list[str]:
        """Every string the adapter wrote for the app and the server."""
        return [
            *(text for text in (self.seen_id, self.stored) if text is not None),
            *self.request_header,
            *self.response_header,
            *self.app_view,
        ]


def _header_name(config: Config | None) -> str:
    return (Config() if config is None else config).header_name


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else repr(value)


def run_to_completion(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits on anything, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise AssertionError("the request waited on something")


def serve_asgi(config: Config | None, request: Request) -> Served:
    """Serve *request* through the ASGI adapter in a hand-built HTTP scope.

    Each occurrence becomes one header tuple, as ASGI servers send them.
    """
    name = _header_name(config)
    key = name.encode("latin-1")
    wire = (name.lower() if request.wire_name is None else request.wire_name).encode(
        "latin-1"
    )
    own = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.app_headers]
    seen: list[tuple[str | None, Scope]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((get_request_id(), scope))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), *own],
            }
        )
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    headers = [(b"host", b"testserver")]
    headers += [(wire, value) for value in request.occurrences or []]
    headers += [(n.lower().encode("latin-1"), v) for n, v in request.other_headers]
    scope = http_scope(headers)
    original = copy.deepcopy(scope)
    sent = Recorder()
    middleware = asgi.RequestIdMiddleware(app, config=config)
    run_to_completion(middleware(scope, receive_empty_body, sent))
    assert get_request_id() is None, "the id outlived the request"
    assert scope == original, "the caller's scope was changed"
    ((seen_id, app_scope),) = seen
    start = response_start(sent)
    assert start["status"] == 200
    return Served(
        seen_id=seen_id,
        request_header=tuple(
            value.decode("latin-1") for value in asgi_values(app_scope["headers"], key)
        ),
        stored=app_scope.get("state", {}).get("request_id"),
        response_header=tuple(
            value.decode("latin-1") for value in asgi_values(start["headers"], key)
        ),
        app_view=tuple(
            _as_text(part) for pair in app_scope["headers"] for part in pair
        ),
        server_ids=tuple(sent.ids),
    )


def serve_wsgi(config: Config | None, request: Request) -> Served:
    """Serve *request* through the WSGI adapter as a WSGI server would.

    The occurrences are decoded latin-1 and joined with ``request.joiner``
    into the one ``HTTP_*`` value a server files them under.
    """
    name = _header_name(config)
    key = environ_key(name)
    headers = []
    if request.occurrences is not None:
        joined = request.joiner.join(v.decode("latin-1") for v in request.occurrences)
        headers.append(
            (name if request.wire_name is None else request.wire_name, joined)
        )
    # make_environ joins repeated names with ", ", as most servers do.
    headers += [(n, v.decode("latin-1")) for n, v in request.other_headers]
    seen: list[tuple[str | None, WSGIEnvironment]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append((get_request_id(), dict(environ)))
        start_response("200 OK", [("Content-Type", "text/plain"), *request.app_headers])
        return [b"ok"]

    middleware = wsgi.RequestIdMiddleware(validated(app), config=config)
    result = run_wsgi(validated(middleware), make_environ(headers))
    assert get_request_id() is None, "the id outlived the request"
    assert result.status == "200 OK"
    assert result.body == b"ok"
    ((seen_id, environ),) = seen
    return Served(
        seen_id=seen_id,
        request_header=(environ[key],) if key in environ else (),
        stored=environ.get("correlation.request_id"),
        response_header=tuple(wsgi_values(result.headers, name)),
        app_view=tuple(_as_text(value) for value in environ.values()),
        server_ids=tuple(call.request_id for call in result.server.calls),
    )


#: Both drivers, for ``pytest.mark.parametrize("serve", DRIVERS)``.
DRIVERS = [pytest.param(serve_asgi, id="asgi"), pytest.param(serve_wsgi, id="wsgi")]
