"""The ASGI adapter wrapping real Starlette apps, driven in process through httpx.

Starlette always puts ``ServerErrorMiddleware`` outermost of the middleware it
builds, so ``Middleware(...)`` and ``add_middleware`` place the adapter inside
it, while ``RequestIdMiddleware(app)`` wraps the whole stack. The tests run
the wirings side by side wherever they behave the same, and state the
difference where they do not (unhandled exceptions).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ExceptionHandler, Lifespan
from starlette.websockets import WebSocket

from adapters._types import ASGIApp, Message, Receive, Scope, Send
from adapters.asgi import RequestIdMiddleware
from correlation import Config, _context, get_request_id

HEADER = "x-request-id"
GENERATED = re.compile(r"[0-9a-f]{32}")
# Upper bound for anything awaited here; nothing should come close to it.
TIMEOUT = 10.0
WIRINGS = ("middleware", "add_middleware", "wrapped")
# Wirings that put the adapter inside Starlette's ServerErrorMiddleware.
INSIDE_WIRINGS = ("middleware", "add_middleware")
HOSTILE = {
    "space": [("x-request-id", "a b")],
    "too-long": [("x-request-id", "x" * 129)],
    "comma": [("x-request-id", "a,b")],
    "two-occurrences": [("x-request-id", "a"), ("x-request-id", "b")],
}

Headers = Mapping[str, str] | Sequence[tuple[str, str]] | None
T = TypeVar("T")


class _BoomError(Exception):
    """The exception the failing endpoints raise."""


@pytest.fixture(params=WIRINGS)
def wiring(request: pytest.FixtureRequest) -> str:
    """How the adapter is attached to the Starlette app."""
    value: str = request.param
    return value


def _build(
    routes: Sequence[BaseRoute],
    *,
    wiring: str = "add_middleware",
    config: Config | None = None,
    exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
    lifespan: Lifespan[Starlette] | None = None,
    middleware: Sequence[Middleware] = (),
) -> ASGIApp:
    """Return a new Starlette app with the adapter attached as *wiring* says.

    *middleware* always ends up inside the adapter.
    """
    if wiring == "middleware":
        return Starlette(
            routes=routes,
            middleware=[Middleware(RequestIdMiddleware, config=config), *middleware],
            exception_handlers=exception_handlers,
            lifespan=lifespan,
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers,
        lifespan=lifespan,
    )
    if wiring == "add_middleware":
        # add_middleware inserts in front: the adapter ends up outermost of
        # the user middleware, still inside ServerErrorMiddleware.
        app.add_middleware(RequestIdMiddleware, config=config)
        return app
    assert wiring == "wrapped"
    return RequestIdMiddleware(app, config=config)


async def _fetch(
    client: httpx.AsyncClient, path: str, headers: Headers = None
) -> httpx.Response:
    """GET *path* in this very task, bounded, and check nothing stays bound."""
    try:
        # anyio.fail_after, unlike asyncio.wait_for on Python < 3.12, runs the
        # request in the current task, so the checks below see the context
        # the adapter was called in.
        with anyio.fail_after(TIMEOUT):
            return await client.get(path, headers=headers)
    finally:
        assert get_request_id() is None
        assert _context._BINDING.get() is None


def _get(
    app: ASGIApp,
    path: str,
    headers: Headers = None,
    *,
    raise_app_exceptions: bool = True,
) -> httpx.Response:
    """Run one GET against *app* through httpx's ASGI transport."""

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(
            app=app, raise_app_exceptions=raise_app_exceptions
        )
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            return await _fetch(client, path, headers)

    return asyncio.run(run())


def _seen(request: Request) -> dict[str, Any]:
    """What an endpoint observes about the request id."""
    return {
        "context": get_request_id(),
        "state": request.state.request_id,
        "headers": request.headers.getlist(HEADER),
        "thread": threading.get_ident(),
    }


async def _async_echo(request: Request) -> Response:
    return JSONResponse(_seen(request))


def _sync_echo(request: Request) -> Response:
    return JSONResponse(_seen(request))


def _echo_app(wiring: str = "add_middleware", config: Config | None = None) -> ASGIApp:
    return _build(
        [Route("/async", _async_echo), Route("/sync", _sync_echo)],
        wiring=wiring,
        config=config,
    )


def _single(values: list[T]) -> T:
    """Return the only element of *values*, failing if there is not exactly one."""
    assert len(values) == 1, values
    return values[0]


def _assert_consistent(response: httpx.Response) -> str:
    """Check the endpoint saw one id everywhere, equal to the response header."""
    assert response.status_code == 200
    request_id = _single(response.headers.get_list(HEADER))
    body = response.json()
    assert body["context"] == request_id
    assert body["state"] == request_id
    assert body["headers"] == [request_id]
    return request_id


def _assert_note(exc: BaseException, request_id: str) -> None:
    """Check the request-id note the adapter adds on Python 3.11+."""
    notes = getattr(exc, "__notes__", None)
    if sys.version_info >= (3, 11):
        assert notes == [f"request_id={request_id}"]
    else:
        assert notes is None


# --- ids in endpoints -------------------------------------------------------


@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_valid_incoming_id_is_kept(wiring: str, path: str) -> None:
    """A valid incoming id is what the endpoint, state, headers and response see."""
    response = _get(_echo_app(wiring), path, {HEADER: "client-id-1"})
    assert _assert_consistent(response) == "client-id-1"


@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_missing_id_is_generated(wiring: str, path: str) -> None:
    """Without an incoming header the endpoint sees a generated 32-hex id."""
    response = _get(_echo_app(wiring), path)
    assert GENERATED.fullmatch(_assert_consistent(response))


@pytest.mark.parametrize("headers", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_hostile_id_is_replaced(
    wiring: str, path: str, headers: list[tuple[str, str]]
) -> None:
    """A rejected incoming value is replaced everywhere by a generated id."""
    response = _get(_echo_app(wiring), path, headers)
    request_id = _assert_consistent(response)
    assert GENERATED.fullmatch(request_id)
    assert "a b" not in response.text
    assert "a,b" not in response.text
    assert "x" * 129 not in response.text


def test_sync_endpoint_runs_in_a_worker_thread_with_the_id(wiring: str) -> None:
    """A sync endpoint runs off the event loop thread and still sees the id."""
    response = _get(_echo_app(wiring), "/sync", {HEADER: "sync-1"})
    assert _assert_consistent(response) == "sync-1"
    assert response.json()["thread"] != threading.get_ident()


def test_run_in_threadpool_sees_the_id(wiring: str) -> None:
    """Code run through starlette.concurrency.run_in_threadpool sees the id."""

    def work() -> tuple[str | None, int]:
        return get_request_id(), threading.get_ident()

    async def endpoint(request: Request) -> Response:
        seen, thread = await run_in_threadpool(work)
        loop_thread = threading.get_ident()
        return JSONResponse({"seen": seen, "other_thread": thread != loop_thread})

    app = _build([Route("/", endpoint)], wiring=wiring)
    response = _get(app, "/", {HEADER: "pool-1"})
    assert response.json() == {"seen": "pool-1", "other_thread": True}
    assert response.headers.get_list(HEADER) == ["pool-1"]


def test_middleware_inside_the_adapter_sees_the_id(wiring: str) -> None:
    """Pure ASGI and BaseHTTPMiddleware middleware inside the adapter see the id."""
    seen: list[tuple[str, str | None]] = []

    class Recorder:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(("asgi-before", get_request_id()))

            async def recording_send(message: Message) -> None:
                seen.append((message["type"], get_request_id()))
                await send(message)

            await self.app(scope, receive, recording_send)
            seen.append(("asgi-after", get_request_id()))

    async def dispatch(
        request: Request, call_next: RequestResponseEndpoint
    ) -> Response:
        seen.append(("base-before", get_request_id()))
        response = await call_next(request)
        seen.append(("base-after", get_request_id()))
        return response

    app = _build(
        [Route("/", _async_echo)],
        wiring=wiring,
        middleware=[
            Middleware(Recorder),
            Middleware(BaseHTTPMiddleware, dispatch=dispatch),
        ],
    )
    response = _get(app, "/", {HEADER: "mw-1"})
    assert _assert_consistent(response) == "mw-1"
    # BaseHTTPMiddleware may split the body into several messages.
    assert {tag for tag, _ in seen} == {
        "asgi-before",
        "base-before",
        "base-after",
        "http.response.start",
        "http.response.body",
        "asgi-after",
    }
    assert {request_id for _, request_id in seen} == {"mw-1"}


# --- streaming and background work ------------------------------------------


def test_streaming_sync_generator_sees_the_id_in_every_chunk(wiring: str) -> None:
    """Each chunk of a sync-generator StreamingResponse sees the request's id."""
    threads: list[int] = []

    def chunks() -> Iterator[str]:
        for index in range(4):
            threads.append(threading.get_ident())
            yield f"{index}:{get_request_id()}\n"

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = _build([Route("/", endpoint)], wiring=wiring)
    response = _get(app, "/", {HEADER: "stream-sync"})
    assert response.headers.get_list(HEADER) == ["stream-sync"]
    assert response.text.splitlines() == [f"{i}:stream-sync" for i in range(4)]
    assert len(threads) == 4
    assert threading.get_ident() not in threads


def test_streaming_async_generator_sees_the_id_in_every_chunk(wiring: str) -> None:
    """Each chunk of an async-generator StreamingResponse sees the request's id."""

    async def chunks() -> AsyncIterator[str]:
        for index in range(4):
            await asyncio.sleep(0)
            yield f"{index}:{get_request_id()}\n"

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = _build([Route("/", endpoint)], wiring=wiring)
    response = _get(app, "/")
    request_id = _single(response.headers.get_list(HEADER))
    assert GENERATED.fullmatch(request_id)
    assert response.text.splitlines() == [f"{i}:{request_id}" for i in range(4)]


def test_background_task_sees_the_id(wiring: str) -> None:
    """A single BackgroundTask, run after the body is sent, sees the id."""
    seen: list[str | None] = []

    def task(tag: str) -> None:
        seen.append(f"{tag}:{get_request_id()}")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(task, "single"))

    app = _build([Route("/", endpoint)], wiring=wiring)
    response = _get(app, "/", {HEADER: "bg-1"})
    assert response.headers.get_list(HEADER) == ["bg-1"]
    assert seen == ["single:bg-1"]


def test_background_tasks_sync_and_async_see_the_id(wiring: str) -> None:
    """Sync and async tasks of a BackgroundTasks group all see the id."""
    seen: list[tuple[str, str | None]] = []

    def sync_task() -> None:
        seen.append(("sync", get_request_id()))

    async def async_task() -> None:
        await asyncio.sleep(0)
        seen.append(("async", get_request_id()))

    async def endpoint(request: Request) -> Response:
        tasks = BackgroundTasks()
        tasks.add_task(sync_task)
        tasks.add_task(async_task)
        return PlainTextResponse("ok", background=tasks)

    app = _build([Route("/", endpoint)], wiring=wiring)
    response = _get(app, "/")
    request_id = _single(response.headers.get_list(HEADER))
    assert seen == [("sync", request_id), ("async", request_id)]


# --- WebSocket --------------------------------------------------------------


def _websocket_app(wiring: str) -> ASGIApp:
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        for _ in range(3):
            text = await websocket.receive_text()
            await asyncio.sleep(0)
            await websocket.send_json(
                {
                    "echo": text,
                    "context": get_request_id(),
                    "state": websocket.state.request_id,
                    "headers": websocket.headers.getlist(HEADER),
                }
            )
        await websocket.close()

    async def deny(websocket: WebSocket) -> None:
        response = PlainTextResponse(str(get_request_id()), status_code=403)
        await websocket.send_denial_response(response)

    return _build(
        [WebSocketRoute("/ws", chat), WebSocketRoute("/deny", deny)], wiring=wiring
    )


def _run_websocket(
    app: ASGIApp,
    path: str,
    headers: list[tuple[bytes, bytes]],
    texts: Sequence[str] = (),
) -> list[Message]:
    """Drive one WebSocket connection at the ASGI level; return what the app sent.

    The client sends ``websocket.connect`` and then *texts*; the scope offers
    the denial response extension, as uvicorn and hypercorn do.
    """
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 123),
        "server": ("testserver", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    original_headers = list(scope["headers"])
    inbox: list[Message] = [{"type": "websocket.connect"}]
    inbox += [{"type": "websocket.receive", "text": text} for text in texts]
    sent: list[Message] = []

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        # A client with nothing more to say: only the timeout ends this.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        try:
            with anyio.fail_after(TIMEOUT):
                await app(scope, receive, send)
        finally:
            assert get_request_id() is None
            assert _context._BINDING.get() is None

    asyncio.run(run())
    # The caller's scope is not mutated: the app got a copy.
    assert scope["headers"] == original_headers
    assert "state" not in scope
    return sent


def _header_values(message: Message, name: bytes) -> list[bytes]:
    return [value for key, value in message.get("headers", ()) if key == name]


@pytest.mark.parametrize(
    "headers",
    [[(b"x-request-id", b"ws-1")], [], [(b"x-request-id", b"a b")]],
    ids=["valid", "missing", "hostile"],
)
def test_websocket_id_is_in_accept_headers_and_every_message(
    wiring: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """The accept headers carry the id the handler sees for every message."""
    sent = _run_websocket(_websocket_app(wiring), "/ws", headers, ["0", "1", "2"])
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.send",
        "websocket.send",
        "websocket.close",
    ]
    request_id = _single(
        [value.decode("ascii") for value in _header_values(sent[0], b"x-request-id")]
    )
    if headers == [(b"x-request-id", b"ws-1")]:
        assert request_id == "ws-1"
    else:
        assert GENERATED.fullmatch(request_id)
    assert [json.loads(message["text"]) for message in sent[1:4]] == [
        {
            "echo": str(index),
            "context": request_id,
            "state": request_id,
            "headers": [request_id],
        }
        for index in range(3)
    ]


def test_websocket_denial_response_carries_the_id(wiring: str) -> None:
    """A WebSocket denial response carries the id the handler saw, once."""
    sent = _run_websocket(
        _websocket_app(wiring), "/deny", [(b"x-request-id", b"deny-1")]
    )
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert _header_values(sent[0], b"x-request-id") == [b"deny-1"]
    assert sent[1]["body"] == b"deny-1"


# --- errors -----------------------------------------------------------------


def _raising_app(
    raised: list[BaseException],
    seen_by_handler: list[str | None],
    wiring: str,
) -> ASGIApp:
    """An app whose /boom endpoint raises and whose 500 handler records the id."""

    async def boom(request: Request) -> Response:
        exc = _BoomError("boom")
        raised.append(exc)
        raise exc

    async def on_500(request: Request, exc: Exception) -> Response:
        request_id = get_request_id()
        seen_by_handler.append(request_id)
        return PlainTextResponse(f"failed:{request_id}", status_code=500)

    return _build(
        [Route("/boom", boom)], wiring=wiring, exception_handlers={500: on_500}
    )


@pytest.mark.parametrize("wiring", INSIDE_WIRINGS)
def test_inside_server_error_middleware_exception_propagates_with_note(
    wiring: str,
) -> None:
    """With add_middleware the endpoint's own exception reaches the client, noted."""
    raised: list[BaseException] = []
    handled: list[str | None] = []
    app = _raising_app(raised, handled, wiring)
    with pytest.raises(_BoomError) as info:
        _get(app, "/boom", {HEADER: "err-1"})
    assert info.value is _single(raised)
    _assert_note(info.value, "err-1")
    # ServerErrorMiddleware is outside the adapter: its handler runs unbound.
    assert handled == [None]


@pytest.mark.parametrize("wiring", INSIDE_WIRINGS)
def test_inside_server_error_middleware_500_has_no_id_header(wiring: str) -> None:
    """With add_middleware, Starlette's 500 is sent outside the adapter: no header."""
    raised: list[BaseException] = []
    handled: list[str | None] = []
    app = _raising_app(raised, handled, wiring)
    response = _get(app, "/boom", {HEADER: "err-2"}, raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.text == "failed:None"
    assert response.headers.get_list(HEADER) == []
    assert handled == [None]
    _assert_note(_single(raised), "err-2")


def test_wrapping_the_app_500_carries_the_id_and_handler_sees_it() -> None:
    """Around the whole app, the 500 handler sees the id and the 500 carries it."""
    raised: list[BaseException] = []
    handled: list[str | None] = []
    app = _raising_app(raised, handled, "wrapped")
    response = _get(app, "/boom", {HEADER: "err-3"}, raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.text == "failed:err-3"
    assert response.headers.get_list(HEADER) == ["err-3"]
    assert handled == ["err-3"]
    _assert_note(_single(raised), "err-3")


def test_wrapping_the_app_reraises_the_same_exception_with_note() -> None:
    """Around the whole app, the endpoint's exception object propagates, noted."""
    raised: list[BaseException] = []
    handled: list[str | None] = []
    app = _raising_app(raised, handled, "wrapped")
    with pytest.raises(_BoomError) as info:
        _get(app, "/boom")
    assert info.value is _single(raised)
    request_id = handled[0]
    assert request_id is not None
    assert GENERATED.fullmatch(request_id)
    _assert_note(info.value, request_id)


def test_wrapping_the_app_default_500_carries_the_id() -> None:
    """Around the whole app, Starlette's default 500 page carries the id."""

    async def boom(request: Request) -> Response:
        raise _BoomError("boom")

    app = _build([Route("/boom", boom)], wiring="wrapped")
    response = _get(app, "/boom", {HEADER: "err-4"}, raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.headers.get_list(HEADER) == ["err-4"]


def test_handled_http_exception_sees_the_id(wiring: str) -> None:
    """A custom HTTPException handler sees the id; the response carries it once."""
    handled: list[str | None] = []

    async def teapot(request: Request) -> Response:
        raise HTTPException(status_code=418)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        handled.append(get_request_id())
        return PlainTextResponse(
            f"{exc.status_code}:{request.state.request_id}",
            status_code=exc.status_code,
        )

    app = _build(
        [Route("/teapot", teapot)],
        wiring=wiring,
        exception_handlers={HTTPException: on_http_error},
    )
    response = _get(app, "/teapot", {HEADER: "http-1"})
    assert response.status_code == 418
    assert response.text == "418:http-1"
    assert response.headers.get_list(HEADER) == ["http-1"]
    assert handled == ["http-1"]


def test_default_not_found_carries_the_id(wiring: str) -> None:
    """Starlette's own 404 for an unknown path carries the id once."""
    app = _echo_app(wiring)
    response = _get(app, "/nowhere", {HEADER: "missing-route"})
    assert response.status_code == 404
    assert response.headers.get_list(HEADER) == ["missing-route"]


@pytest.mark.parametrize("handler_sets_header", [False, True])
def test_custom_exception_handler_json_response(
    wiring: str, handler_sets_header: bool
) -> None:
    """A handler for a custom exception sees the id; exactly one header results."""

    async def boom(request: Request) -> Response:
        raise _BoomError("boom")

    async def on_boom(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _BoomError)
        headers = {"X-Request-ID": "from-handler"} if handler_sets_header else None
        return JSONResponse(
            {"context": get_request_id(), "state": request.state.request_id},
            status_code=409,
            headers=headers,
        )

    app = _build(
        [Route("/boom", boom)],
        wiring=wiring,
        exception_handlers={_BoomError: on_boom},
    )
    response = _get(app, "/boom", {HEADER: "custom-1"})
    assert response.status_code == 409
    assert response.json() == {"context": "custom-1", "state": "custom-1"}
    expected = "from-handler" if handler_sets_header else "custom-1"
    assert response.headers.get_list(HEADER) == [expected]


# --- lifespan ---------------------------------------------------------------


@asynccontextmanager
async def _lifespan_running(app: ASGIApp, state: dict[str, Any]) -> AsyncIterator[None]:
    """Run *app*'s lifespan protocol around the block, as a server does."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": state,
    }

    async def serve() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(serve())
    try:
        with anyio.fail_after(TIMEOUT):
            await inbox.put({"type": "lifespan.startup"})
            assert await outbox.get() == {"type": "lifespan.startup.complete"}
        yield
        with anyio.fail_after(TIMEOUT):
            await inbox.put({"type": "lifespan.shutdown"})
            assert await outbox.get() == {"type": "lifespan.shutdown.complete"}
            await task
    finally:
        task.cancel()
    # The lifespan scope went through as the very same dict: Starlette's own
    # scope["app"] landed in it, the adapter's key did not.
    assert "app" in scope
    assert "correlation.binding" not in scope
    assert scope["state"] is state


def _with_lifespan_state(
    app: ASGIApp, state: dict[str, Any], request_states: list[dict[str, Any]]
) -> ASGIApp:
    """Act as a server does: give each request a shallow copy of the state."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        request_state = dict(state)
        request_states.append(request_state)
        await app({**scope, "state": request_state}, receive, send)

    return server


def test_lifespan_passes_through_untouched(wiring: str) -> None:
    """Lifespan runs unbound; its state reaches requests, which add request_id."""
    events: list[tuple[str, str | None]] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        events.append(("startup", get_request_id()))
        yield {"db": "fake-db"}
        events.append(("shutdown", get_request_id()))

    async def endpoint(request: Request) -> Response:
        return JSONResponse(
            {
                "db": request.state.db,
                "state": request.state.request_id,
                "context": get_request_id(),
            }
        )

    app = _build([Route("/", endpoint)], wiring=wiring, lifespan=lifespan)
    lifespan_state: dict[str, Any] = {}
    request_states: list[dict[str, Any]] = []

    async def run() -> list[httpx.Response]:
        async with _lifespan_running(app, lifespan_state):
            assert events == [("startup", None)]
            transport = httpx.ASGITransport(
                app=_with_lifespan_state(app, lifespan_state, request_states)
            )
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver"
            ) as client:
                first = await _fetch(client, "/", {HEADER: "life-1"})
                second = await _fetch(client, "/")
        return [first, second]

    first, second = asyncio.run(run())
    assert events == [("startup", None), ("shutdown", None)]
    assert first.json() == {"db": "fake-db", "state": "life-1", "context": "life-1"}
    second_id = _single(second.headers.get_list(HEADER))
    assert GENERATED.fullmatch(second_id)
    assert second.json() == {"db": "fake-db", "state": second_id, "context": second_id}
    assert lifespan_state == {"db": "fake-db"}
    assert request_states == [
        {"db": "fake-db", "request_id": "life-1"},
        {"db": "fake-db", "request_id": second_id},
    ]


# --- response headers and configuration -------------------------------------


def test_app_set_header_is_kept_and_not_duplicated(wiring: str) -> None:
    """An id header the app sets itself is kept, and no second one is added."""

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(
            str(get_request_id()), headers={"X-Request-ID": "app-chosen"}
        )

    app = _build([Route("/", endpoint)], wiring=wiring)
    response = _get(app, "/", {HEADER: "client-1"})
    assert response.text == "client-1"
    assert response.headers.get_list(HEADER) == ["app-chosen"]


def test_custom_header_name() -> None:
    """A custom header_name is read, rewritten and echoed; X-Request-ID is not."""

    async def endpoint(request: Request) -> Response:
        return JSONResponse(
            {
                "context": get_request_id(),
                "correlation": request.headers.getlist("x-correlation-id"),
                "request": request.headers.getlist(HEADER),
            }
        )

    config = Config(header_name="X-Correlation-ID")
    app = _build([Route("/", endpoint)], config=config)
    response = _get(
        app, "/", {"X-Correlation-ID": "corr-1", "X-Request-ID": "untouched"}
    )
    assert response.json() == {
        "context": "corr-1",
        "correlation": ["corr-1"],
        "request": ["untouched"],
    }
    assert response.headers.get_list("x-correlation-id") == ["corr-1"]
    assert response.headers.get_list(HEADER) == []


def test_trust_incoming_false_always_generates() -> None:
    """With trust_incoming=False a valid client id is replaced everywhere."""
    app = _echo_app(config=Config(trust_incoming=False))
    response = _get(app, "/async", {HEADER: "client-chosen"})
    request_id = _assert_consistent(response)
    assert GENERATED.fullmatch(request_id)
    assert "client-chosen" not in response.text


def test_response_header_false_sends_no_header() -> None:
    """With response_header=False the response has no id header; the app has it."""
    app = _echo_app(config=Config(response_header=False))
    response = _get(app, "/async", {HEADER: "quiet-1"})
    assert response.headers.get_list(HEADER) == []
    body = response.json()
    assert body["context"] == "quiet-1"
    assert body["state"] == "quiet-1"
    assert body["headers"] == ["quiet-1"]


@pytest.mark.parametrize(
    "headers",
    [[(HEADER, "kept-1")], [(HEADER, "a b")], [(HEADER, "a"), (HEADER, "b")]],
    ids=["valid", "hostile", "two-occurrences"],
)
def test_update_request_header_false_keeps_client_headers(
    headers: list[tuple[str, str]],
) -> None:
    """With update_request_header=False request.headers is what the client sent."""
    app = _echo_app(config=Config(update_request_header=False))
    response = _get(app, "/async", headers)
    request_id = _single(response.headers.get_list(HEADER))
    body = response.json()
    assert body["headers"] == [value for _, value in headers]
    assert body["context"] == request_id
    assert body["state"] == request_id
    if headers == [(HEADER, "kept-1")]:
        assert request_id == "kept-1"
    else:
        assert GENERATED.fullmatch(request_id)


# --- concurrency ------------------------------------------------------------


def test_concurrent_requests_each_see_their_own_id(wiring: str) -> None:
    """50 requests in flight at once each see only their own id throughout."""
    count = 50
    arrived = 0
    all_arrived = asyncio.Event()

    async def endpoint(request: Request) -> Response:
        nonlocal arrived
        before = get_request_id()
        arrived += 1
        if arrived == count:
            all_arrived.set()
        # Every request waits here until all of them are in flight.
        await all_arrived.wait()
        for _ in range(3):
            await asyncio.sleep(0)
        return JSONResponse(
            {
                "before": before,
                "after": get_request_id(),
                "state": request.state.request_id,
            }
        )

    app = _build([Route("/", endpoint)], wiring=wiring)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            with anyio.fail_after(TIMEOUT):
                responses = await asyncio.gather(
                    *(_fetch(client, "/", {HEADER: f"req-{i}"}) for i in range(count))
                )
            assert get_request_id() is None
            return responses

    responses = asyncio.run(run())
    for index, response in enumerate(responses):
        expected = f"req-{index}"
        assert response.headers.get_list(HEADER) == [expected]
        assert response.json() == {
            "before": expected,
            "after": expected,
            "state": expected,
        }
