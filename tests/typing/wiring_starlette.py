"""Real Starlette wiring of the ASGI adapter, type-checked and never run.

``mypy --strict`` checks that each documented way of attaching
``adapters.asgi.RequestIdMiddleware`` to a Starlette app type-checks as it
is written, with no ``type: ignore``, and that the wrapped app can be served
by httpx and uvicorn. pytest does not collect this module.
"""

from __future__ import annotations

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from adapters.asgi import RequestIdMiddleware
from correlation import Config, get_request_id


async def show_id(request: Request) -> PlainTextResponse:
    """An endpoint reading the id both ways."""
    from_context: str | None = get_request_id()
    from_state: str = request.state.request_id
    return PlainTextResponse(f"{from_context} {from_state}")


def with_middleware_list() -> Starlette:
    """The adapter in Starlette's ``middleware=`` list, default and custom."""
    return Starlette(
        routes=[Route("/", show_id)],
        middleware=[
            Middleware(RequestIdMiddleware, config=Config()),
            Middleware(RequestIdMiddleware),
            Middleware(RequestIdMiddleware, config=None),
        ],
    )


def with_add_middleware() -> Starlette:
    """The adapter added with ``add_middleware``."""
    app = Starlette(routes=[Route("/", show_id)])
    app.add_middleware(
        RequestIdMiddleware, config=Config(header_name="X-Correlation-ID")
    )
    app.add_middleware(RequestIdMiddleware)
    return app


def wrapping_the_app() -> RequestIdMiddleware:
    """The adapter around the whole app, so Starlette's error pages carry the id."""
    config = Config(trust_incoming=False, response_header=True)
    return RequestIdMiddleware(Starlette(routes=[Route("/", show_id)]), config=config)


def stacked() -> ASGIApp:
    """The adapter wrapping another adapter, typed as Starlette's ASGIApp."""
    inner: ASGIApp = RequestIdMiddleware(with_add_middleware())
    return RequestIdMiddleware(inner)


def httpx_client() -> httpx.AsyncClient:
    """The wrapped app served in process by httpx."""
    transport = httpx.ASGITransport(app=wrapping_the_app())
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


#: What ``uvicorn module:app`` would serve.
app: RequestIdMiddleware = wrapping_the_app()


def serve() -> None:
    """Serve the wrapped app with uvicorn."""
    uvicorn.run(app, host="127.0.0.1", port=8000)
    uvicorn.run(with_add_middleware(), host="127.0.0.1", port=8000)
