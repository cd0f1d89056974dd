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
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from asgi_testing import HEX32, TIMEOUT, asgi_client
from hostile import Hostile, hostile_params, needles
from recording_http import Recorder, serve_recorder

from adapters import asgi
from adapters.httpx import RequestIdHook, propagate
from correlation import bound_request_id, get_request_id

NAME = "X-Request-ID"


@pytest.fixture(scope="module")
def first() -> Iterator[Recorder]:
    """The recording server on 127.0.0.1."""
    with serve_recorder("127.0.0.1") as recorder:
        yield recorder


@pytest.fixture(scope="module")
def second() -> Iterator[Recorder]:
    """The recording server on 127.0.0.2: another host."""
    with serve_recorder("127.0.0.2") as recorder:
        yield recorder


@pytest.fixture(autouse=True)
def _forget(first: Recorder, second: Recorder) -> None:
    first.clear()
    second.clear()


def redirect(via: Recorder, to: str, code: int = 302) -> str:
    """A URL on *via* that redirects to *to*."""
    return f"{via.url}/redirect?to={quote(to, safe='')}&code={code}"


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
def test_inside_a_unit_of_work_one_header_carries_the_id(
    first: Recorder, use_async: bool
) -> None:
    with bound_request_id("job-1"):
        response = send(f"{first.url}/ok", use_async=use_async)
    assert response.status_code == 200
    (seen,) = first.seen()
    assert seen.values(NAME) == ["job-1"]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_outside_a_unit_of_work_nothing_is_sent(
    first: Recorder, use_async: bool
) -> None:
    send(f"{first.url}/ok", use_async=use_async)
    (seen,) = first.seen()
    assert seen.values(NAME) == []
    assert get_request_id() is None


@pytest.mark.parametrize("use_async", CLIENTS)
@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Request-ID", "mine"), ("x-request-id", "MINE-2"), ("X-REQUEST-ID", "")],
)
def test_the_callers_own_header_is_kept(
    first: Recorder, second: Recorder, use_async: bool, name: str, value: str
) -> None:
    """Any case, any value, empty included; on every hop, to any host."""
    target = redirect(first, f"{second.url}/ok")
    with bound_request_id("job-2"):
        send(target, use_async=use_async, headers={name: value})
    for recorder in (first, second):
        (seen,) = recorder.seen()
        assert seen.values(NAME) == [value]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_the_allow_list_picks_the_hosts(
    first: Recorder, second: Recorder, use_async: bool
) -> None:
    hook = RequestIdHook(hosts=["127.0.0.2"])
    with bound_request_id("job-3"):
        for recorder in (first, second):
            send_with(hook, f"{recorder.url}/ok", use_async=use_async)
    assert [seen.values(NAME) for seen in first.seen()] == [[]]
    assert [seen.values(NAME) for seen in second.seen()] == [["job-3"]]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_an_empty_allow_list_sends_nowhere(first: Recorder, use_async: bool) -> None:
    with bound_request_id("job-4"):
        send_with(RequestIdHook(hosts=[]), f"{first.url}/ok", use_async=use_async)
    assert [seen.values(NAME) for seen in first.seen()] == [[]]


def send_with(
    hook: RequestIdHook, url: str, *, use_async: bool, **options: Any
) -> httpx.Response:
    """GET *url* through a client built with *hook* in its event hooks."""
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [hook]}
    if not use_async:
        with httpx.Client(event_hooks=hooks, timeout=TIMEOUT, **options) as client:
            return client.get(url, follow_redirects=True)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(
            event_hooks=hooks, timeout=TIMEOUT, **options
        ) as client:
            return await client.get(url, follow_redirects=True)

    return asyncio.run(main())


@pytest.mark.parametrize("use_async", CLIENTS)
@pytest.mark.parametrize("code", [302, 307])
def test_a_redirect_off_the_list_drops_the_id_and_a_chain_back_restores_it(
    first: Recorder, second: Recorder, use_async: bool, code: int
) -> None:
    """127.0.0.1 (listed) -> 127.0.0.2 (not) -> 127.0.0.1 again."""
    back = f"{first.url}/ok"
    target = redirect(first, redirect(second, back, code), code)
    with bound_request_id("job-5"):
        response = send_with(
            RequestIdHook(hosts=["127.0.0.1"]), target, use_async=use_async
        )
    assert response.status_code == 200
    assert len(response.history) == 2
    assert [seen.values(NAME) for seen in first.seen()] == [["job-5"], ["job-5"]]
    assert [seen.values(NAME) for seen in second.seen()] == [[]]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_redirects_within_a_listed_host_keep_the_id(
    first: Recorder, use_async: bool
) -> None:
    target = redirect(first, redirect(first, f"{first.url}/ok"))
    with bound_request_id("job-6"):
        send_with(RequestIdHook(hosts=["127.0.0.1"]), target, use_async=use_async)
    assert [seen.values(NAME) for seen in first.seen()] == [["job-6"]] * 3


@pytest.mark.parametrize("use_async", CLIENTS)
def test_an_auth_flow_resend_carries_the_id(first: Recorder, use_async: bool) -> None:
    with bound_request_id("job-7"):
        response = send(
            f"{first.url}/digest",
            use_async=use_async,
            auth=httpx.DigestAuth("user", "secret"),
        )
    assert response.status_code == 200
    challenged, authorized = first.seen()
    assert challenged.values("Authorization") == []
    assert authorized.values("Authorization")[0].startswith("Digest ")
    assert challenged.values(NAME) == authorized.values(NAME) == ["job-7"]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_a_forward_proxy_from_http_proxy_sees_the_header(
    first: Recorder, second: Recorder, use_async: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook sits above the transport: httpx's own proxy transport keeps it."""
    monkeypatch.setenv("HTTP_PROXY", first.url)
    for variable in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with bound_request_id("job-8"):
        response = send(f"{second.url}/ok", use_async=use_async, trust_env=True)
    assert response.status_code == 200
    (at_proxy,) = first.seen()
    assert at_proxy.proxied
    assert at_proxy.values(NAME) == ["job-8"]
    (at_host,) = second.seen()
    assert at_host.values(NAME) == ["job-8"]


@pytest.mark.parametrize("use_async", CLIENTS)
def test_mounted_transports_are_covered(second: Recorder, use_async: bool) -> None:
    transport: Any = httpx.AsyncHTTPTransport() if use_async else httpx.HTTPTransport()
    with bound_request_id("job-9"):
        send(f"{second.url}/ok", use_async=use_async, mounts={second.url: transport})
    assert [seen.values(NAME) for seen in second.seen()] == [["job-9"]]


def test_fifty_concurrent_tasks_on_one_client_each_send_their_own_id(
    first: Recorder,
) -> None:
    async def one(client: httpx.AsyncClient, number: int) -> None:
        with bound_request_id(f"task-{number}"):
            await client.get(f"{first.url}/ok?n={number}")

    async def main() -> None:
        limits = httpx.Limits(max_connections=50)
        async with propagate(
            httpx.AsyncClient(timeout=TIMEOUT, limits=limits)
        ) as client:
            await asyncio.gather(*(one(client, n) for n in range(50)))

    asyncio.run(main())
    seen = first.seen()
    assert len(seen) == 50
    for request in seen:
        number = request.target.rpartition("=")[2]
        assert request.values(NAME) == [f"task-{number}"]


@pytest.mark.parametrize("row", hostile_params(fails_floor=True, plain_http=True))
def test_an_incoming_value_that_fails_the_floor_never_reaches_the_wire(
    second: Recorder, row: Hostile
) -> None:
    """A request behind the ASGI adapter calls out: the generated id goes on."""
    occurrences = row.occurrences

    async def app(scope: Any, receive: Any, send_: Any) -> None:
        async with propagate(httpx.AsyncClient(timeout=TIMEOUT)) as client:
            await client.get(f"{second.url}/ok")
        await send_({"type": "http.response.start", "status": 204, "headers": []})
        await send_({"type": "http.response.body", "body": b""})

    async def main() -> httpx.Response:
        async with asgi_client(asgi.RequestIdMiddleware(app)) as client:
            headers = [(NAME.encode(), value) for value in occurrences]
            return await client.get("/", headers=headers)

    response = asyncio.run(main())
    (seen,) = second.seen()
    (sent,) = seen.values(NAME)
    assert HEX32.fullmatch(sent)
    assert sent == response.headers[NAME]
    assert not any(needle in sent for needle in needles(occurrences))


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


@pytest.mark.parametrize("thing", [object(), "http://x", None])
def test_propagate_refuses_what_is_not_an_httpx_client(thing: object) -> None:
    with pytest.raises(TypeError, match=r"httpx\.Client or httpx\.AsyncClient"):
        propagate(thing)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"header_name": "Bad Name"}, ValueError, "header_name must be an RFC 9110"),
        ({"header_name": "Host"}, ValueError, "header_name must not be a header"),
        ({"hosts": "api.internal"}, TypeError, "hosts must be None or a list"),
        ({"hosts": ["http://api"]}, ValueError, "without a scheme, path"),
        ({"hosts": ["api:8080"]}, ValueError, "must not hold a port"),
    ],
)
def test_a_bad_setting_fails_at_construction(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RequestIdHook(**options)
    with pytest.raises(error, match=message):
        propagate(httpx.Client(), **options)


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
