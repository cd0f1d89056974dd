"""The ASGI adapter in real Starlette and FastAPI apps, driven in process by httpx.

Every test here runs against both frameworks (the ``framework`` fixture) and,
where the wiring matters, under each of the three wirings: FastAPI builds its
middleware stack like Starlette, with ``ServerErrorMiddleware`` outermost, so
the wirings behave alike in both, and differ from each other only for
unhandled exceptions. Framework-specific behaviour is tested in
``test_starlette.py`` and ``test_fastapi.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from asgi_testing import (
    HEX32,
    TIMEOUT,
    Headers,
    asgi_client,
    lifespan_running,
    run_websocket,
    values_of,
    with_lifespan_state,
)
from framework_testing import (
    FRAMEWORKS,
    HEADER,
    assert_consistent,
    assert_note,
    build_app,
    each_wiring,
    echo_app,
    fetch,
    get,
    inside_wirings,
    single,
)
from hostile import MARKER, Hostile, hostile_params
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.websockets import WebSocket

from adapters._types import ASGIApp
from correlation import Config, get_request_id


class _BoomError(Exception):
    """The exception the failing endpoints raise."""


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    """Which framework the app is built with."""
    value: str = request.param
    return value


# --- ids in endpoints -------------------------------------------------------


@each_wiring
@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_valid_incoming_id_is_kept(framework: str, wiring: str, path: str) -> None:
    """A valid incoming id is what the endpoint, state, headers and response see."""
    response = get(echo_app(framework, wiring), path, {HEADER: "client-id-1"})
    assert assert_consistent(response) == "client-id-1"


@each_wiring
@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_missing_id_is_generated(framework: str, wiring: str, path: str) -> None:
    """Without an incoming header the endpoint sees a generated 32-hex id."""
    response = get(echo_app(framework, wiring), path)
    assert HEX32.fullmatch(assert_consistent(response))


@each_wiring
@pytest.mark.parametrize("row", hostile_params())
@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_hostile_id_is_replaced(
    framework: str, wiring: str, path: str, row: Hostile
) -> None:
    """A rejected incoming value is replaced everywhere by a generated id."""
    headers = [(HEADER.encode(), value) for value in row.occurrences]
    response = get(echo_app(framework, wiring), path, headers)
    request_id = assert_consistent(response)
    assert HEX32.fullmatch(request_id)
    assert MARKER not in response.text


@each_wiring
def test_sync_endpoint_runs_in_a_worker_thread_with_the_id(
    framework: str, wiring: str
) -> None:
    """A sync ``def`` endpoint runs off the event loop thread and sees the id."""
    response = get(echo_app(framework, wiring), "/sync", {HEADER: "sync-1"})
    assert assert_consistent(response) == "sync-1"
    assert response.json()["thread"] != threading.get_ident()


@each_wiring
def test_threadpool_and_to_thread_see_the_id(framework: str, wiring: str) -> None:
    """run_in_threadpool and asyncio.to_thread called by an endpoint see the id."""

    async def endpoint(request: Request) -> Response:
        loop_thread = threading.get_ident()

        def work() -> tuple[str | None, bool]:
            return get_request_id(), threading.get_ident() != loop_thread

        return JSONResponse(
            {
                "pool": await run_in_threadpool(work),
                "to_thread": await asyncio.to_thread(work),
            }
        )

    app = build_app(framework, {"/": endpoint}, wiring=wiring)
    response = get(app, "/", {HEADER: "pool-1"})
    assert response.json() == {"pool": ["pool-1", True], "to_thread": ["pool-1", True]}
    assert response.headers.get_list(HEADER) == ["pool-1"]


# --- streaming --------------------------------------------------------------


@each_wiring
def test_streaming_sync_generator_sees_the_id_in_every_chunk(
    framework: str, wiring: str
) -> None:
    """Each chunk of a sync-generator StreamingResponse sees the request's id."""
    threads: list[int] = []

    def chunks() -> Iterator[str]:
        for index in range(4):
            threads.append(threading.get_ident())
            yield f"{index}:{get_request_id()}\n"

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = build_app(framework, {"/": endpoint}, wiring=wiring)
    response = get(app, "/", {HEADER: "stream-sync"})
    assert response.headers.get_list(HEADER) == ["stream-sync"]
    assert response.text.splitlines() == [f"{i}:stream-sync" for i in range(4)]
    assert len(threads) == 4
    assert threading.get_ident() not in threads


@each_wiring
def test_streaming_async_generator_sees_the_id_in_every_chunk(
    framework: str, wiring: str
) -> None:
    """Each chunk of an async-generator StreamingResponse sees the request's id."""

    async def chunks() -> AsyncIterator[str]:
        for index in range(4):
            await asyncio.sleep(0)
            yield f"{index}:{get_request_id()}\n"

    async def endpoint(request: Request) -> Response:
        return StreamingResponse(chunks(), media_type="text/plain")

    app = build_app(framework, {"/": endpoint}, wiring=wiring)
    response = get(app, "/")
    request_id = single(response.headers.get_list(HEADER))
    assert HEX32.fullmatch(request_id)
    assert response.text.splitlines() == [f"{i}:{request_id}" for i in range(4)]


# --- WebSocket --------------------------------------------------------------


def _websocket_app(framework: str, wiring: str) -> ASGIApp:
    """An app with a /ws echo that reports the id, and a /deny that refuses."""

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

    sockets = {"/ws": chat, "/deny": deny}
    return build_app(framework, {}, sockets, wiring=wiring)


@each_wiring
@pytest.mark.parametrize(
    "headers",
    [[(b"x-request-id", b"ws-1")], [], [(b"x-request-id", b"a b")]],
    ids=["valid", "missing", "hostile"],
)
def test_websocket_id_is_in_accept_headers_and_every_message(
    framework: str, wiring: str, headers: Headers
) -> None:
    """The accept headers carry the id the handler sees for every message."""
    app = _websocket_app(framework, wiring)
    sent = run_websocket(app, "/ws", headers, ["0", "1", "2"])
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.send",
        "websocket.send",
        "websocket.close",
    ]
    request_id = single(values_of(sent[0]["headers"], b"x-request-id")).decode()
    if headers == [(b"x-request-id", b"ws-1")]:
        assert request_id == "ws-1"
    else:
        assert HEX32.fullmatch(request_id)
    assert [json.loads(message["text"]) for message in sent[1:4]] == [
        {
            "echo": str(index),
            "context": request_id,
            "state": request_id,
            "headers": [request_id],
        }
        for index in range(3)
    ]


@each_wiring
def test_websocket_denial_response_carries_the_id(framework: str, wiring: str) -> None:
    """A WebSocket denial response carries the id the handler saw, once."""
    app = _websocket_app(framework, wiring)
    sent = run_websocket(app, "/deny", [(b"x-request-id", b"deny-1")])
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert values_of(sent[0]["headers"], b"x-request-id") == [b"deny-1"]
    assert sent[1]["body"] == b"deny-1"


# --- errors -----------------------------------------------------------------


class _FailingApp:
    """An app whose /boom endpoint raises and whose 500 handler records the id."""

    def __init__(self, framework: str, wiring: str) -> None:
        self.raised: list[BaseException] = []
        self.handled: list[str | None] = []

        async def boom(request: Request) -> Response:
            exc = _BoomError("boom")
            self.raised.append(exc)
            raise exc

        async def on_500(request: Request, exc: Exception) -> Response:
            request_id = get_request_id()
            self.handled.append(request_id)
            return PlainTextResponse(f"failed:{request_id}", status_code=500)

        self.app = build_app(
            framework, {"/boom": boom}, wiring=wiring, exception_handlers={500: on_500}
        )


@inside_wirings
def test_inside_server_error_middleware_exception_propagates_with_note(
    framework: str, wiring: str
) -> None:
    """Inside ServerErrorMiddleware the endpoint's exception propagates, noted."""
    failing = _FailingApp(framework, wiring)
    with pytest.raises(_BoomError) as info:
        get(failing.app, "/boom", {HEADER: "err-1"})
    assert info.value is single(failing.raised)
    assert_note(info.value, "err-1")
    # ServerErrorMiddleware is outside the adapter: its handler runs unbound.
    assert failing.handled == [None]


@inside_wirings
def test_inside_server_error_middleware_500_has_no_id_header(
    framework: str, wiring: str
) -> None:
    """Inside ServerErrorMiddleware the 500 is sent outside the adapter: no header."""
    failing = _FailingApp(framework, wiring)
    response = get(failing.app, "/boom", {HEADER: "err-2"}, raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.text == "failed:None"
    assert response.headers.get_list(HEADER) == []
    assert failing.handled == [None]
    assert_note(single(failing.raised), "err-2")


def test_wrapping_the_app_500_carries_the_id_and_handler_sees_it(
    framework: str,
) -> None:
    """Around the whole app, the 500 handler sees the id and the 500 carries it."""
    failing = _FailingApp(framework, "wrapped")
    response = get(failing.app, "/boom", {HEADER: "err-3"}, raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.text == "failed:err-3"
    assert response.headers.get_list(HEADER) == ["err-3"]
    assert failing.handled == ["err-3"]
    assert_note(single(failing.raised), "err-3")


def test_wrapping_the_app_reraises_the_same_exception_with_note(
    framework: str,
) -> None:
    """Around the whole app, the endpoint's exception object propagates, noted."""
    failing = _FailingApp(framework, "wrapped")
    with pytest.raises(_BoomError) as info:
        get(failing.app, "/boom")
    assert info.value is single(failing.raised)
    request_id = failing.handled[0]
    assert request_id is not None
    assert HEX32.fullmatch(request_id)
    assert_note(info.value, request_id)


@each_wiring
def test_handled_http_exception_sees_the_id(framework: str, wiring: str) -> None:
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

    app = build_app(
        framework,
        {"/teapot": teapot},
        wiring=wiring,
        exception_handlers={HTTPException: on_http_error},
    )
    response = get(app, "/teapot", {HEADER: "http-1"})
    assert response.status_code == 418
    assert response.text == "418:http-1"
    assert response.headers.get_list(HEADER) == ["http-1"]
    assert handled == ["http-1"]


@each_wiring
@pytest.mark.parametrize("handler_sets_header", [False, True])
def test_custom_exception_handler_json_response(
    framework: str, wiring: str, handler_sets_header: bool
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

    app = build_app(
        framework,
        {"/boom": boom},
        wiring=wiring,
        exception_handlers={_BoomError: on_boom},
    )
    response = get(app, "/boom", {HEADER: "custom-1"})
    assert response.status_code == 409
    assert response.json() == {"context": "custom-1", "state": "custom-1"}
    expected = "from-handler" if handler_sets_header else "custom-1"
    assert response.headers.get_list(HEADER) == [expected]


# --- lifespan ---------------------------------------------------------------


@each_wiring
def test_lifespan_passes_through_untouched(framework: str, wiring: str) -> None:
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

    app = build_app(framework, {"/": endpoint}, wiring=wiring, lifespan=lifespan)
    lifespan_state: dict[str, Any] = {}
    request_states: list[dict[str, Any]] = []

    async def run() -> list[httpx.Response]:
        async with lifespan_running(app, lifespan_state):
            assert events == [("startup", None)]
            server = with_lifespan_state(app, lifespan_state, request_states)
            async with asgi_client(server) as client:
                first = await fetch(client, "/", {HEADER: "life-1"})
                second = await fetch(client, "/")
        return [first, second]

    first, second = asyncio.run(run())
    assert events == [("startup", None), ("shutdown", None)]
    assert first.json() == {"db": "fake-db", "state": "life-1", "context": "life-1"}
    second_id = single(second.headers.get_list(HEADER))
    assert HEX32.fullmatch(second_id)
    assert second.json() == {"db": "fake-db", "state": second_id, "context": second_id}
    assert lifespan_state == {"db": "fake-db"}
    assert request_states == [
        {"db": "fake-db", "request_id": "life-1"},
        {"db": "fake-db", "request_id": second_id},
    ]


# --- configuration ----------------------------------------------------------


def test_custom_header_name(framework: str) -> None:
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
    app = build_app(framework, {"/": endpoint}, config=config)
    response = get(
        app, "/", {"X-Correlation-ID": "corr-1", "X-Request-ID": "untouched"}
    )
    assert response.json() == {
        "context": "corr-1",
        "correlation": ["corr-1"],
        "request": ["untouched"],
    }
    assert response.headers.get_list("x-correlation-id") == ["corr-1"]
    assert response.headers.get_list(HEADER) == []


def test_trust_incoming_false_always_generates(framework: str) -> None:
    """With trust_incoming=False a valid client id is replaced everywhere."""
    app = echo_app(framework, config=Config(trust_incoming=False))
    for path in ("/async", "/sync"):
        response = get(app, path, {HEADER: "client-chosen"})
        request_id = assert_consistent(response)
        assert HEX32.fullmatch(request_id)
        assert "client-chosen" not in response.text


def test_response_header_false_sends_no_header(framework: str) -> None:
    """With response_header=False the response has no id header; the app has it."""
    app = echo_app(framework, config=Config(response_header=False))
    response = get(app, "/async", {HEADER: "quiet-1"})
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
    framework: str, headers: list[tuple[str, str]]
) -> None:
    """With update_request_header=False request.headers is what the client sent."""
    app = echo_app(framework, config=Config(update_request_header=False))
    response = get(app, "/async", headers)
    request_id = single(response.headers.get_list(HEADER))
    body = response.json()
    assert body["headers"] == [value for _, value in headers]
    assert body["context"] == request_id
    assert body["state"] == request_id
    if headers == [(HEADER, "kept-1")]:
        assert request_id == "kept-1"
    else:
        assert HEX32.fullmatch(request_id)


# --- concurrency ------------------------------------------------------------


@each_wiring
def test_concurrent_requests_each_see_their_own_id(framework: str, wiring: str) -> None:
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

    app = build_app(framework, {"/": endpoint}, wiring=wiring)

    async def run() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            with anyio.fail_after(TIMEOUT):
                responses = await asyncio.gather(
                    *(fetch(client, "/", {HEADER: f"req-{i}"}) for i in range(count))
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
