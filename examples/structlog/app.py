"""A Starlette service that logs with structlog, one JSON line per event.

``add_request_id`` puts the id of the request being served into every event;
events logged outside a request have no ``request_id`` key.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from adapters.structlog import add_request_id
from correlation import get_request_id

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        add_request_id,  # after merge_contextvars: an id you bind yourself wins
        structlog.processors.add_log_level,
        structlog.processors.JSONRenderer(),
    ],
)
log = structlog.get_logger()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    log.info("ready")
    yield


async def order(request: Request) -> JSONResponse:
    log.info("order received", order=42)
    return JSONResponse({"request_id": get_request_id()})


app = RequestIdMiddleware(Starlette(routes=[Route("/order", order)], lifespan=lifespan))
