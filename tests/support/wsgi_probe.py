"""A plain WSGI app for the live-server tests: it reports what it sees.

Not a test module, and importable on its own (standard library, ``adapters``
and ``correlation`` only), because gunicorn imports it in a worker process:
``python -m gunicorn 'wsgi_probe:build_app()'``.

``build_app()`` returns ``Recorder(checker(RequestIdMiddleware(routes)))``,
a new one per call, where *checker* is ``wsgiref.validate.validator`` or
werkzeug's ``LintMiddleware`` (werkzeug's server puts an int ``REMOTE_PORT``
in the environ, which the stricter wsgiref validator rejects). The endpoints
report ``get_request_id()``, the environ's two copies of the id and the
serving thread; bodies with a ``close()`` record what it saw. The
``Recorder``, outermost, checks that the server's own context never holds a
binding (before the adapter is called, after it returns, after every chunk
and after ``close()``) and answers ``GET /_records`` itself, outside the
adapter, so a test reads the records the same way from a server thread in its
own process and from a gunicorn worker.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal
from wsgiref.validate import validator

from werkzeug.middleware.lint import LintMiddleware

from adapters.wsgi import RequestIdMiddleware
from correlation import _context, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ENVIRON_KEY",
    "HEADER_KEY",
    "LINE_SIZE",
    "LONG_CHUNK",
    "LONG_LIMIT_SECONDS",
    "RECORDS_PATH",
    "STREAM_CHUNKS",
    "Checker",
    "Recorder",
    "build_app",
]

#: Answered by the ``Recorder`` itself: JSON with every record so far.
RECORDS_PATH = "/_records"
#: Every report line is padded to this many bytes, so each body has a known
#: Content-Length (waitress closes the connection after a body without one).
LINE_SIZE = 512
#: The lines ``/stream`` yields, each from a separate ``next()``.
STREAM_CHUNKS = 4
#: Size of each padding chunk ``/long`` yields after its first line.
LONG_CHUNK = 64 * 1024
#: ``/long`` gives up (and records ``"exhausted"``) after this long, so an
#: abandoned body that a server never stops iterating still ends by itself.
LONG_LIMIT_SECONDS = 15.0
#: Where the adapter files the id in the environ (the contract's fixed key).
ENVIRON_KEY = "correlation.request_id"
#: Where a server files the ``X-Request-ID`` request header.
HEADER_KEY = "HTTP_X_REQUEST_ID"

#: The WSGI conformance checker wrapped around the adapter.
Checker = Literal["wsgiref", "werkzeug"]


_CHECKERS: dict[Checker, Callable[[WSGIApplication], WSGIApplication]] = {
    "wsgiref": validator,
    "werkzeug": LintMiddleware,
}


def _headers(lines: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/x-ndjson"),
        ("Content-Length", str(lines * LINE_SIZE)),
    ]


def _report(environ: WSGIEnvironment, **extra: Any) -> dict[str, Any]:
    """What the app sees of its request, right now, in this thread."""
    thread = threading.current_thread()
    return {
        "context_id": get_request_id(),
        "environ_id": environ.get(ENVIRON_KEY),
        "header": environ.get(HEADER_KEY),
        "thread": thread.name,
        "ident": thread.ident,
        "pid": os.getpid(),
        "port": str(environ.get("REMOTE_PORT")),
        **extra,
    }


def _line(report: dict[str, Any]) -> bytes:
    """One JSON line, padded with spaces to exactly LINE_SIZE bytes."""
    text = json.dumps(report).encode()
    if len(text) >= LINE_SIZE:
        raise ValueError(f"report longer than {LINE_SIZE - 1} bytes: {text!r}")
    return text.ljust(LINE_SIZE - 1) + b"\n"


class _Store:
    """Records shared by every thread serving the app."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.closed = 0
        self.closes: list[dict[str, Any]] = []
        self.violations: list[str] = []

    def add(self, field: str, value: Any) -> None:
        with self.lock:
            getattr(self, field).append(value)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": self.calls,
                "closed": self.closed,
                "closes": list(self.closes),
                "violations": list(self.violations),
            }


# --- the endpoints ------------------------------------------------------------


def _id_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> list[bytes]:
    """A list body: the adapter's fast path, ended when the app returns."""
    start_response("200 OK", _headers(1))
    return [_line(_report(environ))]


def _stream_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterator[bytes]:
    """A generator body: every line is made by a later ``next()``."""
    start_response("200 OK", _headers(STREAM_CHUNKS))

    def lines() -> Iterator[bytes]:
        for index in range(STREAM_CHUNKS):
            yield _line(_report(environ, chunk=index))

    return lines()


class _ClosingBody:
    """A one-line body whose ``close()`` records the id it sees."""

    def __init__(self, environ: WSGIEnvironment, store: _Store) -> None:
        self.environ = environ
        self.store = store

    def __iter__(self) -> Iterator[bytes]:
        yield _line(_report(self.environ))

    def close(self) -> None:
        self.store.add("closes", _report(self.environ, path="/closing"))


def _long_body(environ: WSGIEnvironment, store: _Store) -> Iterator[bytes]:
    """One report line, then padding until closed or LONG_LIMIT_SECONDS pass."""
    sent = 0
    ended = "exhausted"
    padding = b"." * LONG_CHUNK
    deadline = time.monotonic() + LONG_LIMIT_SECONDS
    try:
        yield _line(_report(environ))
        sent = 1
        while time.monotonic() < deadline:
            yield padding
            sent += 1
    except GeneratorExit:
        ended = "closed"
        raise
    finally:
        store.add("closes", _report(environ, path="/long", ended=ended, chunks=sent))


class _Routes:
    """The app inside the adapter: a table of plain WSGI endpoints.

    ``/stream`` and ``/closing`` are wrapped in the checker too, which checks
    the environ and ``start_response`` the adapter hands on. The others are
    bare: a checker replaces a list body with its own iterator (hiding the
    adapter's list fast path) and complains when a body is never closed.
    """

    def __init__(
        self, store: _Store, check: Callable[[WSGIApplication], WSGIApplication]
    ) -> None:
        self.store = store
        self.stream = check(_stream_endpoint)
        self.closing = check(self._closing)

    def _closing(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        start_response("200 OK", _headers(1))
        return _ClosingBody(environ, self.store)

    def _long(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _long_body(environ, self.store)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        app: WSGIApplication
        if path == "/id":
            app = _id_endpoint
        elif path == "/stream":
            app = self.stream
        elif path == "/closing":
            app = self.closing
        elif path == "/long":
            app = self._long
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        return app(environ, start_response)


# --- the recording layer outside the adapter ----------------------------------


class _CheckedBody:
    """The body as the server sees it; checks the server's context as it goes."""

    def __init__(self, recorder: Recorder, result: Iterable[bytes], path: str) -> None:
        self.recorder = recorder
        self.result = result
        self.iterator = iter(result)
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self.iterator)
        self.recorder.check(f"after a chunk of {self.path}")
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.recorder.check(f"after close() of {self.path}")
            with self.recorder.store.lock:
                self.recorder.store.closed += 1


class Recorder:
    """Outermost layer: checks the server's context and serves the records."""

    def __init__(self, app: WSGIApplication, store: _Store) -> None:
        self.app = app
        self.store = store

    def check(self, where: str) -> None:
        """Record a violation if the server's own context holds a binding."""
        binding = _context._BINDING.get()
        if binding is not None:
            self.store.add("violations", f"{where}: {binding!r}")

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == RECORDS_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.store.snapshot()).encode()]
        with self.store.lock:
            self.store.calls += 1
        self.check(f"before {path}")
        try:
            result = self.app(environ, start_response)
        finally:
            self.check(f"after the call of {path}")
        return _CheckedBody(self, result, path)


def build_app(checker: Checker = "wsgiref") -> Recorder:
    """Return a new ``Recorder(checker(RequestIdMiddleware(routes)))``."""
    check = _CHECKERS[checker]
    store = _Store()
    return Recorder(check(RequestIdMiddleware(_Routes(store, check))), store)
