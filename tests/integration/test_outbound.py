"""The outbound contract, through every client, proved on real loopback servers.

httpx (``Client`` and ``AsyncClient``), requests and aiohttp, each wired with
its integration (``outbound_clients``). Two recording servers, on 127.0.0.1
and 127.0.0.2 (two ports on one address would be one host to the allow-list):
what each server received is the only evidence. No HTTP mocking library:
those bypass the very hooks under test. What only one client has is in
``test_httpx.py``, ``test_requests.py`` and ``test_aiohttp.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from asgi_testing import HEX32, asgi_client
from hostile import Hostile, hostile_params, needles
from outbound_clients import BUILDERS, CLIENTS, ONE_CLIENT_MANY_TASKS, Driver, Options
from recording_http import Recorder

from adapters import asgi
from correlation import bound_request_id, get_request_id

NAME = "X-Request-ID"


def redirect(via: Recorder, to: str, code: int = 302) -> str:
    """A URL on *via* that redirects to *to*."""
    return f"{via.url}/redirect?to={quote(to, safe='')}&code={code}"


def sent_ids(recorder: Recorder, name: str = NAME) -> list[list[str]]:
    """The id header's values of each request *recorder* served, in order."""
    return [seen.values(name) for seen in recorder.seen()]


@pytest.mark.parametrize("get", CLIENTS)
def test_inside_a_unit_of_work_one_header_carries_the_id(
    first: Recorder, get: Driver
) -> None:
    with bound_request_id("job-1"):
        assert get(f"{first.url}/ok", Options()) == 200
    assert sent_ids(first) == [["job-1"]]


@pytest.mark.parametrize("get", CLIENTS)
def test_outside_a_unit_of_work_nothing_is_sent(first: Recorder, get: Driver) -> None:
    get(f"{first.url}/ok", Options())
    assert sent_ids(first) == [[]]
    assert get_request_id() is None


@pytest.mark.parametrize("get", CLIENTS)
def test_the_header_name_is_the_integrations(first: Recorder, get: Driver) -> None:
    with bound_request_id("job-2"):
        get(f"{first.url}/ok", Options(header_name="X-Correlation-ID"))
    assert sent_ids(first, "X-Correlation-ID") == [["job-2"]]
    assert sent_ids(first) == [[]]


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Request-ID", "mine"), ("x-request-id", "MINE-2"), ("X-REQUEST-ID", "")],
)
def test_the_callers_own_header_is_kept_on_every_hop_and_host(
    first: Recorder, second: Recorder, get: Driver, name: str, value: str
) -> None:
    """Any case, any value, empty included; listed host or not."""
    target = redirect(first, f"{second.url}/ok")
    with bound_request_id("job-3"):
        get(target, Options(hosts=["127.0.0.1"], headers={name: value}))
    assert sent_ids(first) == sent_ids(second) == [[value]]


@pytest.mark.parametrize("get", CLIENTS)
def test_the_allow_list_picks_the_hosts(
    first: Recorder, second: Recorder, get: Driver
) -> None:
    with bound_request_id("job-4"):
        for recorder in (first, second):
            get(f"{recorder.url}/ok", Options(hosts=["127.0.0.2"]))
    assert sent_ids(first) == [[]]
    assert sent_ids(second) == [["job-4"]]


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize("hosts", [[], ["127.0.0.3", ".0.0.1"]])
def test_a_list_without_the_host_sends_nothing(
    first: Recorder, get: Driver, hosts: list[str]
) -> None:
    """An empty list sends nowhere; a '.domain' entry never matches an address."""
    with bound_request_id("job-5"):
        get(f"{first.url}/ok", Options(hosts=hosts))
    assert sent_ids(first) == [[]]


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize("entry", ["*", "127.0.0.1", "127.0.0.1."])
def test_a_list_with_the_host_sends_whatever_the_port(
    first: Recorder, get: Driver, entry: str
) -> None:
    with bound_request_id("job-6"):
        get(f"{first.url}/ok", Options(hosts=[entry]))
    assert sent_ids(first) == [["job-6"]]


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize("code", [302, 307])
def test_a_redirect_off_the_list_drops_the_id_and_a_chain_back_restores_it(
    first: Recorder, second: Recorder, get: Driver, code: int
) -> None:
    """127.0.0.1 (listed) -> 127.0.0.2 (not listed) -> 127.0.0.1 again."""
    target = redirect(first, redirect(second, f"{first.url}/ok", code), code)
    with bound_request_id("job-7"):
        assert get(target, Options(hosts=["127.0.0.1"])) == 200
    assert sent_ids(first) == [["job-7"], ["job-7"]]
    assert sent_ids(second) == [[]]


@pytest.mark.parametrize("get", CLIENTS)
def test_redirects_within_a_listed_host_keep_the_id(
    first: Recorder, get: Driver
) -> None:
    target = redirect(first, redirect(first, f"{first.url}/ok"))
    with bound_request_id("job-8"):
        get(target, Options(hosts=["127.0.0.1"]))
    assert sent_ids(first) == [["job-8"]] * 3


@pytest.mark.parametrize("get", CLIENTS)
def test_an_authentication_resend_carries_the_id(first: Recorder, get: Driver) -> None:
    with bound_request_id("job-9"):
        assert get(f"{first.url}/digest", Options(digest=True)) == 200
    challenged, authorized = first.seen()
    assert challenged.values("Authorization") == []
    assert authorized.values("Authorization")[0].startswith("Digest ")
    assert sent_ids(first) == [["job-9"], ["job-9"]]


@pytest.mark.parametrize("get", CLIENTS)
def test_a_forward_proxy_from_http_proxy_sees_the_header(
    first: Recorder, second: Recorder, get: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The integration sits above the transport: the proxy path keeps it."""
    monkeypatch.setenv("HTTP_PROXY", first.url)
    for variable in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with bound_request_id("job-10"):
        assert get(f"{second.url}/ok", Options(trust_env=True)) == 200
    (at_proxy,) = first.seen()
    assert at_proxy.proxied
    assert at_proxy.values(NAME) == ["job-10"]
    assert sent_ids(second) == [["job-10"]]


@pytest.mark.parametrize("get", CLIENTS)
def test_each_unit_of_work_sends_its_own_id(first: Recorder, get: Driver) -> None:
    for number in range(3):
        with bound_request_id(f"unit-{number}"):
            get(f"{first.url}/ok", Options())
    assert sent_ids(first) == [["unit-0"], ["unit-1"], ["unit-2"]]


@pytest.mark.parametrize("send_all", ONE_CLIENT_MANY_TASKS)
def test_fifty_concurrent_tasks_on_one_client_each_send_their_own_id(
    first: Recorder, send_all: Callable[[dict[str, str]], None]
) -> None:
    urls = {f"task-{n}": f"{first.url}/ok?task={n}" for n in range(50)}
    send_all(urls)
    requests = first.seen()
    assert len(requests) == 50
    sent = {
        request.target.rpartition("=")[2]: request.values(NAME) for request in requests
    }
    assert sent == {str(n): [f"task-{n}"] for n in range(50)}


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize("row", hostile_params(fails_floor=True, plain_http=True))
def test_an_incoming_value_that_fails_the_floor_never_reaches_the_wire(
    second: Recorder, get: Driver, row: Hostile
) -> None:
    """A request behind the ASGI adapter calls out: its generated id goes on."""
    outbound: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # The client's own asyncio.run needs a thread without a running loop;
        # to_thread copies the request's context into it.
        outbound.append(await asyncio.to_thread(get, f"{second.url}/ok", Options()))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> httpx.Response:
        async with asgi_client(asgi.RequestIdMiddleware(app)) as client:
            headers = [(NAME.encode(), value) for value in row.occurrences]
            return await client.get("/", headers=headers)

    response = asyncio.run(main())
    assert outbound == [200]
    (sent,) = second.seen()[0].values(NAME)
    assert HEX32.fullmatch(sent)
    assert sent == response.headers[NAME]
    assert not any(needle in sent for needle in needles(row.occurrences))


@pytest.mark.parametrize("build", BUILDERS)
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
def test_a_bad_setting_fails_when_the_integration_is_built(
    build: Callable[..., object],
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        build(**options)
