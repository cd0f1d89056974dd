"""Both adapters stacked: ASGI adapter -> WSGI-to-ASGI bridge -> WSGI adapter -> Flask.

The Flask app is wired with ``app.wsgi_app = wsgi.RequestIdMiddleware(...)``
and hosted by a bridge, asgiref's ``WsgiToAsgi`` or a2wsgi's
``WSGIMiddleware``; ``asgi.RequestIdMiddleware`` sits in front of the bridge.
httpx's ASGI transport drives the stack in process. A small ASGI app between
the outer adapter and the bridge records the id the ASGI side chose, so each
test can compare it with what Flask saw and what the client got.

The inner adapter recognises the outer one through a2wsgi's
``environ["asgi.scope"]``, which holds the outer adapter's mark, or, behind
asgiref's ``WsgiToAsgi`` (which passes nothing but the headers), as the live
ASGI binding it runs in. Either way the outermost adapter decides the id, also
when it leaves the request header alone.

The bridges differ in one way that matters here: a2wsgi calls the body's
``close()`` (PEP 3333), asgiref's ``WsgiToAsgi`` does not (django/asgiref#587),
so Flask's ``call_on_close`` callbacks never run under it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import a2wsgi
import anyio
import httpx
import pytest
from asgi_testing import HEX32, TIMEOUT, asgi_client
from asgiref.wsgi import WsgiToAsgi
from flask import Flask, Response, request
from flask_probe import record_response_ids
from hooks_testing import counting_generator

from adapters import asgi, wsgi
from correlation import Config, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from adapters._types import ASGIApp, Receive, Scope, Send

#: Chunks the streaming view sends.
CHUNKS = 3
#: Requests the concurrency test keeps in flight at once.
CONCURRENT = 30

#: Incoming X-Request-ID values: a valid one is kept, the others replaced.
INCOMING = [
    pytest.param("client-id-1", id="valid"),
    pytest.param(None, id="missing"),
    pytest.param("<script>alert(1)</script>", id="hostile"),
    pytest.param("x" * 2000, id="too-long-for-the-floor"),
]


@dataclass
class Probe:
    """What the stack records, shared with the test."""

    #: The id the ASGI side saw, just in front of the bridge.
    outer: list[str | None] = field(default_factory=list)
    #: Flask's after_request and call_on_close callbacks, with the id.
    events: list[tuple[str, str | None]] = field(default_factory=list)
    #: Contexts copied inside the Flask view.
    contexts: list[contextvars.Context] = field(default_factory=list)
    #: Installed by a test to hold every request in before_request.
    barrier: threading.Barrier | None = None


def make_flask(probe: Probe, config: Config | None = None) -> Flask:
    """Return a new Flask app, wired with the WSGI adapter, reporting to *probe*."""
    app = Flask("correlation_stacked_tests", root_path=str(Path(__file__).parent))

    @app.before_request
    def before_request() -> None:
        if probe.barrier is not None:
            probe.barrier.wait()

    record_response_ids(app, probe.events)

    @app.get("/view")
    def view() -> dict[str, Any]:
        probe.contexts.append(contextvars.copy_context())
        return {
            "context": get_request_id(),
            "headers": request.headers.getlist("X-Request-ID"),
            "environ": request.environ.get("correlation.request_id"),
        }

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for index in range(CHUNKS):
                yield f"{index}:{get_request_id()}\n"

        return Response(chunks(), mimetype="text/plain")

    app.wsgi_app = wsgi.RequestIdMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, config=config
    )
    return app


@dataclass
class Bridge:
    """Hosts WSGI apps as ASGI apps, with asgiref or a2wsgi."""

    name: str
    executors: list[ThreadPoolExecutor] = field(default_factory=list)

    def host(self, app: WSGIApplication) -> ASGIApp:
        """Return *app* hosted as an ASGI app."""
        if self.name == "asgiref":
            return WsgiToAsgi(app)  # type: ignore[no-untyped-call]
        # Enough worker threads for every concurrent request to be inside
        # Flask at once. a2wsgi types both sides with its own TypedDicts.
        middleware = a2wsgi.WSGIMiddleware(
            app,  # type: ignore[arg-type]
            workers=CONCURRENT,
        )
        self.executors.append(middleware.executor)
        return cast("ASGIApp", middleware)


@pytest.fixture(params=["asgiref", "a2wsgi"])
def bridge(request: pytest.FixtureRequest) -> Iterator[Bridge]:
    """Each bridge in turn; a2wsgi's worker threads are shut down afterwards."""
    bridge = Bridge(request.param)
    try:
        yield bridge
    finally:
        for executor in bridge.executors:
            executor.shutdown(wait=True)


def make_stack(
    bridge: Bridge,
    probe: Probe,
    outer_config: Config | None = None,
    inner_config: Config | None = None,
) -> ASGIApp:
    """ASGI adapter -> recorder -> bridge -> Flask with the WSGI adapter."""
    hosted = bridge.host(make_flask(probe, inner_config))

    async def record_outer(scope: Scope, receive: Receive, send: Send) -> None:
        probe.outer.append(get_request_id())
        await hosted(scope, receive, send)

    return asgi.RequestIdMiddleware(record_outer, config=outer_config)


async def fetch(
    client: httpx.AsyncClient, path: str, incoming: str | None
) -> httpx.Response:
    """GET *path* in this task, bounded; the task holds no id before or after."""
    assert get_request_id() is None
    headers = {} if incoming is None else {"X-Request-ID": incoming}
    with anyio.fail_after(TIMEOUT):
        response = await client.get(path, headers=headers)
    assert get_request_id() is None
    return response


def get(app: ASGIApp, path: str, incoming: str | None = None) -> httpx.Response:
    """Run one GET against *app* on a fresh event loop."""

    async def main() -> httpx.Response:
        async with asgi_client(app) as client:
            return await fetch(client, path, incoming)

    return asyncio.run(main())


def response_id(response: httpx.Response) -> str:
    """The one X-Request-ID header of *response*."""
    values = response.headers.get_list("X-Request-ID")
    assert len(values) == 1, values
    return values[0]


def assert_final_id(request_id: str, incoming: str | None) -> None:
    """The valid incoming value is kept; anything else gives a generated id."""
    if incoming == "client-id-1":
        assert request_id == incoming
    else:
        assert HEX32.fullmatch(request_id), request_id


# --- one id for the request ---------------------------------------------------


@pytest.mark.parametrize("incoming", INCOMING)
def test_flask_view_sees_the_id_the_outer_adapter_chose(
    bridge: Bridge, incoming: str | None
) -> None:
    """The ASGI side, the Flask view and the client see one and the same id."""
    probe = Probe()
    response = get(make_stack(bridge, probe), "/view", incoming)
    assert response.status_code == 200
    request_id = response_id(response)
    assert_final_id(request_id, incoming)
    assert probe.outer == [request_id]
    assert response.json() == {
        "context": request_id,
        "headers": [request_id],
        "environ": request_id,
    }
    if incoming is not None and incoming != request_id:
        assert incoming not in response.text


@pytest.mark.parametrize("incoming", INCOMING)
def test_every_streamed_chunk_sees_the_shared_id(
    bridge: Bridge, incoming: str | None
) -> None:
    """A Flask generator body, run by the bridge, sees the outer adapter's id."""
    probe = Probe()
    response = get(make_stack(bridge, probe), "/stream", incoming)
    assert response.status_code == 200
    request_id = response_id(response)
    assert_final_id(request_id, incoming)
    assert probe.outer == [request_id]
    assert response.text.splitlines() == [
        f"{index}:{request_id}" for index in range(CHUNKS)
    ]


@pytest.mark.parametrize("path", ["/view", "/stream"])
def test_close_callbacks_see_the_id_where_the_bridge_closes_the_body(
    bridge: Bridge, path: str
) -> None:
    """call_on_close sees the id under a2wsgi; WsgiToAsgi never calls close()."""
    probe = Probe()
    response = get(make_stack(bridge, probe), path, "close-id")
    assert response_id(response) == "close-id"
    if bridge.name == "asgiref":
        # asgiref's WsgiToAsgi iterates the body but never calls its close()
        # (django/asgiref#587), so Flask's call_on_close callbacks never run.
        assert probe.events == [("after_request", "close-id")]
    else:
        assert probe.events == [
            ("after_request", "close-id"),
            ("call_on_close", "close-id"),
        ]


def test_id_ends_with_the_response(bridge: Bridge) -> None:
    """A context copied inside the Flask view reads None once the response ended."""
    probe = Probe()
    response = get(make_stack(bridge, probe), "/view", "short-lived")
    assert response.json()["context"] == "short-lived"
    (context,) = probe.contexts
    assert context.run(get_request_id) is None


@pytest.mark.parametrize("path", ["/view", "/stream"])
@pytest.mark.parametrize("incoming", INCOMING)
def test_inner_adapter_that_trusts_no_client_still_takes_the_outer_id(
    bridge: Bridge, path: str, incoming: str | None
) -> None:
    """An inner trust_incoming=False adapter recognises the outer one and agrees."""
    probe = Probe()
    stack = make_stack(bridge, probe, inner_config=Config(trust_incoming=False))
    response = get(stack, path, incoming)
    assert response.status_code == 200
    request_id = response_id(response)
    assert_final_id(request_id, incoming)
    assert probe.outer == [request_id]
    if path == "/view":
        assert response.json()["context"] == request_id
        (context,) = probe.contexts
        assert context.run(get_request_id) is None
    else:
        assert response.text.splitlines() == [
            f"{index}:{request_id}" for index in range(CHUNKS)
        ]


# --- the outer adapter leaves the request header alone -------------------------

#: Outer adapters that leave the request header as the client sent it, so the
#: bridge hands Flask the client's value: only the outer adapter's binding (or,
#: under a2wsgi, its mark in ``environ["asgi.scope"]``) tells the inner adapter
#: the id. Their generators make ``outer-N`` ids.
OUTER_NO_REWRITE = [
    pytest.param(True, id="outer-trusting"),
    # A public edge that refuses client ids: an inner adapter that trusts them
    # must not undo it.
    pytest.param(False, id="outer-refusing"),
]

#: Inner adapters, trusting the client and making ``inner-N`` ids: one that
#: rewrites Flask's request header, and one that leaves it alone.
INNER_CONFIGS = [
    pytest.param(True, id="inner-rewrites"),
    pytest.param(False, id="inner-keeps-header"),
]


def outer_id(trusting: bool, incoming: str | None) -> str:
    """The id the outer adapter chooses: the valid client value, if it trusts it."""
    return incoming if trusting and incoming == "client-id-1" else "outer-1"


@pytest.mark.parametrize("incoming", INCOMING)
@pytest.mark.parametrize("inner_rewrites", INNER_CONFIGS)
@pytest.mark.parametrize("outer_trusting", OUTER_NO_REWRITE)
def test_outer_adapter_without_update_request_header_decides_the_id(
    bridge: Bridge, outer_trusting: bool, inner_rewrites: bool, incoming: str | None
) -> None:
    """Behind either bridge the outer adapter's id wins, the header left alone.

    a2wsgi passes the outer adapter's mark in ``environ["asgi.scope"]``;
    asgiref's WsgiToAsgi passes nothing but the client's headers, and the WSGI
    adapter adopts the live ASGI binding it runs in. Either way the view, the
    environ and the response carry the outer id; Flask's request header holds
    it when the inner adapter rewrites it, else the client's value as sent.
    """
    probe = Probe()
    outer = Config(
        trust_incoming=outer_trusting,
        update_request_header=False,
        generator=counting_generator("outer"),
    )
    inner = Config(
        update_request_header=inner_rewrites, generator=counting_generator("inner")
    )
    response = get(make_stack(bridge, probe, outer, inner), "/view", incoming)
    assert response.status_code == 200
    expected = outer_id(outer_trusting, incoming)
    assert response_id(response) == expected
    assert probe.outer == [expected]
    # Without the inner rewrite, Flask sees the header as the client sent it.
    sent = [] if incoming is None else [incoming]
    headers = [expected] if inner_rewrites else sent
    assert response.json() == {
        "context": expected,
        "headers": headers,
        "environ": expected,
    }
    if inner_rewrites and incoming is not None and incoming != expected:
        assert incoming not in response.text
    (context,) = probe.contexts
    assert context.run(get_request_id) is None


@pytest.mark.parametrize("incoming", INCOMING)
def test_refusing_outer_adapter_decides_the_id_of_streamed_chunks(
    bridge: Bridge, incoming: str | None
) -> None:
    """A refusing outer adapter's id reaches every chunk of a Flask stream."""
    probe = Probe()
    outer = Config(
        trust_incoming=False,
        update_request_header=False,
        generator=counting_generator("outer"),
    )
    inner = Config(generator=counting_generator("inner"))
    response = get(make_stack(bridge, probe, outer, inner), "/stream", incoming)
    assert response.status_code == 200
    assert response_id(response) == "outer-1"
    assert probe.outer == ["outer-1"]
    assert response.text.splitlines() == [f"{index}:outer-1" for index in range(CHUNKS)]


# --- concurrency --------------------------------------------------------------


def test_concurrent_requests_each_see_their_own_id(bridge: Bridge) -> None:
    """30 requests through the stack at once each see only their own id."""
    probe = Probe()
    if bridge.name == "a2wsgi":
        # a2wsgi runs each request in its own worker thread: hold them all
        # inside Flask together. WsgiToAsgi runs every request in one thread
        # (sync_to_async's thread_sensitive default), one after another.
        probe.barrier = threading.Barrier(CONCURRENT, timeout=TIMEOUT)
    app = make_stack(bridge, probe)
    ids = [f"concurrent-{index:02d}" for index in range(CONCURRENT)]

    async def main() -> list[httpx.Response]:
        async with asgi_client(app) as client:
            return await asyncio.gather(
                *(fetch(client, "/view", request_id) for request_id in ids)
            )

    responses = asyncio.run(main())
    for request_id, response in zip(ids, responses, strict=True):
        assert response_id(response) == request_id
        assert response.json() == {
            "context": request_id,
            "headers": [request_id],
            "environ": request_id,
        }
    assert sorted(value or "" for value in probe.outer) == ids
    for context in probe.contexts:
        assert context.run(get_request_id) is None
