"""Flask with ``app.wsgi_app = RequestIdMiddleware(app.wsgi_app)``, in process.

Each test builds its own app with ``make_app``. The client talks to it through
a WSGI validator: werkzeug's ``LintMiddleware`` under ``werkzeug.test.Client``,
or ``wsgiref.validate.validator`` (which fails the test when a body is never
closed) under ``httpx.WSGITransport``. The views report what they see of the
request id; hooks record it in the app's ``Probe``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from wsgiref.validate import validator

import httpx
import pytest
from asgi_testing import HEX32, TIMEOUT
from flask import (
    Flask,
    Response,
    has_request_context,
    jsonify,
    request,
    stream_with_context,
)
from flask_probe import record_response_ids
from hostile import MARKER, Hostile, hostile_params
from log_testing import LogCapture, capture_logs
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client

from adapters.wsgi import RequestIdMiddleware
from correlation import Config, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: The name of every app ``make_app`` builds, hence of Flask's ``app.logger``.
APP_NAME = "correlation_flask_tests"
#: Chunks each streaming view sends.
CHUNKS = 3
#: Requests the concurrency tests keep in flight at once.
CONCURRENT = 30


@dataclass
class Probe:
    """What the app's hooks and views record, shared with the test."""

    events: list[tuple[str, str | None]] = field(default_factory=list)
    raised: list[BaseException] = field(default_factory=list)
    contexts: list[contextvars.Context] = field(default_factory=list)
    barrier: threading.Barrier | None = None


def make_app(config: Config | None = None, /, **settings: Any) -> tuple[Flask, Probe]:
    """Return a new Flask app wired with the adapter, and its probe.

    *settings* go into ``app.config`` (``TESTING=True``, say).
    """
    probe = Probe()
    app = Flask(APP_NAME, root_path=str(Path(__file__).parent))
    app.config.update(settings)
    header_name = "X-Request-ID" if config is None else config.header_name

    def seen() -> dict[str, Any]:
        return {
            "context": get_request_id(),
            "headers": request.headers.getlist(header_name),
            "environ": request.environ.get("correlation.request_id"),
        }

    @app.before_request
    def before_request() -> None:
        probe.events.append(("before_request", get_request_id()))
        if probe.barrier is not None:
            probe.barrier.wait()

    record_response_ids(app, probe.events)

    @app.teardown_request
    def teardown_request(error: BaseException | None) -> None:
        probe.events.append(("teardown_request", get_request_id()))

    @app.get("/sync")
    def sync_view() -> dict[str, Any]:
        probe.contexts.append(contextvars.copy_context())
        return seen()

    @app.get("/async")
    async def async_view() -> dict[str, Any]:
        before = seen()
        await asyncio.sleep(0)
        assert seen() == before
        return before

    @app.get("/stream")
    def stream_view() -> Response:
        def chunks() -> Iterator[str]:
            # Runs after Flask popped its request context.
            for index in range(CHUNKS):
                yield f"{index}:{get_request_id()}:{has_request_context()}\n"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/stream/context")
    def stream_context_view() -> Response:
        def chunks() -> Iterator[str]:
            for index in range(CHUNKS):
                header = request.headers[header_name]
                yield f"{index}:{get_request_id()}:{header}\n"

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/error")
    def error_view() -> str:
        error = RuntimeError("view failed")
        probe.raised.append(error)
        raise error

    @app.get("/own-header")
    def own_header_view() -> Response:
        response = jsonify(seen())
        response.headers[header_name] = "app-chosen"
        return response

    app.wsgi_app = RequestIdMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, config=config
    )
    return app, probe


@pytest.fixture
def app_and_probe() -> tuple[Flask, Probe]:
    """A new app with the default config."""
    return make_app()


# --- clients ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the client got back."""

    status: int
    request_ids: list[str]
    text: str

    @property
    def request_id(self) -> str:
        """The one X-Request-ID header of the response."""
        assert len(self.request_ids) == 1, self.request_ids
        return self.request_ids[0]

    def json(self) -> dict[str, Any]:
        return cast("dict[str, Any]", json.loads(self.text))


def werkzeug_get(
    app: WSGIApplication,
    path: str,
    request_id: str | None = None,
    header: str = "X-Request-ID",
) -> Reply:
    """GET *path* with werkzeug's Client through LintMiddleware.

    *request_id* goes into the environ as a server would hand it over, so any
    string can be sent. The body is read and closed before this returns.
    """
    assert get_request_id() is None
    environ = {}
    if request_id is not None:
        environ["HTTP_" + header.upper().replace("-", "_")] = request_id
    client = Client(LintMiddleware(app))
    response = client.get(path, environ_overrides=environ, buffered=True)
    try:
        return Reply(
            response.status_code,
            response.headers.getlist(header),
            response.get_data(as_text=True),
        )
    finally:
        response.close()
        assert get_request_id() is None


def httpx_get(
    app: WSGIApplication,
    path: str,
    request_id: str | None = None,
    header: str = "X-Request-ID",
) -> Reply:
    """GET *path* with httpx's WSGI transport through wsgiref's validator."""
    assert get_request_id() is None
    headers = {} if request_id is None else {header: request_id}
    transport = httpx.WSGITransport(app=validator(app))
    with httpx.Client(
        transport=transport, base_url="http://testserver", timeout=TIMEOUT
    ) as client:
        response = client.get(path, headers=headers)
    assert get_request_id() is None
    return Reply(response.status_code, response.headers.get_list(header), response.text)


Driver = Callable[..., Reply]
DRIVERS = [
    pytest.param(werkzeug_get, id="werkzeug-lint"),
    pytest.param(httpx_get, id="httpx-wsgiref-validator"),
]
VIEWS = [pytest.param("/sync", id="sync-view"), pytest.param("/async", id="async-view")]


def assert_id(request_id: str, incoming: str | None) -> None:
    """The final id is the incoming one, or a generated one when none came."""
    if incoming is None:
        assert HEX32.fullmatch(request_id), request_id
    else:
        assert request_id == incoming


def assert_note(error: BaseException, request_id: str) -> None:
    """The adapter names the request on the exception (Python 3.11+ only)."""
    notes = getattr(error, "__notes__", None)
    if sys.version_info >= (3, 11):
        assert notes == [f"request_id={request_id}"]
    else:
        assert notes is None


@pytest.fixture
def app_log() -> Iterator[LogCapture]:
    """A handler with ``RequestIdFilter`` on the apps' ``app.logger``."""
    with capture_logs(APP_NAME) as handler:
        yield handler


# --- views --------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("incoming", [None, "client-id-1"])
def test_view_sees_one_id_everywhere(
    app_and_probe: tuple[Flask, Probe],
    driver: Driver,
    path: str,
    incoming: str | None,
) -> None:
    """get_request_id(), request.headers and the environ key equal the echoed id."""
    app, _ = app_and_probe
    reply = driver(app, path, incoming)
    assert reply.status == 200
    request_id = reply.request_id
    assert_id(request_id, incoming)
    assert reply.json() == {
        "context": request_id,
        "headers": [request_id],
        "environ": request_id,
    }


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("path", [*VIEWS, "/stream", "/error"])
def test_hooks_and_close_callbacks_see_the_id(
    app_and_probe: tuple[Flask, Probe], driver: Driver, path: str
) -> None:
    """before/after/teardown_request and call_on_close run, in order, with the id."""
    app, probe = app_and_probe
    reply = driver(app, path)
    request_id = reply.request_id
    assert probe.events == [
        ("before_request", request_id),
        ("after_request", request_id),
        ("teardown_request", request_id),
        ("call_on_close", request_id),
    ]


@pytest.mark.parametrize("driver", DRIVERS)
def test_generator_body_sees_the_id_after_flask_popped_its_context(
    app_and_probe: tuple[Flask, Probe], driver: Driver
) -> None:
    """A plain generator body runs outside Flask's request context, yet sees the id."""
    app, probe = app_and_probe
    reply = driver(app, "/stream", "stream-id-7")
    assert reply.status == 200
    assert reply.request_id == "stream-id-7"
    assert reply.text.splitlines() == [
        f"{index}:stream-id-7:False" for index in range(CHUNKS)
    ]
    # Flask tore the request down before the first chunk was made.
    assert [name for name, _ in probe.events].index("teardown_request") == 2


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("incoming", [None, "ctx-stream-id"])
def test_stream_with_context_sees_the_id_and_the_header(
    app_and_probe: tuple[Flask, Probe], driver: Driver, incoming: str | None
) -> None:
    """Chunks under stream_with_context see the id and the rewritten header."""
    app, _ = app_and_probe
    reply = driver(app, "/stream/context", incoming)
    assert reply.status == 200
    request_id = reply.request_id
    assert_id(request_id, incoming)
    assert reply.text.splitlines() == [
        f"{index}:{request_id}:{request_id}" for index in range(CHUNKS)
    ]


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("incoming", [None, "err-42"])
def test_view_error_is_a_500_that_carries_the_id(
    app_and_probe: tuple[Flask, Probe],
    app_log: LogCapture,
    driver: Driver,
    incoming: str | None,
) -> None:
    """A raising view gives a 500 with the id, and Flask's error log has it."""
    app, probe = app_and_probe
    reply = driver(app, "/error", incoming)
    assert reply.status == 500
    request_id = reply.request_id
    assert_id(request_id, incoming)
    (record,) = app_log.records
    assert record.getMessage() == "Exception on /error [GET]"
    assert record.exc_info is not None
    assert record.exc_info[1] is probe.raised[0]
    assert vars(record)["request_id"] == request_id
    assert ("teardown_request", request_id) in probe.events


@pytest.mark.parametrize("setting", ["TESTING", "PROPAGATE_EXCEPTIONS"])
@pytest.mark.parametrize("driver", DRIVERS)
def test_propagated_exception_is_the_same_object_with_a_note(
    driver: Driver, setting: str
) -> None:
    """With exceptions propagating, the view's exception reaches the client as is."""
    app, probe = make_app(**{setting: True})
    with pytest.raises(RuntimeError, match="view failed") as excinfo:
        driver(app, "/error", "boom-id")
    assert get_request_id() is None
    (raised,) = probe.raised
    assert excinfo.value is raised
    assert_note(raised, "boom-id")
    assert probe.events == [
        ("before_request", "boom-id"),
        ("teardown_request", "boom-id"),
    ]


# --- headers ------------------------------------------------------------------


@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("row", hostile_params())
def test_hostile_incoming_id_never_reaches_flask(
    app_and_probe: tuple[Flask, Probe], path: str, row: Hostile
) -> None:
    """A rejected value is replaced before Flask builds its request."""
    app, probe = app_and_probe
    reply = werkzeug_get(app, path, row.joined())
    request_id = reply.request_id
    assert HEX32.fullmatch(request_id)
    assert reply.json() == {
        "context": request_id,
        "headers": [request_id],
        "environ": request_id,
    }
    assert MARKER not in reply.text
    assert {value for _, value in probe.events} == {request_id}


@pytest.mark.parametrize("driver", DRIVERS)
def test_header_the_app_sets_is_kept_alone(
    app_and_probe: tuple[Flask, Probe], driver: Driver
) -> None:
    """A view that sets X-Request-ID itself gets exactly its own value back."""
    app, _ = app_and_probe
    reply = driver(app, "/own-header", "client-id")
    assert reply.request_ids == ["app-chosen"]
    assert reply.json()["context"] == "client-id"


@pytest.mark.parametrize("driver", DRIVERS)
def test_custom_header_name_reaches_flask(driver: Driver) -> None:
    """With header_name set, Flask sees that header rewritten and it is echoed."""
    app, _ = make_app(Config(header_name="X-Correlation-ID"))
    reply = driver(app, "/sync", "corr-1", "X-Correlation-ID")
    assert reply.request_id == "corr-1"
    assert reply.json() == {
        "context": "corr-1",
        "headers": ["corr-1"],
        "environ": "corr-1",
    }


# --- concurrency and lifetime -------------------------------------------------


@pytest.mark.parametrize("path", VIEWS)
def test_concurrent_requests_each_see_their_own_id(path: str) -> None:
    """30 requests in flight at once, each in its own thread, see only their id."""
    app, probe = make_app()
    probe.barrier = threading.Barrier(CONCURRENT, timeout=TIMEOUT)
    ids = [f"concurrent-{index:02d}" for index in range(CONCURRENT)]

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        futures = [pool.submit(werkzeug_get, app, path, i) for i in ids]
        replies = [future.result(timeout=TIMEOUT) for future in futures]

    assert get_request_id() is None
    for request_id, reply in zip(ids, replies, strict=True):
        assert reply.request_id == request_id
        assert reply.json() == {
            "context": request_id,
            "headers": [request_id],
            "environ": request_id,
        }
    # Every hook of every request saw that request's id: 4 events per id.
    counts = dict.fromkeys(ids, 0)
    for _, value in probe.events:
        assert value in counts
        counts[value] += 1
    assert set(counts.values()) == {4}


def test_id_does_not_outlive_the_request(app_and_probe: tuple[Flask, Probe]) -> None:
    """A context copied inside the view reads None once the response has ended."""
    app, probe = app_and_probe
    reply = werkzeug_get(app, "/sync", "short-lived")
    assert reply.json()["context"] == "short-lived"
    (context,) = probe.contexts
    assert context.run(get_request_id) is None


def test_consecutive_requests_get_fresh_ids(
    app_and_probe: tuple[Flask, Probe],
) -> None:
    """Requests served one after another from one thread never share an id."""
    app, _ = app_and_probe
    replies = [werkzeug_get(app, path) for path in ("/sync", "/async") * 3]
    ids = [reply.request_id for reply in replies]
    assert len(set(ids)) == len(ids)
    assert [reply.json()["context"] for reply in replies] == ids
