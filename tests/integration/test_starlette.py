"""Starlette-specific behaviour of the ASGI adapter, driven in process by httpx.

What Starlette and FastAPI share is tested against both in
``test_starlette_and_fastapi.py``; this module covers user middleware inside
the adapter, background tasks attached to a response, and Starlette's own
error responses and headers.
"""

from __future__ import annotations

import asyncio

from framework_testing import (
    HEADER,
    assert_consistent,
    async_echo,
    build_app,
    each_wiring,
    echo_app,
    get,
    single,
)
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from adapters._types import ASGIApp, Message, Receive, Scope, Send
from correlation import get_request_id


class _BoomError(Exception):
    """The exception the failing endpoint raises."""


@each_wiring
def test_middleware_inside_the_adapter_sees_the_id(wiring: str) -> None:
    """Pure ASGI and BaseHTTPMiddleware middleware inside the adapter see the id."""
    events: list[tuple[str, str | None]] = []

    class Recorder:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            events.append(("asgi-before", get_request_id()))

            async def recording_send(message: Message) -> None:
                events.append((message["type"], get_request_id()))
                await send(message)

            await self.app(scope, receive, recording_send)
            events.append(("asgi-after", get_request_id()))

    async def dispatch(
        request: Request, call_next: RequestResponseEndpoint
    ) -> Response:
        events.append(("base-before", get_request_id()))
        response = await call_next(request)
        events.append(("base-after", get_request_id()))
        return response

    app = build_app(
        "starlette",
        {"/": async_echo},
        wiring=wiring,
        middleware=[
            Middleware(Recorder),
            Middleware(BaseHTTPMiddleware, dispatch=dispatch),
        ],
    )
    response = get(app, "/", {HEADER: "mw-1"})
    assert assert_consistent(response) == "mw-1"
    # BaseHTTPMiddleware may split the body into several messages.
    assert {tag for tag, _ in events} == {
        "asgi-before",
        "base-before",
        "base-after",
        "http.response.start",
        "http.response.body",
        "asgi-after",
    }
    assert {request_id for _, request_id in events} == {"mw-1"}


# --- background work --------------------------------------------------------


@each_wiring
def test_background_task_sees_the_id(wiring: str) -> None:
    """A single BackgroundTask, run after the body is sent, sees the id."""
    events: list[str | None] = []

    def task(tag: str) -> None:
        events.append(f"{tag}:{get_request_id()}")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(task, "single"))

    app = build_app("starlette", {"/": endpoint}, wiring=wiring)
    response = get(app, "/", {HEADER: "bg-1"})
    assert response.headers.get_list(HEADER) == ["bg-1"]
    assert events == ["single:bg-1"]


@each_wiring
def test_background_tasks_sync_and_async_see_the_id(wiring: str) -> None:
    """Sync and async tasks of a BackgroundTasks group all see the id."""
    events: list[tuple[str, str | None]] = []

    def sync_task() -> None:
        events.append(("sync", get_request_id()))

    async def async_task() -> None:
        await asyncio.sleep(0)
        events.append(("async", get_request_id()))

    async def endpoint(request: Request) -> Response:
        tasks = BackgroundTasks()
        tasks.add_task(sync_task)
        tasks.add_task(async_task)
        return PlainTextResponse("ok", background=tasks)

    app = build_app("starlette", {"/": endpoint}, wiring=wiring)
    response = get(app, "/")
    request_id = single(response.headers.get_list(HEADER))
    assert events == [("sync", request_id), ("async", request_id)]


# --- Starlette's own responses ----------------------------------------------


def test_wrapping_the_app_default_500_carries_the_id() -> None:
    """Around the whole app, Starlette's default 500 page carries the id."""

    async def boom(request: Request) -> Response:
        raise _BoomError("boom")

    app = build_app("starlette", {"/boom": boom}, wiring="wrapped")
    response = get(app, "/boom", {HEADER: "err-4"}, raise_app_exceptions=False)
    assert response.status_code == 500
    assert response.headers.get_list(HEADER) == ["err-4"]


@each_wiring
def test_default_not_found_carries_the_id(wiring: str) -> None:
    """Starlette's own 404 for an unknown path carries the id once."""
    response = get(echo_app("starlette", wiring), "/nowhere", {HEADER: "missing-route"})
    assert response.status_code == 404
    assert response.headers.get_list(HEADER) == ["missing-route"]


@each_wiring
def test_app_set_header_is_kept_and_not_duplicated(wiring: str) -> None:
    """An id header the app sets itself is kept, and no second one is added."""

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(
            str(get_request_id()), headers={"X-Request-ID": "app-chosen"}
        )

    app = build_app("starlette", {"/": endpoint}, wiring=wiring)
    response = get(app, "/", {HEADER: "client-1"})
    assert response.text == "client-1"
    assert response.headers.get_list(HEADER) == ["app-chosen"]
