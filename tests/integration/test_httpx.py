"""``adapters.httpx``: the id on what httpx sends, proved on real loopback servers.

Two recording servers, on 127.0.0.1 and 127.0.0.2 (two ports on one address
would be one host to the allow-list). What each server received is the only
evidence: no HTTP mocking library, since those bypass the event hooks.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import httpx
import pytest
from asgi_testing import TIMEOUT
from recording_http import Recorder

from adapters.httpx import RequestIdHook, propagate
from correlation import bound_request_id

NAME = "X-Request-ID"


def send(url: str, *, use_async: bool, **client_options: Any) -> httpx.Response:
    """GET *url* with a propagating client, sync or async, in the current context."""
    options = {"timeout": TIMEOUT, "follow_redirects": True, **client_options}
    if not use_async:
        with propagate(httpx.Client(**options)) as client:
            return client.get(url)

    async def main() -> httpx.Response:
        async with propagate(httpx.AsyncClient(**options)) as client:
            return await client.get(url)

    # asyncio.run copies the current context: the id is visible in main().
    return asyncio.run(main())


CLIENTS = [pytest.param(False, id="Client"), pytest.param(True, id="AsyncClient")]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_mounted_transports_are_covered(second: Recorder, use_async: bool) -> None:
    transport: Any = httpx.AsyncHTTPTransport() if use_async else httpx.HTTPTransport()
    with bound_request_id("job-9"):
        send(f"{second.url}/ok", use_async=use_async, mounts={second.url: transport})
    assert [seen.values(NAME) for seen in second.seen()] == [["job-9"]]


def test_one_hook_object_serves_sync_and_async_clients_without_warnings(
    first: Recorder,
) -> None:
    """Under ``-W error``, in a fresh interpreter: no never-awaited coroutine."""
    script = textwrap.dedent(
        f"""
        import asyncio, gc
        import httpx
        from adapters.httpx import RequestIdHook
        from correlation import bound_request_id

        hook = RequestIdHook()
        hooks = {{"request": [hook]}}
        with bound_request_id("sync-1"), httpx.Client(event_hooks=hooks) as client:
            client.get("{first.url}/ok")

        async def main():
            async with httpx.AsyncClient(event_hooks=hooks) as client:
                with bound_request_id("async-1"):
                    await client.get("{first.url}/ok")

        asyncio.run(main())
        gc.collect()
        print("done")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "done\n")
    assert [seen.values(NAME) for seen in first.seen()] == [["sync-1"], ["async-1"]]


def test_propagate_is_idempotent_and_returns_the_client(first: Recorder) -> None:
    def other_hook(request: httpx.Request) -> None:
        request.headers["X-Other"] = "1"

    client = httpx.Client(event_hooks={"request": [other_hook]}, timeout=TIMEOUT)
    assert propagate(client) is client
    assert propagate(client, header_name="X-Correlation-ID") is client
    hooks = client.event_hooks["request"]
    assert hooks[0] is other_hook
    assert [type(hook) for hook in hooks[1:]] == [RequestIdHook]
    with bound_request_id("job-10"), client:
        client.get(f"{first.url}/ok")
    (seen,) = first.seen()
    assert seen.values("X-Correlation-ID") == ["job-10"]
    assert seen.values(NAME) == []
    assert seen.values("X-Other") == ["1"]


def test_the_repr_names_the_rules() -> None:
    assert repr(RequestIdHook(hosts=["api.internal"])) == (
        "RequestIdHook(<correlation outbound X-Request-ID to api.internal>)"
    )


@pytest.mark.parametrize("thing", [object(), "http://x", None])
def test_propagate_refuses_what_is_not_an_httpx_client(thing: object) -> None:
    with pytest.raises(TypeError, match=r"httpx\.Client or httpx\.AsyncClient"):
        propagate(thing)  # type: ignore[type-var]


def test_the_hook_reads_the_id_on_each_hop_not_at_construction(
    first: Recorder,
) -> None:
    hook = RequestIdHook()
    with httpx.Client(event_hooks={"request": [hook]}, timeout=TIMEOUT) as client:
        with bound_request_id("first-unit"):
            client.get(f"{first.url}/ok")
        client.get(f"{first.url}/ok")
        with bound_request_id("second-unit"):
            client.get(f"{first.url}/ok")
    assert [seen.values(NAME) for seen in first.seen()] == [
        ["first-unit"],
        [],
        ["second-unit"],
    ]
