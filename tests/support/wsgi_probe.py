"""WSGI apps for the live-server tests: each reports what it sees of the id.

Not a test module, and importable on its own (standard library, werkzeug,
``adapters`` and ``correlation``; Flask or Django only when a site mounts
them), because gunicorn imports it in a worker process:
``python -m gunicorn 'wsgi_probe:build_site("django", "werkzeug")'``.

``build_site(framework, checker)`` returns a new ``Recorder`` around a
dispatcher that mounts, each wrapped in the WSGI *checker*
(``wsgiref.validate.validator``, or werkzeug's ``LintMiddleware`` where the
server puts an int ``REMOTE_PORT`` in the environ, which the stricter
validator rejects):

- ``/probe`` and ``/probe-untrusted``: plain WSGI endpoints behind
  ``RequestIdMiddleware`` (the second with ``trust_incoming=False``);
- with ``"flask"``: ``/flask``, ``/flask-untrusted`` and ``/flask-propagate``
  (``PROPAGATE_EXCEPTIONS``), Flask apps from ``flask_probe``;
- with ``"django"``: ``/django`` and ``/django-untrusted``, Django's WSGI
  handler from ``django_probe``.

Every mounted app answers the same paths:

- ``/id``: one report line (what the handler sees);
- ``/stream``: ``STREAM_CHUNKS`` report lines, each made by a later
  ``next()`` after the handler returned;
- ``/closing``: one line; the body's ``close()`` records what it sees;
- ``/long``: one line, then padding until the server closes the body (or
  ``LONG_LIMIT_SECONDS`` pass); its end is recorded;
- ``/error``: raises ``RuntimeError(ERROR_MESSAGE)``.

A report holds ``get_request_id()``, the environ's copy of the id, the
request header as the app's framework shows it, and the serving thread and
process. Every handler, chunk and ``close()`` also logs a record through a
handler with ``RequestIdFilter``; so do Flask's and Django's own error logs.

The ``Recorder``, outermost, counts the calls, notes the ``X-Request-ID``
value the server handed over, checks that the server's own context never
holds a binding (before the call, after it, after every chunk and after
``close()``), and answers ``GET /_records`` (and ``/_reset``, which also
clears them) itself, outside every adapter: a test reads the records the same
way from a server thread in this process and from a gunicorn worker.
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from wsgiref.validate import validator

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.lint import LintMiddleware

from adapters.wsgi import RequestIdMiddleware
from correlation import Config, _context, get_request_id
from correlation.logging import RequestIdFilter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "ENVIRON_KEY",
    "ERROR_MESSAGE",
    "HEADER_KEY",
    "LINE_SIZE",
    "LONG_CHUNK",
    "LONG_LIMIT_SECONDS",
    "RECORDS_PATH",
    "RESET_PATH",
    "STREAM_CHUNKS",
    "UNTRUSTED",
    "Checker",
    "Framework",
    "LogCapture",
    "Recorder",
    "Site",
    "build_site",
    "check_with",
    "line",
    "log_seen",
    "long_body",
    "record_close",
    "report",
    "site_of",
    "stream_lines",
]

#: Answered by the ``Recorder`` itself: JSON with every record so far.
RECORDS_PATH = "/_records"
#: Like ``RECORDS_PATH``, and clears the records.
RESET_PATH = "/_reset"
#: Every report line is padded to this many bytes, so each body has a known
#: Content-Length (and a keep-alive connection can carry the next request).
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
#: The message of the exception every ``/error`` raises. It names no id: the
#: adapter's note is the only place a traceback can get one from.
ERROR_MESSAGE = "the /error endpoint failed on purpose"
#: The suffix of a mount whose adapter has ``trust_incoming=False``.
UNTRUSTED = "-untrusted"
#: Where the ``Recorder`` puts the ``Site`` for the apps inside.
SITE_KEY = "wsgi_probe.site"

#: The WSGI conformance checker wrapped around each mounted app.
Checker = Literal["wsgiref", "werkzeug"]
#: The framework a site mounts next to the plain probe.
Framework = Literal["", "flask", "django"]

_CHECKERS: dict[Checker, Callable[[WSGIApplication], WSGIApplication]] = {
    "wsgiref": validator,
    "werkzeug": LintMiddleware,
}

_site_numbers = itertools.count(1)


def check_with(checker: Checker) -> Callable[[WSGIApplication], WSGIApplication]:
    """Return the wrapper *checker* names."""
    return _CHECKERS[checker]


# --- the records ----------------------------------------------------------------


class _Store:
    """Records shared by every thread serving a site."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.calls = 0
        self.ended = 0
        self.arrivals: list[dict[str, Any]] = []
        self.closes: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.violations: list[str] = []

    def add(self, field: str, value: Any) -> None:
        with self.lock:
            getattr(self, field).append(value)

    def count(self, field: str) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)

    def snapshot(self, *, clear: bool = False) -> dict[str, Any]:
        with self.lock:
            snapshot = {
                "pid": os.getpid(),
                "calls": self.calls,
                "ended": self.ended,
                "arrivals": self.arrivals,
                "closes": self.closes,
                "logs": self.logs,
                "violations": self.violations,
            }
            if clear:
                self.clear()
            else:
                snapshot = {
                    key: list(value) if isinstance(value, list) else value
                    for key, value in snapshot.items()
                }
            return snapshot


class LogCapture(logging.Handler):
    """Keeps every record it handles, with the id ``RequestIdFilter`` gave it.

    The filter runs in the thread and context that logged, which is the
    point: a record from a streamed chunk or a ``close()`` callback must
    carry that request's id.
    """

    def __init__(self, store: _Store) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.store = store

    def emit(self, record: logging.LogRecord) -> None:
        self.store.add(
            "logs",
            {
                "logger": record.name,
                "request_id": record.__dict__["request_id"],
                "expect": record.__dict__.get("expect"),
                "where": record.__dict__.get("where"),
                "message": record.getMessage()[:200],
                "exc_info": record.exc_info is not None,
            },
        )


@dataclass
class Site:
    """One site's records and the logger its apps log through."""

    store: _Store
    capture: LogCapture
    logger: logging.Logger
    number: int
    attached: list[logging.Logger] = field(default_factory=list)

    def attach(self, logger: logging.Logger) -> None:
        """Send *logger*'s records to this site's records too."""
        logger.addHandler(self.capture)
        self.attached.append(logger)

    def detach_all(self) -> None:
        """Undo every ``attach`` (for a site served in this process)."""
        while self.attached:
            self.attached.pop().removeHandler(self.capture)


def site_of(environ: WSGIEnvironment) -> Site:
    """The ``Site`` the ``Recorder`` serving this request put in the environ."""
    site = environ[SITE_KEY]
    assert isinstance(site, Site)
    return site


# --- what every app reports -------------------------------------------------------


def report(
    environ: WSGIEnvironment, header: str | None, **extra: Any
) -> dict[str, Any]:
    """What the app sees of its request, right now, in this thread.

    *header* is the ``X-Request-ID`` request header as the app's framework
    shows it.
    """
    thread = threading.current_thread()
    return {
        "context_id": get_request_id(),
        "environ_id": environ.get(ENVIRON_KEY),
        "header": header,
        "thread": thread.name,
        "ident": thread.ident,
        "pid": os.getpid(),
        "port": str(environ.get("REMOTE_PORT")),
        **extra,
    }


def line(data: dict[str, Any]) -> bytes:
    """One JSON line, padded with spaces to exactly LINE_SIZE bytes."""
    text = json.dumps(data).encode()
    if len(text) >= LINE_SIZE:
        raise ValueError(f"report longer than {LINE_SIZE - 1} bytes: {text!r}")
    return text.ljust(LINE_SIZE - 1) + b"\n"


def log_seen(environ: WSGIEnvironment, where: str) -> None:
    """Log one record naming the id the environ holds, through the site logger."""
    site_of(environ).logger.info(
        "%s", where, extra={"expect": environ.get(ENVIRON_KEY), "where": where}
    )


def stream_lines(environ: WSGIEnvironment) -> Iterator[bytes]:
    """``STREAM_CHUNKS`` report lines, each made (and logged) when asked for."""
    for index in range(STREAM_CHUNKS):
        log_seen(environ, f"chunk {index}")
        yield line(report(environ, environ.get(HEADER_KEY), chunk=index))


def record_close(environ: WSGIEnvironment, path: str, **extra: Any) -> None:
    """Record (and log) what a body's ``close()`` sees."""
    log_seen(environ, f"close of {path}")
    site_of(environ).store.add(
        "closes", report(environ, environ.get(HEADER_KEY), path=path, **extra)
    )


def long_body(environ: WSGIEnvironment, header: str | None) -> Iterator[bytes]:
    """One report line, then padding until closed or LONG_LIMIT_SECONDS pass."""
    sent = 0
    ended = "exhausted"
    padding = b"." * LONG_CHUNK
    deadline = time.monotonic() + LONG_LIMIT_SECONDS
    try:
        yield line(report(environ, header))
        sent = 1
        while time.monotonic() < deadline:
            yield padding
            sent += 1
    except GeneratorExit:
        ended = "closed"
        raise
    finally:
        record_close(environ, "/long", ended=ended, chunks=sent)


def _length(lines: int) -> str:
    return str(lines * LINE_SIZE)


# --- the plain WSGI probe -----------------------------------------------------------


def _headers(lines: int) -> list[tuple[str, str]]:
    return [
        ("Content-Type", "application/x-ndjson"),
        ("Content-Length", _length(lines)),
    ]


def _id_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> list[bytes]:
    """A list body: the adapter's fast path, ended when the app returns."""
    log_seen(environ, "handler")
    start_response("200 OK", _headers(1))
    return [line(report(environ, environ.get(HEADER_KEY)))]


def _stream_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterator[bytes]:
    """A generator body: every line is made by a later ``next()``."""
    log_seen(environ, "handler")
    start_response("200 OK", _headers(STREAM_CHUNKS))
    return stream_lines(environ)


class _ClosingBody:
    """A one-line body whose ``close()`` records the id it sees."""

    def __init__(self, environ: WSGIEnvironment) -> None:
        self.environ = environ

    def __iter__(self) -> Iterator[bytes]:
        yield line(report(self.environ, self.environ.get(HEADER_KEY)))

    def close(self) -> None:
        record_close(self.environ, "/closing")


def _closing_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    log_seen(environ, "handler")
    start_response("200 OK", _headers(1))
    return _ClosingBody(environ)


def _long_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return long_body(environ, environ.get(HEADER_KEY))


def _error_endpoint(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """Lets its exception escape: no framework turns it into a response."""
    log_seen(environ, "handler")
    raise RuntimeError(ERROR_MESSAGE)


def _not_found(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """404 for every path no app is mounted at."""
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


class _Routes:
    """The probe inside the adapter: a table of plain WSGI endpoints.

    ``/stream`` and ``/closing`` are wrapped in the checker too, which checks
    the environ and ``start_response`` the adapter hands on. The others are
    bare: a checker replaces a list body with its own iterator (hiding the
    adapter's list fast path).
    """

    def __init__(self, check: Callable[[WSGIApplication], WSGIApplication]) -> None:
        self.routes: dict[str, WSGIApplication] = {
            "/id": _id_endpoint,
            "/stream": check(_stream_endpoint),
            "/closing": check(_closing_endpoint),
            "/long": _long_endpoint,
            "/error": _error_endpoint,
        }

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        app = self.routes.get(environ.get("PATH_INFO", ""), _not_found)
        return app(environ, start_response)


# --- the recording layer outside every adapter ------------------------------------


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
        try:
            return next(self.iterator)
        finally:
            self.recorder.check(f"after a chunk of {self.path}")

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.recorder.check(f"after close() of {self.path}")
            self.recorder.site.store.count("ended")


class Recorder:
    """Outermost layer: checks the server's context and serves the records."""

    def __init__(self, app: WSGIApplication, site: Site) -> None:
        self.app = app
        self.site = site

    def check(self, where: str) -> None:
        """Record a violation if the server's own context holds a binding."""
        binding = _context._BINDING.get()
        if binding is not None:
            self.site.store.add("violations", f"{where}: {binding!r}")

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        store = self.site.store
        if path in (RECORDS_PATH, RESET_PATH):
            body = json.dumps(store.snapshot(clear=path == RESET_PATH)).encode()
            start_response(
                "200 OK",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        raw = environ.get(HEADER_KEY)
        store.count("calls")
        store.add(
            "arrivals",
            {
                "path": path,
                "raw": None if raw is None else raw[:200],
                "raw_length": None if raw is None else len(raw),
                "ident": threading.get_ident(),
            },
        )
        self.check(f"before {path}")
        environ[SITE_KEY] = self.site
        try:
            result = self.app(environ, start_response)
        except BaseException:
            # The call ended here: there is no body for the server to close.
            store.count("ended")
            raise
        finally:
            self.check(f"after the call of {path}")
        return _CheckedBody(self, result, path)


def _new_site() -> Site:
    store = _Store()
    number = next(_site_numbers)
    logger = logging.getLogger(f"wsgi_probe.site{number}")
    logger.setLevel(logging.DEBUG)
    # The records are kept, not printed: one per chunk of every request.
    logger.propagate = False
    site = Site(store, LogCapture(store), logger, number)
    site.attach(logger)
    return site


def build_site(framework: Framework = "", checker: Checker = "wsgiref") -> Recorder:
    """Return a new ``Recorder`` around the probe and *framework*'s apps."""
    check = check_with(checker)
    site = _new_site()
    untrusted = Config(trust_incoming=False)
    mounts: dict[str, WSGIApplication] = {
        "/probe": check(RequestIdMiddleware(_Routes(check))),
        "/probe" + UNTRUSTED: check(
            RequestIdMiddleware(_Routes(check), config=untrusted)
        ),
    }
    if framework:
        # Imported on demand: a gunicorn worker serving Django never imports
        # Flask, and Django is configured once per process.
        module = importlib.import_module(f"{framework}_probe")
        mounts.update(module.build_mounts(site, check))
    return Recorder(DispatcherMiddleware(_not_found, mounts), site)
