"""ASGI apps for the server-matrix tests: they report what they see.

Not a test module, and importable on its own, because server subprocesses
import it: granian with ``--factory asgi_probe:fastapi_app``, daphne and
gunicorn through ``asgi_probe_django``. Importing it builds nothing.

Each app is ``Recorder(...)`` around three adapter stacks:

- ``RequestIdMiddleware(framework_app)`` for every path but those below;
- ``RequestIdMiddleware(framework_app, config=Config(trust_incoming=False))``
  for ``/untrusted``;
- ``RequestIdMiddleware(starlette_app)`` for ``/escape``, whose endpoint
  raises: Starlette's ``ServerErrorMiddleware`` (inside the adapter) answers
  500 and re-raises, so the exception reaches the server;
- ``RequestIdMiddleware(raw_app)`` for ``/raw-error``, which raises before it
  sends anything, so the server itself answers.

Every request carries a token in its query string (``?t=...``). The endpoints
answer with JSON lines naming the ids they saw; they also log events, with the
token in the message, to the ``asgi_probe.app`` logger, whose capturing
handler has ``correlation.logging.RequestIdFilter`` attached. The
``Recorder``, outermost, notes what the server's own context holds before the
adapter is called and after it returns, and answers ``GET /_records?t=prefix``
itself, outside every adapter, with everything recorded for tokens starting
with *prefix*.

``wsgi_app()`` puts the same ``Recorder`` around a plain WSGI app wrapped by
``adapters.wsgi.RequestIdMiddleware`` and hosted by a bridge (a2wsgi or
asgiref's ``WsgiToAsgi``), for the WSGI adapter on an ASGI server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qs

import a2wsgi
from asgiref.wsgi import WsgiToAsgi
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from adapters import wsgi
from adapters._types import ASGIApp, Message, Receive, Scope, Send, WrappedApp
from adapters.asgi import RequestIdMiddleware
from correlation import Config, _context, get_request_id
from correlation.logging import RequestIdFilter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "HEADER",
    "LINGER_SECONDS",
    "LOGGER_NAME",
    "LONG_LIMIT_SECONDS",
    "RECORDS_PATH",
    "STREAM_CHUNKS",
    "Framework",
    "Recorder",
    "Store",
    "build_app",
    "capture_logs",
    "escape_message",
    "fastapi_app",
    "linger_async",
    "linger_sync",
    "linger_target",
    "log_event",
    "long_chunks",
    "report",
    "request_token",
    "starlette_app",
    "stream_lines",
    "wsgi_app",
]

#: Answered by the ``Recorder`` itself: JSON with the records so far.
RECORDS_PATH = "/_records"
#: The header the adapters read, as servers hand it over (lower case).
HEADER = b"x-request-id"
#: The lines ``/stream`` sends, each made after an ``await``.
STREAM_CHUNKS = 4
#: ``/long`` stops by itself (and records ``"exhausted"``) after this long.
LONG_LIMIT_SECONDS = 8.0
#: Size of each padding chunk ``/long`` sends after its first line.
LONG_CHUNK = 16 * 1024
#: Whose records the capturing handler keeps.
LOGGER_NAME = "asgi_probe.app"
#: How long ``/linger`` waits, after its response, for the next request. The
#: wait ends as soon as it arrives; the limit only has to outlast a loaded
#: machine's client reading the response and sending the next request (with
#: client and server sharing one GIL under coverage for the in-thread servers).
#: daphne must let an app run longer: asgi_servers.DAPHNE_CLOSE_TIMEOUT.
LINGER_SECONDS = 8.0
#: Header values longer than this in total are recorded by size only.
_KEEP_SENT = 4096

Framework = Literal["starlette", "fastapi", "django"]


class Store:
    """Everything one app recorded, shared by the tasks and threads serving it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: One entry per request the Recorder passed on.
        self.seen: list[dict[str, Any]] = []
        #: Log records the capturing handler took while this app served.
        self.logs: list[dict[str, Any]] = []
        #: How each ``/long`` body and each ``/linger`` wait ended.
        self.ends: list[dict[str, Any]] = []
        #: Tokens of every request that reached the Recorder so far.
        self.arrived: set[str] = set()

    def has_arrived(self, token: str) -> bool:
        with self.lock:
            return token in self.arrived

    def add(
        self, field: Literal["seen", "logs", "ends"], entry: dict[str, Any]
    ) -> None:
        with self.lock:
            getattr(self, field).append(entry)

    def snapshot(self, prefix: str) -> dict[str, Any]:
        with self.lock:
            return {
                field: [e for e in getattr(self, field) if e["t"].startswith(prefix)]
                for field in ("seen", "logs", "ends")
            }


#: The store and token of the request being served in this context; set by
#: the Recorder, so log records and ``/long`` endings land in the right app.
_CURRENT: ContextVar[tuple[Store, str] | None] = ContextVar(
    "asgi_probe.current", default=None
)

_LOG = logging.getLogger(LOGGER_NAME)


class _CaptureHandler(logging.Handler):
    """Keeps each record with the ``request_id`` the filter put on it."""

    def emit(self, record: logging.LogRecord) -> None:
        current = _CURRENT.get()
        if current is None:
            return
        store, token = current
        store.add(
            "logs",
            {
                "t": token,
                "logger": record.name,
                "request_id": record.__dict__.get("request_id"),
                "message": record.getMessage(),
            },
        )


def capture_logs(*logger_names: str) -> None:
    """Attach the capturing handler (with ``RequestIdFilter``) to the loggers.

    Idempotent. ``asgi_probe.app`` is always included; it logs at INFO and
    does not propagate, so its records stay out of the server's own log.
    """
    _LOG.setLevel(logging.INFO)
    _LOG.propagate = False
    for name in (LOGGER_NAME, *logger_names):
        logger = logging.getLogger(name)
        # A server's logging setup may disable loggers that existed before it.
        logger.disabled = False
        if not any(isinstance(h, _CaptureHandler) for h in logger.handlers):
            handler = _CaptureHandler()
            handler.addFilter(RequestIdFilter())
            logger.addHandler(handler)


def request_token(scope: Mapping[str, Any]) -> str:
    """The ``t`` query parameter of *scope*'s request, or ``""``."""
    raw: bytes = scope.get("query_string", b"")
    query = parse_qs(raw.decode("latin-1"))
    return query.get("t", [""])[0]


def log_event(event: str, scope: Mapping[str, Any]) -> None:
    """Log *event* with the request's token, to be captured with its id."""
    _LOG.info("%s t=%s", event, request_token(scope))


def report(
    scope: Mapping[str, Any], ids: list[str | None], **extra: Any
) -> dict[str, Any]:
    """What the app sees of its request, right now, in this task or thread.

    *scope* is the scope the framework got (the adapter's copy); ``header``
    is every ``X-Request-ID`` value in it.
    """
    client = scope.get("client")
    state = scope.get("state") or {}
    return {
        "t": request_token(scope),
        "ids": ids,
        "header": [
            v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER
        ],
        "state": state.get("request_id"),
        "port": None if client is None else client[1],
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        **extra,
    }


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode() + b"\n"


async def stream_lines(scope: Mapping[str, Any]) -> AsyncIterator[bytes]:
    """STREAM_CHUNKS report lines, each made (and logged) after an await."""
    for index in range(STREAM_CHUNKS):
        await asyncio.sleep(0 if index % 2 else 0.001)
        log_event(f"chunk{index}", scope)
        yield _line(report(scope, [get_request_id()], chunk=index))


async def long_chunks(scope: Mapping[str, Any]) -> AsyncIterator[bytes]:
    """A report line, then padding until the client leaves or time runs out.

    How it ended is recorded: ``"cancelled"`` (the framework cancelled the
    task), ``"closed"`` (the generator was closed), ``"exhausted"``.
    """
    ended = "exhausted"
    chunks = 0
    padding = b"." * LONG_CHUNK
    deadline = time.monotonic() + LONG_LIMIT_SECONDS
    try:
        yield _line(report(scope, [get_request_id()]))
        chunks = 1
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            yield padding
            chunks += 1
    except asyncio.CancelledError:
        ended = "cancelled"
        raise
    except GeneratorExit:
        ended = "closed"
        raise
    finally:
        current = _CURRENT.get()
        if current is not None:
            current[0].add(
                "ends",
                {
                    "t": request_token(scope),
                    "ended": ended,
                    "chunks": chunks,
                    "request_id": get_request_id(),
                },
            )


def linger_target(scope: Mapping[str, Any]) -> tuple[Store, str, str] | None:
    """For ``/linger``: the store, this request's token and the one to await."""
    current = _CURRENT.get()
    if current is None:
        return None
    raw: bytes = scope.get("query_string", b"")
    awaited = parse_qs(raw.decode("latin-1")).get("next", [""])[0]
    return current[0], current[1], awaited


def _linger_end(store: Store, token: str, arrived: bool) -> None:
    store.add(
        "ends",
        {
            "t": token,
            "ended": "arrived" if arrived else "timeout",
            "request_id": get_request_id(),
        },
    )


async def linger_async(target: tuple[Store, str, str] | None) -> None:
    """Work after the response: wait (boundedly) until the next request arrived.

    Records whether it did, and the id this work saw, in ``ends``.
    """
    assert target is not None
    store, token, awaited = target
    deadline = time.monotonic() + LINGER_SECONDS
    while not (arrived := store.has_arrived(awaited)):
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.005)
    _linger_end(store, token, arrived)


def linger_sync(target: tuple[Store, str, str] | None) -> None:
    """``linger_async`` for sync code (a thread); it blocks that thread."""
    assert target is not None
    store, token, awaited = target
    deadline = time.monotonic() + LINGER_SECONDS
    while not (arrived := store.has_arrived(awaited)):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    _linger_end(store, token, arrived)


def escape_message(token: str) -> str:
    """The message of the exception the error endpoints raise."""
    return f"probe failure t={token}"


# --- Starlette and FastAPI endpoints -------------------------------------------


def _framework_header(request: Request) -> str | None:
    return request.headers.get("x-request-id")


async def _id_endpoint(request: Request) -> Response:
    first = get_request_id()
    log_event("id", request.scope)
    await asyncio.sleep(0)
    middle = get_request_id()
    await asyncio.sleep(0.001)  # a real wait, so other requests interleave
    ids = [first, middle, get_request_id()]
    return JSONResponse(
        report(request.scope, ids, framework_header=_framework_header(request))
    )


def _sync_endpoint(request: Request) -> Response:
    log_event("sync", request.scope)
    return JSONResponse(
        report(
            request.scope,
            [get_request_id()],
            framework_header=_framework_header(request),
        )
    )


async def _stream_endpoint(request: Request) -> Response:
    return StreamingResponse(
        stream_lines(request.scope), media_type="application/x-ndjson"
    )


async def _long_endpoint(request: Request) -> Response:
    return StreamingResponse(
        long_chunks(request.scope), media_type="application/octet-stream"
    )


async def _upload_endpoint(request: Request) -> Response:
    first = get_request_id()
    body = await request.body()
    return JSONResponse(
        report(request.scope, [first, get_request_id()], size=len(body))
    )


async def _linger_endpoint(request: Request) -> Response:
    """Reads the body, answers, then lingers in a background task."""
    first = get_request_id()
    body = await request.body()
    target = linger_target(request.scope)
    return JSONResponse(
        report(request.scope, [first, get_request_id()], size=len(body)),
        background=BackgroundTask(linger_async, target),
    )


async def _error_endpoint(request: Request) -> Response:
    log_event("error", request.scope)
    raise RuntimeError(escape_message(request_token(request.scope)))


_ROUTES: list[tuple[str, Callable[[Request], Any], list[str]]] = [
    ("/id", _id_endpoint, ["GET"]),
    ("/untrusted", _id_endpoint, ["GET"]),
    ("/sync", _sync_endpoint, ["GET"]),
    ("/stream", _stream_endpoint, ["GET"]),
    ("/long", _long_endpoint, ["GET"]),
    ("/upload", _upload_endpoint, ["POST"]),
    ("/linger", _linger_endpoint, ["POST"]),
    ("/error", _error_endpoint, ["GET"]),
    ("/escape", _error_endpoint, ["GET"]),
]


def _starlette() -> Starlette:
    return Starlette(
        routes=[Route(path, endpoint, methods=m) for path, endpoint, m in _ROUTES]
    )


def _fastapi() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for path, endpoint, methods in _ROUTES:
        app.add_api_route(path, endpoint, methods=methods)
    return app


async def _raw_error_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Raises before sending anything: the server must make the 500 itself."""
    if scope["type"] == "http":
        raise RuntimeError(escape_message(request_token(scope)))


# --- the recording layer outside the adapters ---------------------------------


class Recorder:
    """Outermost layer: dispatches, records the server's context, serves records.

    *app* serves every path but those in *routes*, which maps exact paths to
    other apps.
    """

    def __init__(
        self, app: ASGIApp, store: Store, routes: Mapping[str, ASGIApp] | None = None
    ) -> None:
        self.app = app
        self.store = store
        self.routes = dict(routes or {})

    def _route(self, path: str) -> ASGIApp:
        return self.routes.get(path, self.app)

    async def _records(self, scope: Scope, send: Send) -> None:
        body = json.dumps(self.store.snapshot(request_token(scope))).encode()
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == RECORDS_PATH:
            await self._records(scope, send)
            return
        token = request_token(scope)
        sent = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER]
        length = sum(len(v) for v in sent)
        client = scope.get("client")
        entry: dict[str, Any] = {
            "t": token,
            "path": path,
            "port": None if client is None else client[1],
            "sent": sent if length <= _KEEP_SENT else None,
            "sent_count": len(sent),
            "sent_length": length,
            "before": get_request_id(),
            "status": None,
            "echoed": None,
            "error": None,
            "notes": [],
        }
        # A binding here, although get_request_id() is None, means the server
        # started this request in a copy of an earlier request's context.
        binding_before = _context._BINDING.get()
        entry["stale_binding_before"] = binding_before is not None
        # Likewise the probe's own variable: the token of the earlier request
        # whose context this one started in, if any.
        inherited = _CURRENT.get()
        entry["inherited_from"] = None if inherited is None else inherited[1]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                entry["echoed"] = [
                    v.decode("latin-1")
                    for k, v in message.get("headers", ())
                    if k.lower() == HEADER
                ]
            await send(message)

        with self.store.lock:
            self.store.arrived.add(token)
        current = _CURRENT.set((self.store, token))
        try:
            await self._route(path)(scope, receive, recording_send)
        except BaseException as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["notes"] = list(getattr(exc, "__notes__", ()))
            raise
        finally:
            _CURRENT.reset(current)
            entry["after"] = get_request_id()
            entry["context_restored"] = _context._BINDING.get() is binding_before
            self.store.add("seen", entry)


def build_app(framework_app: WrappedApp) -> Recorder:
    """Return a new ``Recorder`` around *framework_app*'s adapter stacks."""
    capture_logs()
    routes: dict[str, ASGIApp] = {
        "/untrusted": RequestIdMiddleware(
            framework_app, config=Config(trust_incoming=False)
        ),
        "/escape": RequestIdMiddleware(_starlette()),
        "/raw-error": RequestIdMiddleware(_raw_error_app),
    }
    return Recorder(RequestIdMiddleware(framework_app), Store(), routes)


def starlette_app() -> Recorder:
    """A new Starlette probe app (``RequestIdMiddleware(app)`` wiring)."""
    return build_app(_starlette())


def fastapi_app() -> Recorder:
    """A new FastAPI probe app; a zero-argument factory for granian."""
    return build_app(_fastapi())


# --- a WSGI app, hosted on an ASGI server through a bridge -------------------


def _wsgi_routes(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """``/upload`` reads the whole body; every other path just reports."""
    first = get_request_id()
    size = 0
    if environ.get("PATH_INFO") == "/upload":
        size = len(environ["wsgi.input"].read())
    query = parse_qs(environ.get("QUERY_STRING", ""))
    data = {
        "t": query.get("t", [""])[0],
        "ids": [first, get_request_id()],
        "header": [environ.get("HTTP_X_REQUEST_ID")],
        "state": environ.get("correlation.request_id"),
        "port": environ.get("REMOTE_PORT"),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "size": size,
    }
    body = json.dumps(data).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def wsgi_app(
    bridge: Literal["a2wsgi", "asgiref"],
) -> tuple[Recorder, Callable[[], None]]:
    """``Recorder(bridge(wsgi.RequestIdMiddleware(routes)))``, and its cleanup.

    The cleanup shuts a2wsgi's worker threads down (it does nothing for
    asgiref, whose ``sync_to_async`` threads belong to asgiref).
    """
    app = wsgi.RequestIdMiddleware(_wsgi_routes)
    if bridge == "asgiref":
        hosted: ASGIApp = WsgiToAsgi(app)  # type: ignore[no-untyped-call]
        return Recorder(hosted, Store()), lambda: None
    middleware = a2wsgi.WSGIMiddleware(app)  # type: ignore[arg-type]
    executor = middleware.executor

    def cleanup() -> None:
        executor.shutdown(wait=True)

    return Recorder(cast("ASGIApp", middleware), Store()), cleanup
