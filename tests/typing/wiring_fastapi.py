"""Real FastAPI wiring of the ASGI adapter, type-checked and never run.

``mypy --strict`` checks that each documented way of attaching
``adapters.asgi.RequestIdMiddleware`` to a FastAPI app type-checks as it is
written, with no ``type: ignore``. pytest does not collect this module.
Serving the wrapped app (httpx, uvicorn) does not depend on the framework:
``wiring_starlette.py`` checks it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from adapters.asgi import RequestIdMiddleware
from correlation import Config, get_request_id


def add_routes(app: FastAPI) -> FastAPI:
    """Give *app* an endpoint reading the id both ways."""

    @app.get("/")
    async def show_id(request: Request) -> dict[str, str | None]:
        from_state: str = request.state.request_id
        return {"context": get_request_id(), "state": from_state}

    return app


def with_middleware_list() -> FastAPI:
    """The adapter in FastAPI's ``middleware=`` list, default and custom."""
    return add_routes(
        FastAPI(
            middleware=[
                Middleware(RequestIdMiddleware, config=Config()),
                Middleware(RequestIdMiddleware),
            ]
        )
    )


def with_add_middleware() -> FastAPI:
    """The adapter added with ``add_middleware``."""
    app = add_routes(FastAPI())
    app.add_middleware(
        RequestIdMiddleware, config=Config(header_name="X-Correlation-ID")
    )
    app.add_middleware(RequestIdMiddleware, config=None)
    return app


def wrapping_the_app() -> RequestIdMiddleware:
    """The adapter around the whole app, so FastAPI's error pages carry the id."""
    config = Config(update_request_header=False)
    return RequestIdMiddleware(add_routes(FastAPI()), config=config)


def as_asgi_app() -> ASGIApp:
    """The wrapped app typed as Starlette's ASGIApp."""
    return RequestIdMiddleware(with_middleware_list())
