"""Django's ASGI handler wrapped by ``adapters.asgi.RequestIdMiddleware``.

The requests go through ``httpx.ASGITransport`` in-process. The Django project
is the package ``tests/support/djangoapp``; its views and middleware report
the id they saw in the response, so each test compares what Django's code saw
with the ``X-Request-ID`` header the client got back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypedDict, TypeVar, cast

import djangoapp
import httpx
import pytest
from asgi_testing import HEX32, asgi_client
from django.core.asgi import get_asgi_application
from django.core.signals import request_finished, request_started
from djangoapp import middleware, views
from hostile import MARKER, Hostile, hostile_params
from log_testing import LogCapture, capture_logs, connected

from adapters._types import ASGIApp
from adapters.asgi import RequestIdMiddleware
from correlation import get_request_id

_T = TypeVar("_T")

#: Django warns when its ASGI handler serves a sync iterator (it consumes it in
#: a worker thread); the tests marked with this stream one on purpose.
_SYNC_STREAMING = pytest.mark.filterwarnings(
    "ignore:StreamingHttpResponse must consume synchronous iterators"
)

VIEWS = [
    pytest.param("/async/", id="async-view"),
    pytest.param("/sync/", id="sync-view"),
]


class Report(TypedDict):
    """The JSON body of ``views.async_view`` and ``views.sync_view``."""

    before: str | None
    after: str | None
    header: str | None
    meta: str | None
    thread: int


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run *coro* in a fresh event loop, failing instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def _headers(value: bytes | None) -> list[tuple[bytes, bytes]]:
    return [] if value is None else [(b"X-Request-ID", value)]


async def _get(
    client: httpx.AsyncClient, path: str, headers: list[tuple[bytes, bytes]]
) -> httpx.Response:
    """GET *path*; the test's own context holds no id before or after."""
    assert get_request_id() is None
    response = await client.get(path, headers=headers)
    assert get_request_id() is None
    return response


def _fetch(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]
) -> httpx.Response:
    """GET *path* from *app* on a fresh event loop, as ``_get`` checks it."""

    async def main() -> httpx.Response:
        async with asgi_client(app) as client:
            return await _get(client, path, headers)

    return _run(main())


def _response_id(response: httpx.Response) -> str:
    """The one ``X-Request-ID`` header of *response*."""
    values = response.headers.get_list("X-Request-ID")
    assert len(values) == 1, values
    return values[0]


def _report(response: httpx.Response) -> Report:
    assert response.status_code == 200, response.text
    return cast("Report", response.json())


@pytest.fixture
def app() -> Iterator[ASGIApp]:
    """Django's ASGI application behind the adapter, with the test project."""
    with djangoapp.project_settings():
        yield RequestIdMiddleware(get_asgi_application())


@pytest.fixture
def request_log() -> Iterator[LogCapture]:
    """A handler with ``RequestIdFilter`` on Django's "django.request" logger."""
    with capture_logs("django.request") as handler:
        yield handler


class _SignalLog:
    def __init__(self) -> None:
        self.started: list[str | None] = []
        self.finished: list[str | None] = []
        self.finished_async: list[str | None] = []


@pytest.fixture
def signal_log() -> Iterator[_SignalLog]:
    """Receivers of request_started and request_finished recording the id."""
    log = _SignalLog()

    def on_started(sender: object, **kwargs: object) -> None:
        log.started.append(get_request_id())

    def on_finished(sender: object, **kwargs: object) -> None:
        log.finished.append(get_request_id())

    async def on_finished_async(sender: object, **kwargs: object) -> None:
        log.finished_async.append(get_request_id())

    with connected(
        (request_started, on_started, "test-started"),
        (request_finished, on_finished, "test-finished"),
        (request_finished, on_finished_async, "test-finished-async"),
    ):
        yield log


# --- views ----------------------------------------------------------------


@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("incoming", [None, b"client-id-1"])
def test_view_sees_the_id_the_response_carries(
    app: ASGIApp, path: str, incoming: bytes | None
) -> None:
    """A view sees get_request_id() and its request header equal the echoed id."""

    async def main() -> tuple[httpx.Response, int]:
        async with asgi_client(app) as client:
            response = await _get(client, path, _headers(incoming))
        return response, threading.get_ident()

    response, loop_thread = _run(main())
    request_id = _response_id(response)
    if incoming is None:
        assert HEX32.fullmatch(request_id)
    else:
        assert request_id == incoming.decode()
    report = _report(response)
    assert report["before"] == report["after"] == request_id
    assert report["header"] == request_id
    assert report["meta"] == request_id
    if path == "/sync/":
        assert report["thread"] != loop_thread, "the sync view ran on the loop"
    else:
        assert report["thread"] == loop_thread


@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("row", hostile_params())
def test_hostile_incoming_id_never_reaches_django(
    app: ASGIApp, path: str, row: Hostile
) -> None:
    """A rejected client value is replaced before Django builds the request."""
    headers = [(b"X-Request-ID", value) for value in row.occurrences]
    response = _fetch(app, path, headers)
    request_id = _response_id(response)
    assert HEX32.fullmatch(request_id)
    report = _report(response)
    assert report["before"] == report["after"] == request_id
    assert report["header"] == request_id
    assert report["meta"] == request_id
    assert MARKER.encode() not in response.content


@pytest.mark.parametrize("path", VIEWS)
def test_repeated_incoming_headers_collapse_to_one_final_id(
    app: ASGIApp, path: str
) -> None:
    """Two X-Request-ID headers (a list, so rejected) show Django one fresh id."""
    headers = [(b"X-Request-ID", b"first"), (b"x-request-id", b"second")]

    response = _fetch(app, path, headers)
    request_id = _response_id(response)
    assert HEX32.fullmatch(request_id)
    report = _report(response)
    assert report["header"] == report["meta"] == request_id


# --- streaming --------------------------------------------------------------


@_SYNC_STREAMING
@pytest.mark.parametrize("iterator", ["sync", "async"])
@pytest.mark.parametrize("incoming", [None, b"stream-id-7"])
def test_every_streamed_chunk_sees_the_id(
    app: ASGIApp, iterator: str, incoming: bytes | None
) -> None:
    """Each chunk of a StreamingHttpResponse is made while the id is bound."""
    response = _fetch(app, f"/stream/{iterator}/", _headers(incoming))
    assert response.status_code == 200
    request_id = _response_id(response)
    if incoming is not None:
        assert request_id == incoming.decode()
    lines = response.text.splitlines()
    assert lines == [f"{index}:{request_id}" for index in range(views.CHUNKS)]


# --- signals and middleware -------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/async/", "/sync/", "/stream/async/", "/error/sync/"]
)
def test_request_signals_see_the_id(
    app: ASGIApp, signal_log: _SignalLog, path: str
) -> None:
    """request_started and request_finished receivers see the request's id."""
    response = _fetch(app, path, [])
    request_id = _response_id(response)
    assert signal_log.started == [request_id]
    assert signal_log.finished == [request_id]
    assert signal_log.finished_async == [request_id]


@_SYNC_STREAMING
@pytest.mark.parametrize(
    "path", ["/async/", "/sync/", "/stream/sync/", "/error/async/"]
)
def test_django_middleware_sees_the_id_both_ways(app: ASGIApp, path: str) -> None:
    """Sync-only and async-only Django middleware see the id in and out."""
    response = _fetch(app, path, _headers(b"mw-id"))
    assert _response_id(response) == "mw-id"
    assert response.headers[middleware.SYNC_HEADER] == "mw-id|mw-id"
    assert response.headers[middleware.ASYNC_HEADER] == "mw-id|mw-id"


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "level"),
    [
        pytest.param("/error/async/", 500, logging.ERROR, id="async-view-raises"),
        pytest.param("/error/sync/", 500, logging.ERROR, id="sync-view-raises"),
        pytest.param("/missing/", 404, logging.WARNING, id="not-found"),
    ],
)
@pytest.mark.parametrize("incoming", [None, b"err-42"])
def test_django_request_log_record_carries_the_id(
    app: ASGIApp,
    request_log: LogCapture,
    path: str,
    status: int,
    level: int,
    incoming: bytes | None,
) -> None:
    """Django's "django.request" record for a failed request has its id."""
    response = _fetch(app, path, _headers(incoming))
    assert response.status_code == status
    request_id = _response_id(response)
    if incoming is None:
        assert HEX32.fullmatch(request_id)
    else:
        assert request_id == incoming.decode()
    records = [r for r in request_log.records if r.name == "django.request"]
    assert len(records) == 1, records
    (record,) = records
    assert record.levelno == level
    assert path in record.getMessage()
    assert vars(record)["request_id"] == request_id


def test_log_record_outside_a_request_gets_a_dash(request_log: LogCapture) -> None:
    """The same handler marks a record logged outside any request with "-"."""
    logging.getLogger("django.request").error("not in a request")
    (record,) = request_log.records
    assert vars(record)["request_id"] == "-"


# --- concurrency and lifetime -----------------------------------------------

CONCURRENT = 50


@pytest.mark.parametrize("path", VIEWS)
def test_concurrent_requests_each_see_their_own_id(
    app: ASGIApp, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """50 requests in flight at once each see only their own id."""
    ids = [f"concurrent-{index:02d}" for index in range(CONCURRENT)]

    async def main() -> tuple[list[httpx.Response], int]:
        if path == "/async/":
            # All 50 async views wait inside the view until every one of them
            # has arrived, so they are provably in flight together.
            monkeypatch.setattr(views, "PROBE", views.Probe(expected=CONCURRENT))
        async with asgi_client(app) as client:
            responses = await asyncio.gather(
                *(_get(client, path, _headers(i.encode())) for i in ids)
            )
        assert get_request_id() is None
        return responses, threading.get_ident()

    responses, loop_thread = _run(main())
    for request_id, response in zip(ids, responses, strict=True):
        assert _response_id(response) == request_id
        report = _report(response)
        assert report["before"] == report["after"] == request_id
        assert report["header"] == report["meta"] == request_id
        if path == "/sync/":
            assert report["thread"] != loop_thread
    if path == "/async/":
        assert views.PROBE is not None
        assert views.PROBE.arrived == CONCURRENT


def test_id_does_not_outlive_the_request(
    app: ASGIApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A context copied inside the view reads None once the response ended."""

    async def main() -> tuple[views.Probe, httpx.Response]:
        probe = views.Probe(expected=1)
        monkeypatch.setattr(views, "PROBE", probe)
        async with asgi_client(app) as client:
            return probe, await _get(client, "/async/", _headers(b"short-lived"))

    probe, response = _run(main())
    assert _report(response)["before"] == "short-lived"
    (context,) = probe.contexts
    assert context.run(get_request_id) is None


def test_consecutive_requests_on_one_client_do_not_share_ids(app: ASGIApp) -> None:
    """Requests served one after another in one task each get a fresh id."""

    async def main() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            return [await _get(client, path, []) for path in ("/async/", "/sync/") * 3]

    responses = _run(main())
    ids = [_response_id(response) for response in responses]
    assert len(set(ids)) == len(ids)
    for request_id, response in zip(ids, responses, strict=True):
        assert _report(response)["meta"] == request_id
