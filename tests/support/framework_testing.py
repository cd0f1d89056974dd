"""Starlette and FastAPI apps with the adapter attached, driven through httpx.

Not a test module; tests import it as ``framework_testing`` (see
``asgi_testing``). Both frameworks build their middleware stack with
``ServerErrorMiddleware`` outermost, so ``Middleware(...)`` and
``add_middleware`` place the adapter inside it, while ``RequestIdMiddleware(app)``
wraps the whole stack: the three *wirings* every test may run under.

FastAPI resolves endpoint annotations at run time from the globals of the
module defining the endpoint, so a module passing endpoints here imports every
name used in their signatures at module level.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from asgi_testing import TIMEOUT, asgi_client, assert_unbound
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Lifespan
from starlette.websockets import WebSocket

from adapters._types import ASGIApp
from adapters.asgi import RequestIdMiddleware
from correlation import Config, get_request_id

__all__ = [
    "FRAMEWORKS",
    "HEADER",
    "INSIDE_WIRINGS",
    "WIRINGS",
    "ErrorHandlers",
    "HttpHeaders",
    "assert_consistent",
    "assert_note",
    "async_echo",
    "attach",
    "build_app",
    "each_wiring",
    "echo_app",
    "fetch",
    "get",
    "inside_wirings",
    "seen",
    "single",
    "sync_echo",
]

HEADER = "x-request-id"
FRAMEWORKS = ("starlette", "fastapi")
WIRINGS = ("middleware", "add_middleware", "wrapped")
#: Wirings that put the adapter inside ServerErrorMiddleware.
INSIDE_WIRINGS = ("middleware", "add_middleware")

#: Run a test once per wiring (``wiring: str`` argument).
each_wiring = pytest.mark.parametrize("wiring", WIRINGS)
#: Run a test once per wiring inside ServerErrorMiddleware.
inside_wirings = pytest.mark.parametrize("wiring", INSIDE_WIRINGS)

#: Request headers as httpx takes them; bytes values are sent as they are.
HttpHeaders = (
    Mapping[str, str] | Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]] | None
)
HttpEndpoint = Callable[[Request], Awaitable[Response]] | Callable[[Request], Response]
WebSocketEndpoint = Callable[[WebSocket], Awaitable[None]]
ErrorHandler = Callable[[Request, Any], Coroutine[Any, Any, Response]]
#: Exception handlers as both frameworks' constructors accept them.
ErrorHandlers = dict[int | type[Exception], ErrorHandler]

AppT = TypeVar("AppT", bound=Starlette)
T = TypeVar("T")


def attach(
    make: Callable[[list[Middleware]], AppT],
    wiring: str,
    *,
    config: Config | None = None,
    middleware: Sequence[Middleware] = (),
) -> tuple[AppT, ASGIApp]:
    """Make an app with the adapter attached as *wiring* says.

    *make* builds the app from the ``middleware=`` list for its constructor.
    Returns the app (for adding routes and handlers before its first call)
    and the ASGI app to serve. *middleware* always ends up inside the adapter.
    """
    if wiring == "middleware":
        app = make([Middleware(RequestIdMiddleware, config=config), *middleware])
        return app, app
    app = make(list(middleware))
    if wiring == "add_middleware":
        # add_middleware inserts in front: the adapter ends up outermost of
        # the user middleware, still inside ServerErrorMiddleware.
        app.add_middleware(RequestIdMiddleware, config=config)
        return app, app
    assert wiring == "wrapped"
    return app, RequestIdMiddleware(app, config=config)


def build_app(
    framework: str,
    http: Mapping[str, HttpEndpoint],
    websocket: Mapping[str, WebSocketEndpoint] | None = None,
    *,
    wiring: str = "add_middleware",
    config: Config | None = None,
    exception_handlers: ErrorHandlers | None = None,
    lifespan: Lifespan[Any] | None = None,
    middleware: Sequence[Middleware] = (),
) -> ASGIApp:
    """Return a new *framework* app serving the endpoints, wired per *wiring*.

    Starlette gets plain ``Route``/``WebSocketRoute``; FastAPI gets its own
    ``APIRoute``/``APIWebSocketRoute``, as its decorators would register.
    """
    app_class: type[Starlette]
    http_route: Callable[[str, HttpEndpoint], BaseRoute]
    socket_route: Callable[[str, WebSocketEndpoint], BaseRoute]
    if framework == "fastapi":
        app_class, http_route, socket_route = FastAPI, APIRoute, APIWebSocketRoute
    else:
        assert framework == "starlette"
        app_class, http_route, socket_route = Starlette, Route, WebSocketRoute
    routes: list[BaseRoute] = [http_route(path, ep) for path, ep in http.items()]
    sockets = websocket or {}
    routes += [socket_route(path, ep) for path, ep in sockets.items()]

    def make(middleware: list[Middleware]) -> Starlette:
        return app_class(
            routes=routes,
            middleware=middleware,
            exception_handlers=exception_handlers,
            lifespan=lifespan,
        )

    return attach(make, wiring, config=config, middleware=middleware)[1]


async def fetch(
    client: httpx.AsyncClient, path: str, headers: HttpHeaders = None
) -> httpx.Response:
    """GET *path* in this very task, bounded, and check nothing stays bound."""
    try:
        # anyio.fail_after, unlike asyncio.wait_for on Python < 3.12, runs the
        # request in the current task, so the checks below see the context
        # the adapter was called in.
        with anyio.fail_after(TIMEOUT):
            return await client.get(path, headers=headers)
    finally:
        assert_unbound()


def get(
    app: ASGIApp,
    path: str,
    headers: HttpHeaders = None,
    *,
    raise_app_exceptions: bool = True,
) -> httpx.Response:
    """Run one GET against *app* through httpx's ASGI transport."""

    async def run() -> httpx.Response:
        async with asgi_client(
            app, raise_app_exceptions=raise_app_exceptions
        ) as client:
            return await fetch(client, path, headers)

    return asyncio.run(run())


def seen(request: Request) -> dict[str, Any]:
    """What an endpoint observes about the request id."""
    return {
        "context": get_request_id(),
        "state": request.state.request_id,
        "headers": request.headers.getlist(HEADER),
        "thread": threading.get_ident(),
    }


async def async_echo(request: Request) -> Response:
    """Answer with what the endpoint has ``seen``, on the event loop."""
    return JSONResponse(seen(request))


def sync_echo(request: Request) -> Response:
    """Answer with what the endpoint has ``seen``, in a worker thread."""
    return JSONResponse(seen(request))


def echo_app(
    framework: str, wiring: str = "add_middleware", config: Config | None = None
) -> ASGIApp:
    """An app whose /async and /sync endpoints answer with what they ``seen``."""
    http: dict[str, HttpEndpoint] = {"/async": async_echo, "/sync": sync_echo}
    return build_app(framework, http, wiring=wiring, config=config)


def single(values: list[T]) -> T:
    """Return the only element of *values*, failing if there is not exactly one."""
    assert len(values) == 1, values
    return values[0]


def assert_consistent(response: httpx.Response) -> str:
    """Check the endpoint saw one id everywhere, equal to the response header."""
    assert response.status_code == 200
    request_id = single(response.headers.get_list(HEADER))
    body = response.json()
    assert body["context"] == request_id
    assert body["state"] == request_id
    assert body["headers"] == [request_id]
    return request_id


def assert_note(exc: BaseException, request_id: str) -> None:
    """Check the request-id note the adapter adds on Python 3.11+."""
    notes = getattr(exc, "__notes__", None)
    if sys.version_info >= (3, 11):
        assert notes == [f"request_id={request_id}"]
    else:
        assert notes is None
