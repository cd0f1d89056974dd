"""The two apps the soak test serves from long-lived server processes.

Not a test module. A server subprocess imports it (this folder is on its
``PYTHONPATH``):

- ``python -m soak_apps uvicorn --fd N``: ``asgi_app``, a Starlette app
  behind the ASGI adapter, served by uvicorn;
- ``python -m soak_apps waitress --fd N``: ``wsgi_app``, a plain WSGI app
  behind the WSGI adapter, served by waitress;

each on the listening socket *N* the process inherited. SIGTERM stops either
gracefully.

Both apps answer ``/id``, ``/stream`` and one more path (``/sync`` on ASGI, a
Starlette endpoint run in the thread pool; ``/closing`` on WSGI, a body whose
``close()`` checks the id) by reporting the id they see. Around the adapter
sits a watching layer, outermost, which checks that the server's own context
never holds a live id before or after a request (a WSGI thread's context must
hold nothing at all), counts the requests served and answers ``GET /_diag``
itself, outside the adapter: JSON with the id its own context holds, whether
the copies of request contexts the endpoints kept (the latest
``KEPT_COPIES``, as work outliving a request would hold them) still read an
id, the ``Binding`` objects still alive after ``gc.collect()``, the asyncio
tasks (ASGI) and threads alive, and the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import os
import signal
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from adapters import asgi, wsgi
from correlation import _context, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from adapters._types import ASGIApp, Receive, Scope, Send

__all__ = [
    "DIAG_PATH",
    "KEPT_COPIES",
    "LINE_SIZE",
    "STREAM_CHUNKS",
    "asgi_app",
    "build_asgi_app",
    "build_wsgi_app",
    "main",
    "wsgi_app",
]

#: Answered by the watching layer itself, outside the adapter.
DIAG_PATH = "/_diag"
#: The lines a ``/stream`` body yields, each made as it is sent.
STREAM_CHUNKS = 4
#: Every WSGI report line is padded to this many bytes, so each body has a
#: known Content-Length and waitress keeps the connection open.
LINE_SIZE = 192
#: At most this many violation messages are kept (all are counted): a broken
#: adapter must not make the server's memory grow with the load.
_KEPT_VIOLATIONS = 20
#: At most this many distinct client addresses are remembered, for the same
#: reason; the test only needs to know the count stayed small.
_KEPT_CLIENTS = 1000
#: Copies of request contexts kept for the diagnostics (the latest ones).
KEPT_COPIES = 64


class _Watch:
    """Counts shared by every thread and task serving the app."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.served = 0
        self.stale_starts = 0
        self.violation_count = 0
        self.violations: list[str] = []
        self.clients: set[str] = set()
        # Contexts copied while requests ran, as a task or callback that
        # outlives its request would hold them: they must read no id later.
        self.copies: deque[contextvars.Context] = deque(maxlen=KEPT_COPIES)
        #: (copies checked, copies that read an id) of the last check.
        self.last_check = (0, 0)

    def keep_copy(self) -> None:
        """Keep a copy of the current context, as work outliving it would."""
        self.copies.append(contextvars.copy_context())

    def violation(self, message: str) -> None:
        with self.lock:
            self.violation_count += 1
            if len(self.violations) < _KEPT_VIOLATIONS:
                self.violations.append(message)

    def served_one(self, client: object, *, stale: bool = False) -> None:
        with self.lock:
            self.served += 1
            self.stale_starts += stale
            if len(self.clients) < _KEPT_CLIENTS:
                self.clients.add(repr(client))

    def report(self, **extra: Any) -> bytes:
        """The diagnostics, as JSON; call it outside any request.

        Once no request is in flight it checks the kept context copies, then
        lets them go, so that the ``Binding`` count that follows shows only
        what the server keeps. While one is (a WSGI ``close()`` not called
        yet), the copies wait: a copy that request took may rightly read its
        id. The report gives the last check that found copies.
        """
        bindings = _bindings()
        if self.copies and not _bindings_in_flight(bindings):
            copies = [self.copies.popleft() for _ in range(len(self.copies))]
            self.last_check = (
                len(copies),
                sum(copy.run(get_request_id) is not None for copy in copies),
            )
            # Count again without what only the copies (and this list) held.
            del copies, bindings
            bindings = _bindings()
        copies_checked, copies_with_id = self.last_check
        with self.lock:
            counts = {
                "served": self.served,
                "stale_starts": self.stale_starts,
                "violation_count": self.violation_count,
                "violations": list(self.violations),
                "clients": len(self.clients),
            }
        return json.dumps(
            {
                "pid": os.getpid(),
                "request_id": get_request_id(),
                "binding_in_context": _context._BINDING.get() is not None,
                "bindings": len(bindings),
                "bindings_in_flight": _bindings_in_flight(bindings),
                "threads": threading.active_count(),
                "gc_collected": _COLLECTOR.collected,
                "copies_checked": copies_checked,
                "copies_with_id": copies_with_id,
                **counts,
                **extra,
            }
        ).encode()


class _Collector:
    """Counts what the cyclic garbage collector frees on its own.

    A served request should be freed by reference counting when the server
    drops it; objects only the collector frees are reference cycles the
    serving left behind (and memory that grows between its runs). The
    diagnostics' own ``gc.collect()`` is not counted.
    """

    def __init__(self) -> None:
        self.collected = 0
        self.explicit = False
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and not self.explicit:
            self.collected += info["collected"]

    def collect(self) -> None:
        """Run a full collection that the count leaves out."""
        self.explicit = True
        try:
            gc.collect()
        finally:
            self.explicit = False


_COLLECTOR = _Collector()


def _bindings() -> list[_context.Binding]:
    """Every ``Binding`` alive after a collection: plain or an adapter's own."""
    _COLLECTOR.collect()
    return [o for o in gc.get_objects() if isinstance(o, _context.Binding)]


def _bindings_in_flight(bindings: list[_context.Binding]) -> int:
    return sum(binding.request_id is not None for binding in bindings)


def _line(report: dict[str, Any]) -> bytes:
    """One JSON line, padded with spaces to exactly LINE_SIZE bytes."""
    text = json.dumps(report).encode()
    if len(text) >= LINE_SIZE:
        raise ValueError(f"report longer than {LINE_SIZE - 1} bytes: {text!r}")
    return text.ljust(LINE_SIZE - 1) + b"\n"


# --- ASGI -------------------------------------------------------------------


def _asgi_report(request: Request) -> dict[str, Any]:
    return {
        "id": get_request_id(),
        "state": request.state.request_id,
        "header": request.headers.getlist("x-request-id"),
    }


class _AsgiEndpoints:
    """The Starlette endpoints; each keeps a copy of its request's context."""

    def __init__(self, watch: _Watch) -> None:
        self.watch = watch

    async def id(self, request: Request) -> JSONResponse:
        self.watch.keep_copy()
        return JSONResponse(_asgi_report(request))

    def sync(self, request: Request) -> JSONResponse:
        # A plain method: Starlette runs it in its thread pool.
        self.watch.keep_copy()
        return JSONResponse(_asgi_report(request))

    async def stream(self, request: Request) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for index in range(STREAM_CHUNKS):
                # Let other requests run between chunks.
                await asyncio.sleep(0)
                yield _line({"chunk": index, "id": get_request_id()})
            self.watch.keep_copy()

        return StreamingResponse(lines(), media_type="application/x-ndjson")


class _AsgiWatch:
    """Pure ASGI layer around the adapter; answers ``/_diag`` itself."""

    def __init__(self, app: ASGIApp, watch: _Watch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == DIAG_PATH:
            body = self.watch.report(tasks=len(asyncio.all_tasks()))
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        # uvicorn may start a request in a copy of an earlier request's
        # context (uvicorn issue 2167): an ended binding there is allowed, a
        # live id is not.
        before = _context._BINDING.get()
        if get_request_id() is not None:
            self.watch.violation(f"live id {get_request_id()!r} before the adapter")
        try:
            await self.app(scope, receive, send)
        finally:
            after = _context._BINDING.get()
            if after is not before:
                self.watch.violation(f"context not restored: {before!r} -> {after!r}")
            self.watch.served_one(scope.get("client"), stale=before is not None)


def build_asgi_app() -> _AsgiWatch:
    """Return a new watched Starlette app behind the ASGI adapter."""
    watch = _Watch()
    endpoints = _AsgiEndpoints(watch)
    routes = Starlette(
        routes=[
            Route("/id", endpoints.id),
            Route("/sync", endpoints.sync),
            Route("/stream", endpoints.stream),
        ]
    )
    return _AsgiWatch(asgi.RequestIdMiddleware(routes), watch)


# --- WSGI -------------------------------------------------------------------


def _wsgi_headers(lines: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/x-ndjson"),
        ("Content-Length", str(lines * LINE_SIZE)),
    ]


def _wsgi_report(environ: WSGIEnvironment) -> dict[str, Any]:
    return {
        "id": get_request_id(),
        "state": environ.get("correlation.request_id"),
        "header": [environ["HTTP_X_REQUEST_ID"]]
        if "HTTP_X_REQUEST_ID" in environ
        else [],
    }


class _ClosingBody:
    """A one-line body whose ``close()`` checks it still sees the same id."""

    def __init__(self, environ: WSGIEnvironment, watch: _Watch) -> None:
        self.report = _wsgi_report(environ)
        self.watch = watch

    def __iter__(self) -> Iterator[bytes]:
        yield _line(self.report)

    def close(self) -> None:
        self.watch.keep_copy()
        seen = get_request_id()
        if seen != self.report["id"]:
            self.watch.violation(f"close() saw {seen!r}, not {self.report['id']!r}")


class _WsgiRoutes:
    """The app inside the adapter."""

    def __init__(self, watch: _Watch) -> None:
        self.watch = watch

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/id":
            # A list body: the adapter's fast path.
            self.watch.keep_copy()
            start_response("200 OK", _wsgi_headers(1))
            return [_line(_wsgi_report(environ))]
        if path == "/stream":
            # A generator body: each line is made after the app returned.
            start_response("200 OK", _wsgi_headers(STREAM_CHUNKS))
            return self._lines()
        if path == "/closing":
            start_response("200 OK", _wsgi_headers(1))
            return _ClosingBody(environ, self.watch)
        start_response("404 Not Found", [("Content-Length", "0")])
        return []

    def _lines(self) -> Iterator[bytes]:
        for index in range(STREAM_CHUNKS):
            yield _line({"chunk": index, "id": get_request_id()})
        self.watch.keep_copy()


class _WatchedBody:
    """The adapter's body; the thread's context is checked around each step."""

    def __init__(self, body: Iterable[bytes], watch: _Watch, client: str) -> None:
        self.iterator = iter(body)
        self.body = body
        self.watch = watch
        self.client = client

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self.iterator)
        _check_thread_context(self.watch, "after a chunk")
        return chunk

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        try:
            if close is not None:
                close()
        finally:
            _check_thread_context(self.watch, "after close()")
            self.watch.served_one(self.client)


def _check_thread_context(watch: _Watch, when: str) -> None:
    # The WSGI adapter runs the request in a copy of the thread's context, so
    # the thread's own context must hold no binding at all, ended or not.
    binding = _context._BINDING.get()
    if binding is not None:
        watch.violation(f"{binding!r} in {threading.current_thread().name} {when}")


class _WsgiWatch:
    """WSGI layer around the adapter; answers ``/_diag`` itself."""

    def __init__(self, app: WSGIApplication, watch: _Watch) -> None:
        self.app = app
        self.watch = watch

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ["PATH_INFO"] == DIAG_PATH:
            report = self.watch.report(
                tasks=None,
                thread_names=sorted(t.name for t in threading.enumerate()),
            )
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(report))),
                ],
            )
            return [report]
        _check_thread_context(self.watch, "before the adapter")
        body = self.app(environ, start_response)
        _check_thread_context(self.watch, "after the adapter returned")
        client = f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}"
        return _WatchedBody(body, self.watch, client)


def build_wsgi_app() -> _WsgiWatch:
    """Return a new watched plain WSGI app behind the WSGI adapter."""
    watch = _Watch()
    return _WsgiWatch(wsgi.RequestIdMiddleware(_WsgiRoutes(watch)), watch)


asgi_app = build_asgi_app()
wsgi_app = build_wsgi_app()


# --- the launcher ---------------------------------------------------------------


def _stop(signum: int, frame: FrameType | None) -> None:
    # waitress's loop catches SystemExit, stops its workers and returns.
    raise SystemExit(0)


def _serve_uvicorn(listener: socket.socket, http: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        asgi_app,
        http=http,
        loop="asyncio",
        lifespan="off",
        ws="none",
        access_log=False,
        log_level="warning",
        # Connections stay open between the test's phases.
        timeout_keep_alive=60,
        timeout_graceful_shutdown=5,
    )
    # uvicorn handles SIGTERM itself: a graceful shutdown, then it re-raises
    # the signal, so the process ends with status -SIGTERM.
    uvicorn.Server(config).run(sockets=[listener])


def _serve_waitress(listener: socket.socket, threads: int) -> None:
    from waitress import wasyncore
    from waitress.server import create_server

    # waitress fills it with its dispatchers (the stubs say sockets).
    socket_map: dict[int, Any] = {}
    server = create_server(
        wsgi_app, map=socket_map, sockets=[listener], threads=threads
    )
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.run()
    finally:
        # run() has stopped the workers; close every socket it still holds
        # (the listener, open connections, its trigger).
        wasyncore.close_all(socket_map)


def main(argv: list[str] | None = None) -> None:
    """Serve an app on the listening socket this process inherited.

    ``uvicorn`` serves ``asgi_app``, ``waitress`` serves ``wsgi_app``. The
    socket is wrapped with ``socket.socket(fileno=N)``, which reads its real
    family. (``uvicorn --fd N`` wraps it as ``AF_UNIX`` whatever it is, so
    asyncio never sets ``TCP_NODELAY`` on the connections, and every response
    written in two parts waits about 40 ms for the client's delayed ACK.)
    """
    parser = argparse.ArgumentParser(prog="python -m soak_apps")
    parser.add_argument("server", choices=["uvicorn", "waitress"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--threads", type=int, default=4, help="waitress only")
    parser.add_argument("--http", default="h11", help="uvicorn only")
    args = parser.parse_args(argv)

    listener = socket.socket(fileno=args.fd)
    if args.server == "uvicorn":
        _serve_uvicorn(listener, args.http)
    else:
        _serve_waitress(listener, args.threads)


if __name__ == "__main__":
    main()
