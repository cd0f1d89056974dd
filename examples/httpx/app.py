"""A Starlette service that calls another service with an httpx client.

The client is built once and wired with ``adapters.httpx.propagate``: every
request it sends carries the id of the request being served.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from adapters.httpx import propagate
from correlation import get_request_id

# The service to call; by default this app's own /echo, standing in for one.
DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8000/echo")


class State(TypedDict):
    client: httpx.AsyncClient


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    # propagate(..., hosts=["api.internal"]) would send the id to that host only.
    async with propagate(httpx.AsyncClient(timeout=10)) as client:
        yield {"client": client}


async def home(request: Request) -> JSONResponse:
    client: httpx.AsyncClient = request.state.client
    downstream = await client.get(DOWNSTREAM_URL)
    return JSONResponse({"request_id": get_request_id(), "downstream": downstream.text})


async def echo(request: Request) -> PlainTextResponse:
    """Stands in for the other service: answers with the id it was called with."""
    return PlainTextResponse(request.headers["X-Request-ID"])


app = RequestIdMiddleware(
    Starlette(routes=[Route("/", home), Route("/echo", echo)], lifespan=lifespan)
)
