"""``adapters.aiohttp``: what only the aiohttp integration has.

A request's own ``middlewares=``, and the construction errors. The shared
contract runs in ``test_outbound.py``.
"""

from __future__ import annotations

import asyncio

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


def test_the_repr_names_the_rules() -> None:
    assert repr(RequestIdClientMiddleware(hosts=[".internal"])) == (
        "RequestIdClientMiddleware(<correlation outbound X-Request-ID to .internal>)"
    )
