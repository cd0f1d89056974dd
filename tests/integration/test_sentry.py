"""Sentry: ``install()`` tags events captured inside a unit of work, with the real SDK.

Events go to a capturing transport, never to the network. The SDK runs with
its default and auto-enabling integrations off, so it patches no framework
in this process; Sentry's own ``SentryAsgiMiddleware`` and
``SentryWsgiMiddleware`` are placed by hand, inside and outside the
toolkit's adapter. Its framework integrations (Flask's here) run in a
subprocess, since enabling one patches the framework for good.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sentry_sdk
from asgi_testing import asgi_client
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware
from sentry_sdk.scope import global_event_processors
from sentry_sdk.transport import Transport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import adapters.sentry
from adapters import asgi, wsgi
from adapters._types import ASGIApp
from adapters.sentry import install
from correlation import bound_request_id
from correlation.threads import ThreadPoolExecutor

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

ORDERS = ["adapter-outside", "adapter-inside"]


class CapturingTransport(Transport):
    """Keeps every event the SDK sends; sends nothing anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event" and item.payload.json is not None:
                self.events.append(item.payload.json)


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """The events captured during the test; the SDK set up with ``install()``."""
    transport = CapturingTransport()
    sentry_sdk.init(
        dsn="https://public@127.0.0.1:9/1",
        transport=transport,
        default_integrations=False,
        auto_enabling_integrations=False,
    )
    install()
    try:
        with sentry_sdk.isolation_scope():  # tags a test sets end with it
            yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def tags(event: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = event.get("tags", {})
    return found


def messages(events: Iterable[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(message or exception value, the request_id tag) of each event."""
    seen = []
    for event in events:
        if "exception" in event:
            text = event["exception"]["values"][-1]["value"]
        else:
            text = event.get("message") or event["logentry"]["message"]
        seen.append((text, tags(event).get("request_id")))
    return seen


# --- events captured by the application --------------------------------------------


def test_inside_a_unit_the_event_is_tagged_outside_not(
    events: list[dict[str, Any]],
) -> None:
    sentry_sdk.capture_message("before")
    with bound_request_id("job-1"):
        sentry_sdk.capture_message("during")
        try:
            raise ValueError("boom")
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.capture_message("after")
    assert messages(events)[0] == ("before", None)
    assert messages(events)[1] == ("during", "job-1")
    assert messages(events)[2][1] == "job-1"
    assert messages(events)[3] == ("after", None)


def test_a_tag_the_application_set_is_kept(events: list[dict[str, Any]]) -> None:
    with bound_request_id("current"):
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("request_id", "set-by-app")
            sentry_sdk.capture_message("scope tag")
        sentry_sdk.capture_event({"message": "event tag", "tags": {"request_id": "x"}})
        sentry_sdk.capture_message("own tag", tags={"request_id": "y"})
    assert messages(events) == [
        ("scope tag", "set-by-app"),
        ("event tag", "x"),
        ("own tag", "y"),
    ]


def test_other_tags_are_left_alone(events: list[dict[str, Any]]) -> None:
    with bound_request_id("current"), sentry_sdk.new_scope() as scope:
        scope.set_tag("tenant", "acme")
        sentry_sdk.capture_message("m")
    assert tags(events[0]) == {"tenant": "acme", "request_id": "current"}


def test_an_event_whose_tags_are_not_a_dict_is_sent_as_it_is(
    events: list[dict[str, Any]],
) -> None:
    """The protocol also allows tags as pairs; the processor does not break them."""
    with bound_request_id("current"):
        pairs = [["tenant", "acme"]]  # the SDK's types say a dict; the protocol not
        sentry_sdk.capture_event({"message": "pairs", "tags": pairs})  # type: ignore[typeddict-item]
    assert events[0]["tags"] == [["tenant", "acme"]]


def test_threads_and_tasks_of_the_unit_tag_their_events(
    events: list[dict[str, Any]],
) -> None:
    async def task(n: int) -> None:
        sentry_sdk.capture_message(f"task {n}")

    async def tasks() -> None:
        with bound_request_id("async-1"):
            await asyncio.gather(task(1), task(2))

    asyncio.run(tasks())
    with bound_request_id("pool-1"), ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(sentry_sdk.capture_message, "thread").result(timeout=10)
    assert sorted(messages(events)) == [
        ("task 1", "async-1"),
        ("task 2", "async-1"),
        ("thread", "pool-1"),
    ]


# --- installing ----------------------------------------------------------------------


def test_installing_twice_counts_once(events: list[dict[str, Any]]) -> None:
    install()
    install()
    assert global_event_processors.count(adapters.sentry._tag_event) == 1
    with bound_request_id("once"):
        sentry_sdk.capture_message("m")
    assert tags(events[0]) == {"request_id": "once"}


def test_installing_again_renames_the_tag(events: list[dict[str, Any]]) -> None:
    install(tag="correlation.id")
    try:
        with bound_request_id("renamed"):
            sentry_sdk.capture_message("m")
    finally:
        install()
    assert tags(events[0]) == {"correlation.id": "renamed"}
    assert global_event_processors.count(adapters.sentry._tag_event) == 1


@pytest.mark.parametrize(
    "tag", ["", "a" * 33, "request id", "request_id\n", "réquest", "a/b"]
)
def test_a_tag_sentry_would_drop_is_refused(tag: str) -> None:
    install()  # whichever test ran before, the last good install is this one
    with pytest.raises(ValueError, match=r"tag must be 1 to 32 letters") as raised:
        install(tag=tag)
    assert repr(tag)[:20] in str(raised.value)
    assert adapters.sentry._tag == "request_id"  # the last good install stands


def test_a_tag_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(TypeError, match=r"tag must be a str, got b'request_id'"):
        install(tag=b"request_id")  # type: ignore[arg-type]


def test_the_longest_tag_sentry_keeps_is_taken(events: list[dict[str, Any]]) -> None:
    tag = "a.b:c-d_" + "e" * 24
    install(tag=tag)
    try:
        with bound_request_id("long"):
            sentry_sdk.capture_message("m")
    finally:
        install()
    assert tags(events[0]) == {tag: "long"}


# --- Sentry's middleware inside and outside the adapter ------------------------------


def starlette_app() -> Starlette:
    async def report(request: Request) -> PlainTextResponse:
        sentry_sdk.capture_message("reported")
        return PlainTextResponse("ok")

    async def fail(request: Request) -> PlainTextResponse:
        raise RuntimeError("view failed")

    return Starlette(routes=[Route("/report", report), Route("/fail", fail)])


def asgi_stack(order: str) -> ASGIApp:
    app = starlette_app()
    if order == "adapter-outside":
        return asgi.RequestIdMiddleware(SentryAsgiMiddleware(app))
    return SentryAsgiMiddleware(asgi.RequestIdMiddleware(app))


def wsgi_view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("view failed")
    sentry_sdk.capture_message("reported")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_stack(order: str) -> WSGIApplication:
    if order == "adapter-outside":
        return wsgi.RequestIdMiddleware(SentryWsgiMiddleware(wsgi_view))
    return SentryWsgiMiddleware(wsgi.RequestIdMiddleware(wsgi_view))


def serve(protocol: str, order: str, path: str, request_id: str) -> httpx.Response:
    headers = {"X-Request-ID": request_id}
    if protocol == "asgi":

        async def run() -> httpx.Response:
            async with asgi_client(
                asgi_stack(order), raise_app_exceptions=False
            ) as client:
                return await client.get(path, headers=headers)

        return asyncio.run(run())
    transport = httpx.WSGITransport(app=wsgi_stack(order), raise_app_exceptions=False)
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        try:
            return client.get(path, headers=headers)
        except RuntimeError:  # a WSGI app that raises sends no response
            return httpx.Response(500)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_an_event_the_view_captures_is_tagged_in_either_order(
    events: list[dict[str, Any]], protocol: str, order: str
) -> None:
    serve(protocol, order, "/report", "view-1")
    serve(protocol, order, "/report", "view-2")
    assert messages(events) == [("reported", "view-1"), ("reported", "view-2")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_an_event_between_two_requests_has_no_tag(
    events: list[dict[str, Any]], protocol: str, order: str
) -> None:
    """Nothing is written into a scope, so nothing outlives the request."""
    serve(protocol, order, "/report", "first")
    sentry_sdk.capture_message("between")
    serve(protocol, order, "/report", "second")
    sentry_sdk.capture_message("after")
    assert messages(events) == [
        ("reported", "first"),
        ("between", None),
        ("reported", "second"),
        ("after", None),
    ]


@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_an_error_sentrys_middleware_captures_inside_the_adapter_is_tagged(
    events: list[dict[str, Any]], protocol: str
) -> None:
    serve(protocol, "adapter-outside", "/fail", "fail-1")
    ((text, tag),) = messages(events)
    assert text.startswith("view failed")
    assert tag == "fail-1"


@pytest.mark.parametrize("protocol", ["asgi", "wsgi"])
def test_an_error_sentrys_middleware_captures_outside_the_adapter_is_not(
    events: list[dict[str, Any]], protocol: str
) -> None:
    """Captured after the unit of work ended: no tag, as the docs say.

    On Python 3.11+ the adapter's note still names the id in the error's text.
    """
    serve(protocol, "adapter-inside", "/fail", "fail-2")
    ((text, tag),) = messages(events)
    assert tag is None
    assert text.startswith("view failed")
    assert ("request_id=fail-2" in text) is (sys.version_info >= (3, 11))


# --- a framework integration of Sentry's ------------------------------------------


FLASK_WITH_SENTRY = """
import sentry_sdk
from flask import Flask
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.transport import Transport

from adapters.sentry import install
from adapters.wsgi import RequestIdMiddleware

events = []


class Capturing(Transport):
    def capture_envelope(self, envelope):
        events.extend(i.payload.json for i in envelope.items if i.type == "event")


sentry_sdk.init(
    dsn="https://public@127.0.0.1:9/1",
    transport=Capturing(),
    integrations=[FlaskIntegration()],
    auto_enabling_integrations=False,
)
install()

app = Flask(__name__)


@app.route("/fail")
def fail():
    raise RuntimeError("view failed")


app.wsgi_app = RequestIdMiddleware(app.wsgi_app)
client = app.test_client()
for request_id in ("flask-1", "flask-2"):
    assert client.get("/fail", headers={"X-Request-ID": request_id}).status_code == 500
sentry_sdk.capture_message("after")
for event in events:
    print(event.get("tags", {}).get("request_id"))
"""


def test_flask_integration_errors_are_tagged() -> None:
    """Sentry's Flask integration captures inside the app, inside the adapter."""
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(FLASK_WITH_SENTRY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["flask-1", "flask-2", "None"]
