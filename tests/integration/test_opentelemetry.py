"""OpenTelemetry: the id on spans, and ids that are trace ids, with the real SDK.

Each test has its own ``TracerProvider`` with ``RequestIdSpanProcessor`` and
an in-memory exporter; OpenTelemetry's ASGI and WSGI middleware get it with
``tracer_provider=``, so no global provider is set. With the adapter outside
OpenTelemetry's middleware, every span of the request carries the id, the
server span included; with OpenTelemetry's middleware outside and
``trace_id_or_new`` as the generator, a request that came without an id
takes the trace's id.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgi_testing import asgi_client
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as OtelAsgi
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as OtelWsgi
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import adapters.opentelemetry
from adapters import asgi, wsgi
from adapters.opentelemetry import RequestIdSpanProcessor, trace_id_or_new
from correlation import Config, bound_request_id, default_validator, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from adapters._types import ASGIApp

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Tracing:
    """A provider with the processor under test, and what it exported."""

    def __init__(self, attribute: str = "request_id") -> None:
        self.provider = TracerProvider()
        self.provider.add_span_processor(RequestIdSpanProcessor(attribute=attribute))
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def server_span(self) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.kind is SpanKind.SERVER]
        return span


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    tracing = Tracing()
    try:
        yield tracing
    finally:
        tracing.provider.shutdown()


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# --- the span processor ---------------------------------------------------------------


def test_spans_inside_a_unit_carry_the_id_outside_none(tracing: Tracing) -> None:
    with tracing.tracer.start_as_current_span("before"):
        pass
    with (
        bound_request_id("job-1"),
        tracing.tracer.start_as_current_span("outer"),
        tracing.tracer.start_as_current_span("inner"),
    ):
        pass
    with tracing.tracer.start_as_current_span("after"):
        pass
    assert {span.name: attributes(span) for span in tracing.spans()} == {
        "before": {},
        "inner": {"request_id": "job-1"},
        "outer": {"request_id": "job-1"},
        "after": {},
    }


def test_the_id_is_read_when_the_span_starts(tracing: Tracing) -> None:
    """A span started outside and ended inside a unit gets nothing, and back."""
    span = tracing.tracer.start_span("started outside")
    with bound_request_id("later"):
        span.end()
    with bound_request_id("earlier"):
        other = tracing.tracer.start_span("started inside")
    other.end()
    assert {s.name: attributes(s) for s in tracing.spans()} == {
        "started outside": {},
        "started inside": {"request_id": "earlier"},
    }


def test_an_attribute_the_code_sets_later_wins(tracing: Tracing) -> None:
    """The processor runs at start; the application's own value replaces it."""
    with (
        bound_request_id("current"),
        tracing.tracer.start_as_current_span("s") as span,
    ):
        span.set_attribute("request_id", "mine")
    assert attributes(tracing.spans()[0]) == {"request_id": "mine"}


def test_a_custom_attribute_name() -> None:
    tracing = Tracing(attribute="app.request_id")
    with bound_request_id("named"), tracing.tracer.start_as_current_span("s"):
        pass
    assert attributes(tracing.spans()[0]) == {"app.request_id": "named"}


def test_it_is_the_sdks_span_processor() -> None:
    processor = RequestIdSpanProcessor()
    assert isinstance(processor, SpanProcessor)
    assert processor.force_flush() is True
    processor.shutdown()


@pytest.mark.parametrize("attribute", [0, None, b"request_id"])
def test_an_attribute_that_is_not_a_str_is_refused(attribute: object) -> None:
    with pytest.raises(TypeError, match=r"attribute must be a str, got"):
        RequestIdSpanProcessor(attribute=attribute)  # type: ignore[arg-type]


def test_an_empty_attribute_is_refused() -> None:
    with pytest.raises(ValueError, match=r"attribute must be a non-empty str, got ''"):
        RequestIdSpanProcessor(attribute="")


def test_without_the_sdk_the_name_says_which_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    monkeypatch.delitem(sys.modules, "adapters._opentelemetry_processor")
    monkeypatch.delitem(vars(adapters.opentelemetry), "RequestIdSpanProcessor")
    with pytest.raises(
        ImportError, match=r"needs the OpenTelemetry SDK.*correlation-toolkit\["
    ):
        adapters.opentelemetry.RequestIdSpanProcessor  # noqa: B018


def test_the_module_lists_its_names_and_no_others() -> None:
    assert {"RequestIdSpanProcessor", "trace_id_or_new"} <= set(
        dir(adapters.opentelemetry)
    )
    with pytest.raises(AttributeError, match=r"has no attribute 'SpanProcessor'"):
        adapters.opentelemetry.SpanProcessor  # noqa: B018


# --- trace_id_or_new ------------------------------------------------------------------


def test_trace_id_or_new_without_a_span_is_a_new_random_id() -> None:
    ids = {trace_id_or_new() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 32 and default_validator(i) for i in ids)


def test_trace_id_or_new_inside_a_span_is_its_trace_id(tracing: Tracing) -> None:
    with tracing.tracer.start_as_current_span("s") as span:
        trace_id = span.get_span_context().trace_id
        assert trace_id_or_new() == format(trace_id, "032x")


def test_trace_id_or_new_is_a_config_generator(tracing: Tracing) -> None:
    config = Config(generator=trace_id_or_new)
    with (
        tracing.tracer.start_as_current_span("s") as span,
        bound_request_id(config=config),
    ):
        request_id = get_request_id()
    assert request_id == format(span.get_span_context().trace_id, "032x")


# --- OpenTelemetry's middleware and the adapter -------------------------------------


def asgi_app() -> Starlette:
    def view(request: Request) -> PlainTextResponse:
        return PlainTextResponse(get_request_id() or "")

    return Starlette(routes=[Route("/", view)])


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(get_request_id() or "").encode()]


def asgi_stack(order: str, tracing: Tracing, config: Config | None) -> ASGIApp:
    app = asgi_app()
    provider = tracing.provider
    if order == "adapter-outside":
        return asgi.RequestIdMiddleware(
            OtelAsgi(app, tracer_provider=provider), config=config
        )
    return OtelAsgi(
        asgi.RequestIdMiddleware(app, config=config), tracer_provider=provider
    )


def wsgi_stack(order: str, tracing: Tracing, config: Config | None) -> WSGIApplication:
    provider = tracing.provider
    if order == "adapter-outside":
        return wsgi.RequestIdMiddleware(
            OtelWsgi(wsgi_app, tracer_provider=provider), config=config
        )
    return OtelWsgi(
        wsgi.RequestIdMiddleware(wsgi_app, config=config), tracer_provider=provider
    )


def serve(
    protocol: str,
    order: str,
    tracing: Tracing,
    headers: dict[str, str],
    config: Config | None = None,
) -> httpx.Response:
    if protocol == "asgi":

        async def run() -> httpx.Response:
            async with asgi_client(asgi_stack(order, tracing, config)) as client:
                return await client.get("/", headers=headers)

        return asyncio.run(run())
    transport = httpx.WSGITransport(app=wsgi_stack(order, tracing, config))
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        return client.get("/", headers=headers)


PROTOCOLS = ["asgi", "wsgi"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("incoming", [{}, {"X-Request-ID": "given-1"}])
def test_with_the_adapter_outside_every_span_carries_the_id(
    tracing: Tracing, protocol: str, incoming: dict[str, str]
) -> None:
    response = serve(protocol, "adapter-outside", tracing, incoming)
    request_id = response.headers["X-Request-ID"]
    assert response.text == request_id
    assert incoming.get("X-Request-ID", request_id) == request_id
    assert attributes(tracing.server_span())["request_id"] == request_id
    assert tracing.spans()  # the ASGI middleware's send spans too
    assert all(attributes(s)["request_id"] == request_id for s in tracing.spans())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_with_otel_outside_a_request_without_an_id_takes_the_trace_id(
    tracing: Tracing, protocol: str
) -> None:
    config = Config(generator=trace_id_or_new)
    first = serve(protocol, "otel-outside", tracing, {}, config)
    server_span = tracing.server_span()
    trace_id = format(server_span.context.trace_id, "032x")
    assert first.headers["X-Request-ID"] == trace_id
    assert first.text == trace_id
    # Started before the adapter bound the id: the server span has no attribute.
    assert "request_id" not in attributes(server_span)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_with_otel_outside_an_incoming_traceparent_becomes_the_request_id(
    tracing: Tracing, protocol: str
) -> None:
    """Across services: the caller's trace id is the id in every log line."""
    config = Config(generator=trace_id_or_new)
    response = serve(
        protocol, "otel-outside", tracing, {"traceparent": TRACEPARENT}, config
    )
    assert response.headers["X-Request-ID"] == TRACE_ID
    assert format(tracing.server_span().context.trace_id, "032x") == TRACE_ID


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_with_otel_outside_an_incoming_id_is_kept(
    tracing: Tracing, protocol: str
) -> None:
    config = Config(generator=trace_id_or_new)
    response = serve(
        protocol, "otel-outside", tracing, {"X-Request-ID": "given-2"}, config
    )
    assert response.headers["X-Request-ID"] == "given-2"
    assert response.text == "given-2"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_requests_get_ids_of_their_own_traces(tracing: Tracing, protocol: str) -> None:
    config = Config(generator=trace_id_or_new)
    ids = [
        serve(protocol, "otel-outside", tracing, {}, config).headers["X-Request-ID"]
        for _ in range(3)
    ]
    servers = [s for s in tracing.spans() if s.kind is SpanKind.SERVER]
    assert ids == [format(s.context.trace_id, "032x") for s in servers]
    assert len(set(ids)) == 3
