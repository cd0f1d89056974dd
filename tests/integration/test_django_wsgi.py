"""Django's WSGI handler wrapped by ``adapters.wsgi.RequestIdMiddleware``.

The same test project as ``test_django_asgi.py`` (``tests/support/djangoapp``),
served through ``get_wsgi_application()``. Requests go through
``werkzeug.test.Client`` with ``wsgiref.validate.validator`` between the
client and the adapter; the validator fails the test when a body is never
closed. Under WSGI ``request.META`` is the environ itself.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from wsgiref.util import FileWrapper
from wsgiref.validate import validator

import djangoapp
import pytest
from asgi_testing import HEX32, TIMEOUT
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from djangoapp import middleware, views
from hostile import MARKER, Hostile, hostile_params
from log_testing import LogCapture, capture_logs, connected
from werkzeug.test import Client
from wsgi_testing import make_environ, run_wsgi

from adapters.wsgi import RequestIdMiddleware
from correlation import get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: Requests the concurrency test keeps in flight at once.
CONCURRENT = 30

VIEWS = [
    pytest.param("/async/", id="async-view"),
    pytest.param("/sync/", id="sync-view"),
]

#: Django warns when its WSGI handler serves an async iterator (it consumes it
#: whole through async_to_sync); the test marked with this streams one on
#: purpose.
_ASYNC_STREAMING = pytest.mark.filterwarnings(
    "ignore:StreamingHttpResponse must consume asynchronous iterators"
)


@pytest.fixture
def app() -> Iterator[WSGIApplication]:
    """Django's WSGI application behind the adapter, with the test project."""
    with djangoapp.project_settings():
        yield RequestIdMiddleware(get_wsgi_application())


@dataclass(frozen=True)
class Reply:
    """What the client got back."""

    status: int
    request_ids: list[str]
    headers: dict[str, str]
    text: str

    @property
    def request_id(self) -> str:
        """The one X-Request-ID header of the response."""
        assert len(self.request_ids) == 1, self.request_ids
        return self.request_ids[0]

    def json(self) -> dict[str, Any]:
        assert self.status == 200, self.text
        return cast("dict[str, Any]", json.loads(self.text))


def get(app: WSGIApplication, path: str, request_id: str | None = None) -> Reply:
    """GET *path* through wsgiref's validator; the body is read and closed.

    *request_id* goes into the environ as a server would hand it over, so any
    string can be sent. The calling thread holds no id before or after.
    """
    assert get_request_id() is None
    environ = {} if request_id is None else {"HTTP_X_REQUEST_ID": request_id}
    response = Client(validator(app)).get(
        path, environ_overrides=environ, buffered=True
    )
    try:
        return Reply(
            response.status_code,
            response.headers.getlist("X-Request-ID"),
            dict(response.headers),
            response.get_data(as_text=True),
        )
    finally:
        response.close()
        assert get_request_id() is None


def assert_id(request_id: str, incoming: str | None) -> None:
    """The final id is the incoming one, or a generated one when none came."""
    if incoming is None:
        assert HEX32.fullmatch(request_id), request_id
    else:
        assert request_id == incoming


@pytest.fixture
def request_log() -> Iterator[LogCapture]:
    """A handler with ``RequestIdFilter`` on Django's "django.request" logger."""
    with capture_logs("django.request") as handler:
        yield handler


@pytest.fixture
def signal_log() -> Iterator[list[tuple[str, str | None]]]:
    """Receivers of request_started and request_finished recording the id."""
    log: list[tuple[str, str | None]] = []

    def on_started(sender: object, **kwargs: object) -> None:
        log.append(("started", get_request_id()))

    def on_finished(sender: object, **kwargs: object) -> None:
        log.append(("finished", get_request_id()))

    with connected(
        (request_started, on_started, "wsgi-started"),
        (request_finished, on_finished, "wsgi-finished"),
    ):
        yield log


# --- views ------------------------------------------------------------------


@pytest.mark.parametrize("incoming", [None, "client-id-1"])
def test_sync_view_sees_one_id_everywhere(
    app: WSGIApplication, incoming: str | None
) -> None:
    """get_request_id(), request.headers, META and the environ key agree."""
    reply = get(app, "/environ/", incoming)
    request_id = reply.request_id
    assert_id(request_id, incoming)
    assert reply.json() == {
        "context": request_id,
        "header": request_id,
        "meta": request_id,
        "environ": request_id,
    }


@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("incoming", [None, "client-id-2"])
def test_views_and_django_middleware_see_the_id(
    app: WSGIApplication, path: str, incoming: str | None
) -> None:
    """Sync and async views, and sync- and async-only middleware, see the id."""
    reply = get(app, path, incoming)
    request_id = reply.request_id
    assert_id(request_id, incoming)
    report = reply.json()
    assert report["before"] == report["after"] == request_id
    assert report["header"] == report["meta"] == request_id
    assert reply.headers[middleware.SYNC_HEADER] == f"{request_id}|{request_id}"
    assert reply.headers[middleware.ASYNC_HEADER] == f"{request_id}|{request_id}"


@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("row", hostile_params())
def test_hostile_incoming_id_never_reaches_django(
    app: WSGIApplication, path: str, row: Hostile
) -> None:
    """A rejected value is replaced before Django builds the request."""
    reply = get(app, path, row.joined())
    request_id = reply.request_id
    assert HEX32.fullmatch(request_id)
    report = reply.json()
    assert report["before"] == report["after"] == request_id
    assert report["header"] == report["meta"] == request_id
    assert MARKER not in reply.text


# --- streaming and signals --------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/stream/sync/", id="sync-iterator"),
        pytest.param("/stream/async/", id="async-iterator", marks=_ASYNC_STREAMING),
    ],
)
@pytest.mark.parametrize("incoming", [None, "stream-id-7"])
def test_every_streamed_chunk_and_request_finished_see_the_id(
    app: WSGIApplication,
    signal_log: list[tuple[str, str | None]],
    path: str,
    incoming: str | None,
) -> None:
    """Chunks, and request_finished fired from the body's close(), see the id."""
    reply = get(app, path, incoming)
    assert reply.status == 200
    request_id = reply.request_id
    assert_id(request_id, incoming)
    assert reply.text.splitlines() == [
        f"{index}:{request_id}" for index in range(views.CHUNKS)
    ]
    assert signal_log == [("started", request_id), ("finished", request_id)]


@pytest.mark.parametrize(
    "path", ["/sync/", "/async/", "/environ/", "/error/sync/", "/missing/"]
)
def test_request_signals_see_the_id(
    app: WSGIApplication, signal_log: list[tuple[str, str | None]], path: str
) -> None:
    """request_started and request_finished receivers see the request's id."""
    reply = get(app, path)
    request_id = reply.request_id
    assert signal_log == [("started", request_id), ("finished", request_id)]


def test_file_response_goes_to_the_file_wrapper_and_request_finished_sees_the_id(
    app: WSGIApplication, signal_log: list[tuple[str, str | None]]
) -> None:
    """A FileResponse keeps the server's file wrapper; its close fires under the id."""
    environ = make_environ(
        [("X-Request-ID", "file-1")],
        **{"wsgi.file_wrapper": FileWrapper, "PATH_INFO": "/file/"},
    )
    result = run_wsgi(validator(app), environ)
    assert result.body == b"file body"
    assert result.values("X-Request-ID") == ["file-1"]
    assert signal_log == [("started", "file-1"), ("finished", "file-1")]


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "level"),
    [
        pytest.param("/error/sync/", 500, logging.ERROR, id="sync-view-raises"),
        pytest.param("/error/async/", 500, logging.ERROR, id="async-view-raises"),
        pytest.param("/missing/", 404, logging.WARNING, id="not-found"),
    ],
)
@pytest.mark.parametrize("incoming", [None, "err-42"])
def test_django_request_log_record_carries_the_id(
    app: WSGIApplication,
    request_log: LogCapture,
    path: str,
    status: int,
    level: int,
    incoming: str | None,
) -> None:
    """Django's "django.request" record for a failed request has its id."""
    reply = get(app, path, incoming)
    assert reply.status == status
    request_id = reply.request_id
    assert_id(request_id, incoming)
    (record,) = request_log.records
    assert record.levelno == level
    assert path in record.getMessage()
    assert vars(record)["request_id"] == request_id


# --- concurrency and lifetime -----------------------------------------------


def test_concurrent_requests_each_see_their_own_id(
    app: WSGIApplication,
    monkeypatch: pytest.MonkeyPatch,
    signal_log: list[tuple[str, str | None]],
) -> None:
    """30 requests in flight at once, each in its own thread, see only their id."""
    monkeypatch.setattr(
        views, "BARRIER", threading.Barrier(CONCURRENT, timeout=TIMEOUT)
    )
    ids = [f"concurrent-{index:02d}" for index in range(CONCURRENT)]

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        futures = [pool.submit(get, app, "/environ/", i) for i in ids]
        replies = [future.result(timeout=TIMEOUT) for future in futures]

    assert get_request_id() is None
    for request_id, reply in zip(ids, replies, strict=True):
        assert reply.request_id == request_id
        assert reply.json() == {
            "context": request_id,
            "header": request_id,
            "meta": request_id,
            "environ": request_id,
        }
    assert sorted(signal_log) == sorted(
        (event, request_id) for request_id in ids for event in ("started", "finished")
    )


def test_consecutive_requests_get_fresh_ids(app: WSGIApplication) -> None:
    """Requests served one after another from one thread never share an id."""
    replies = [get(app, path) for path in ("/environ/", "/async/") * 3]
    ids = [reply.request_id for reply in replies]
    assert len(set(ids)) == len(ids)
    assert [reply.json()["meta"] for reply in replies] == ids
