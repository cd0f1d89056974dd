"""One driver per outbound client, so every contract line runs through each.

``CLIENTS`` holds httpx's ``Client`` (wired with ``propagate``), httpx's
``AsyncClient`` (a ``RequestIdHook`` in its event hooks), the same two of
httpx's fork httpx2, a requests
``Session`` (``propagate``) and an aiohttp ``ClientSession``
(``RequestIdClientMiddleware``). Each ``get`` builds a fresh client, sends one
GET in the current context (following redirects), closes the client, and
returns the final status; what went on the wire is for the recording server
to tell.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import httpx2
import pytest
import requests
from requests.auth import HTTPDigestAuth

from adapters import aiohttp as aiohttp_adapter
from adapters import httpx as httpx_adapter
from adapters import requests as requests_adapter
from correlation import bound_request_id

#: How long one request may take, whichever client sends it.
TIMEOUT = 10.0
USER, PASSWORD = "user", "secret"


@dataclass(frozen=True)
class Options:
    """What a test asks of the client: the integration's settings and the request's."""

    hosts: list[str] | None = None
    header_name: str = "X-Request-ID"
    headers: dict[str, str] | None = None
    #: Answer a Digest challenge (an authentication re-send).
    digest: bool = False
    #: Take the proxy from HTTP_PROXY.
    trust_env: bool = False


def _integration(options: Options) -> dict[str, Any]:
    return {"hosts": options.hosts, "header_name": options.header_name}


def httpx_sync(url: str, options: Options, library: Any = httpx) -> int:
    auth = library.DigestAuth(USER, PASSWORD) if options.digest else None
    client = library.Client(
        timeout=TIMEOUT, follow_redirects=True, trust_env=options.trust_env
    )
    with httpx_adapter.propagate(client, **_integration(options)):
        response = client.get(url, headers=options.headers, auth=auth)
        return int(response.status_code)


def httpx_async(url: str, options: Options, library: Any = httpx) -> int:
    hook = httpx_adapter.RequestIdHook(**_integration(options))
    auth = library.DigestAuth(USER, PASSWORD) if options.digest else None

    async def main() -> int:
        async with library.AsyncClient(
            event_hooks={"request": [hook]},
            timeout=TIMEOUT,
            follow_redirects=True,
            trust_env=options.trust_env,
        ) as client:
            response = await client.get(url, headers=options.headers, auth=auth)
            return int(response.status_code)

    # asyncio.run copies the current context: the id is visible in main().
    return asyncio.run(main())


def httpx2_sync(url: str, options: Options) -> int:
    return httpx_sync(url, options, httpx2)


def httpx2_async(url: str, options: Options) -> int:
    return httpx_async(url, options, httpx2)


def requests_session(url: str, options: Options) -> int:
    session = requests.Session()
    session.trust_env = options.trust_env
    auth = HTTPDigestAuth(USER, PASSWORD) if options.digest else None
    with requests_adapter.propagate(session, **_integration(options)):
        response = session.get(url, headers=options.headers, auth=auth, timeout=TIMEOUT)
        return response.status_code


def aiohttp_session(url: str, options: Options) -> int:
    middlewares: list[Any] = []
    if options.digest:
        middlewares.append(aiohttp.DigestAuthMiddleware(USER, PASSWORD))
    middlewares.append(
        aiohttp_adapter.RequestIdClientMiddleware(**_integration(options))
    )

    async def main() -> int:
        async with (
            aiohttp.ClientSession(
                middlewares=tuple(middlewares),
                trust_env=options.trust_env,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as session,
            session.get(url, headers=options.headers) as response,
        ):
            await response.read()
            return response.status

    return asyncio.run(main())


Driver = Callable[[str, Options], int]

CLIENTS = [
    pytest.param(httpx_sync, id="httpx-Client"),
    pytest.param(httpx_async, id="httpx-AsyncClient"),
    pytest.param(httpx2_sync, id="httpx2-Client"),
    pytest.param(httpx2_async, id="httpx2-AsyncClient"),
    pytest.param(requests_session, id="requests"),
    pytest.param(aiohttp_session, id="aiohttp"),
]


# --- many tasks on one async client ---------------------------------------------


def _each_in_its_unit(
    fetch: Callable[[str], Awaitable[object]], urls: dict[str, str]
) -> list[Awaitable[object]]:
    """One task per (id, url): each binds its id, then fetches its url."""

    async def one(request_id: str, url: str) -> None:
        with bound_request_id(request_id):
            await fetch(url)

    return [one(request_id, url) for request_id, url in urls.items()]


def httpx_tasks(urls: dict[str, str], library: Any = httpx) -> None:
    async def main() -> None:
        limits = library.Limits(max_connections=len(urls))
        client = library.AsyncClient(timeout=TIMEOUT, limits=limits)
        async with httpx_adapter.propagate(client):
            await asyncio.gather(*_each_in_its_unit(client.get, urls))

    asyncio.run(main())


def httpx2_tasks(urls: dict[str, str]) -> None:
    httpx_tasks(urls, httpx2)


def aiohttp_tasks(urls: dict[str, str]) -> None:
    async def main() -> None:
        middleware = aiohttp_adapter.RequestIdClientMiddleware()
        async with aiohttp.ClientSession(
            middlewares=(middleware,), timeout=aiohttp.ClientTimeout(total=TIMEOUT)
        ) as session:

            async def fetch(url: str) -> None:
                async with session.get(url) as response:
                    await response.read()

            await asyncio.gather(*_each_in_its_unit(fetch, urls))

    asyncio.run(main())


#: Each sends one GET per (id, url) from its own task, every task on one
#: shared client, each task inside ``bound_request_id`` of its id.
ONE_CLIENT_MANY_TASKS = [
    pytest.param(httpx_tasks, id="httpx-AsyncClient"),
    pytest.param(httpx2_tasks, id="httpx2-AsyncClient"),
    pytest.param(aiohttp_tasks, id="aiohttp"),
]


# --- construction ---------------------------------------------------------------

#: Every public way to build an integration, each taking ``header_name`` and
#: ``hosts`` as keywords.
BUILDERS = [
    pytest.param(httpx_adapter.RequestIdHook, id="httpx-RequestIdHook"),
    pytest.param(
        lambda **options: httpx_adapter.propagate(httpx.Client(), **options),
        id="httpx-propagate",
    ),
    pytest.param(requests_adapter.RequestIdAdapter, id="requests-RequestIdAdapter"),
    pytest.param(
        lambda **options: requests_adapter.propagate(requests.Session(), **options),
        id="requests-propagate",
    ),
    pytest.param(
        aiohttp_adapter.RequestIdClientMiddleware,
        id="aiohttp-RequestIdClientMiddleware",
    ),
]
