"""``adapters.aiohttp``: what only the aiohttp integration has.

A request's own ``middlewares=``, and the construction errors. The shared
contract runs in ``test_outbound.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from recording_http import Recorder

from adapters.aiohttp import RequestIdClientMiddleware
from correlation import bound_request_id

NAME = "X-Request-ID"
TIMEOUT = aiohttp.ClientTimeout(total=10)


def test_a_requests_own_middlewares_replace_the_sessions(first: Recorder) -> None:
    """The pitfall the docs name: pass the middleware again per request."""
    middleware = RequestIdClientMiddleware()

    async def main() -> None:
        async with aiohttp.ClientSession(
            middlewares=(middleware,), timeout=TIMEOUT
        ) as session:
            for own in ((), (middleware,)):
                async with session.get(f"{first.url}/ok", middlewares=own) as response:
                    await response.read()

    with bound_request_id("job-1"):
        asyncio.run(main())
    assert [seen.values(NAME) for seen in first.seen()] == [[], ["job-1"]]


def test_a_request_sent_twice_is_decided_again_each_time(first: Recorder) -> None:
    """A middleware further out sends one request in its own unit, then outside it."""

    async def twice(request: Any, handler: Any) -> Any:
        with bound_request_id("inner-unit"):
            (await handler(request)).release()
        return await handler(request)

    async def main() -> None:
        async with (
            aiohttp.ClientSession(
                middlewares=(twice, RequestIdClientMiddleware()), timeout=TIMEOUT
            ) as session,
            session.get(f"{first.url}/ok") as response,
        ):
            await response.read()

    asyncio.run(main())
    assert [seen.values(NAME) for seen in first.seen()] == [["inner-unit"], []]


def test_the_repr_names_the_rules() -> None:
    assert repr(RequestIdClientMiddleware(hosts=[".internal"])) == (
        "RequestIdClientMiddleware(<correlation outbound X-Request-ID to .internal>)"
    )
