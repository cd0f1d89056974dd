"""A Starlette service that calls another service with an aiohttp session.

The session is built once with ``RequestIdClientMiddleware`` among its
middlewares: every request it sends carries the id of the request being served.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from adapters.aiohttp import RequestIdClientMiddleware
from adapters.asgi import RequestIdMiddleware
from correlation import get_request_id

# The service to call; by default this app's own /echo, standing in for one.
DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8000/echo")


class State(TypedDict):
    session: aiohttp.ClientSession


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    # RequestIdClientMiddleware(hosts=["api.internal"]): to that host only.
    async with aiohttp.ClientSession(
        middlewares=(RequestIdClientMiddleware(),),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:
        yield {"session": session}


async def home(request: Request) -> JSONResponse:
    session: aiohttp.ClientSession = request.state.session
    async with session.get(DOWNSTREAM_URL) as downstream:
        text = await downstream.text()
    return JSONResponse({"request_id": get_request_id(), "downstream": text})


async def echo(request: Request) -> PlainTextResponse:
    """Stands in for the other service: answers with the id it was called with."""
    return PlainTextResponse(request.headers["X-Request-ID"])


app = RequestIdMiddleware(
    Starlette(routes=[Route("/", home), Route("/echo", echo)], lifespan=lifespan)
)
