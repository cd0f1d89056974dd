"""FastAPI-specific behaviour of the ASGI adapter, driven in process by httpx.

What Starlette and FastAPI share is tested against both in
``test_starlette_and_fastapi.py``; this module covers what only FastAPI has:
dependencies, injected ``BackgroundTasks`` and ``Response``, and its default
HTTPException and validation error responses. FastAPI resolves endpoint
annotations at run time from this module's globals, so every name used in an
endpoint signature is imported at module level.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from framework_testing import HEADER, attach, each_wiring, get
from starlette.middleware import Middleware

from adapters._types import ASGIApp
from correlation import get_request_id


def _new_app(wiring: str) -> tuple[FastAPI, ASGIApp]:
    """Return a new FastAPI app and the ASGI app to serve, per *wiring*.

    Routes and exception handlers are added to the first afterwards; FastAPI
    builds its middleware stack only on the first call.
    """

    def make(middleware: list[Middleware]) -> FastAPI:
        return FastAPI(middleware=middleware)

    return attach(make, wiring)


@each_wiring
def test_dependencies_see_the_id(wiring: str) -> None:
    """Sync, sync-yield and async dependencies see the id, teardown included."""
    events: list[tuple[str, str | None]] = []
    threads: list[int] = []

    def sync_dependency() -> str | None:
        threads.append(threading.get_ident())
        return get_request_id()

    def yield_dependency() -> Iterator[str | None]:
        threads.append(threading.get_ident())
        events.append(("setup", get_request_id()))
        yield get_request_id()
        events.append(("teardown", get_request_id()))

    async def async_dependency() -> str | None:
        await asyncio.sleep(0)
        return get_request_id()

    app, served = _new_app(wiring)

    @app.get("/")
    async def endpoint(
        plain: str | None = Depends(sync_dependency),
        yielded: str | None = Depends(yield_dependency),
        awaited: str | None = Depends(async_dependency),
    ) -> dict[str, Any]:
        return {"plain": plain, "yielded": yielded, "awaited": awaited}

    response = get(served, "/", {HEADER: "dep-1"})
    assert response.json() == {"plain": "dep-1", "yielded": "dep-1", "awaited": "dep-1"}
    assert response.headers.get_list(HEADER) == ["dep-1"]
    assert events == [("setup", "dep-1"), ("teardown", "dep-1")]
    # Sync dependencies run in FastAPI's threadpool, not on the loop thread.
    assert len(threads) == 2
    assert threading.get_ident() not in threads


@each_wiring
def test_background_tasks_see_the_id(wiring: str) -> None:
    """Sync and async BackgroundTasks added by the endpoint see the id."""
    events: list[tuple[str, str | None]] = []

    def sync_task(tag: str) -> None:
        events.append((tag, get_request_id()))

    async def async_task(tag: str) -> None:
        await asyncio.sleep(0)
        events.append((tag, get_request_id()))

    app, served = _new_app(wiring)

    @app.get("/")
    async def endpoint(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(sync_task, "sync")
        background_tasks.add_task(async_task, "async")
        return {"status": "queued"}

    response = get(served, "/", {HEADER: "bg-1"})
    assert response.json() == {"status": "queued"}
    assert response.headers.get_list(HEADER) == ["bg-1"]
    assert events == [("sync", "bg-1"), ("async", "bg-1")]


@each_wiring
def test_app_set_header_is_kept_and_not_duplicated(wiring: str) -> None:
    """An id header set through FastAPI's injected Response is kept, not doubled."""
    app, served = _new_app(wiring)

    @app.get("/")
    async def endpoint(response: Response) -> dict[str, str | None]:
        response.headers["X-Request-ID"] = "app-chosen"
        return {"context": get_request_id()}

    response = get(served, "/", {HEADER: "client-1"})
    assert response.json() == {"context": "client-1"}
    assert response.headers.get_list(HEADER) == ["app-chosen"]


# --- FastAPI's own error responses ------------------------------------------


@each_wiring
def test_default_http_exception_response_carries_the_id(wiring: str) -> None:
    """FastAPI's default HTTPException response carries the id once."""
    app, served = _new_app(wiring)

    @app.get("/teapot")
    async def teapot() -> dict[str, str]:
        raise HTTPException(status_code=418, detail="short and stout")

    response = get(served, "/teapot", {HEADER: "http-0"})
    assert response.status_code == 418
    assert response.json() == {"detail": "short and stout"}
    assert response.headers.get_list(HEADER) == ["http-0"]


@each_wiring
@pytest.mark.parametrize("custom_handler", [False, True])
def test_validation_error_carries_the_id(wiring: str, custom_handler: bool) -> None:
    """A 422 for a bad parameter carries the id; a custom handler sees it."""
    app, served = _new_app(wiring)

    @app.get("/items/{number}")
    async def item(number: int) -> dict[str, int]:
        return {"number": number}  # pragma: no cover

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"context": get_request_id()}, status_code=422)

    if custom_handler:
        app.add_exception_handler(RequestValidationError, on_invalid)
    response = get(served, "/items/not-a-number", {HEADER: "invalid-1"})
    assert response.status_code == 422
    assert response.headers.get_list(HEADER) == ["invalid-1"]
    if custom_handler:
        assert response.json() == {"context": "invalid-1"}
    else:
        assert response.json()["detail"][0]["loc"] == ["path", "number"]
