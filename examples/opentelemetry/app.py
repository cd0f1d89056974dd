"""A Starlette service whose spans carry the request id, printed to stdout.

``RequestIdSpanProcessor`` sets the attribute ``request_id`` on every span
started while an id is current. The adapter wraps OpenTelemetry's ASGI
middleware, so the server span gets it too.
"""

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from adapters.opentelemetry import RequestIdSpanProcessor
from correlation import get_request_id

provider = TracerProvider()
provider.add_span_processor(RequestIdSpanProcessor())
# Prints each finished span to stdout as JSON; in production, an OTLP exporter.
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("shop")


async def order(request: Request) -> JSONResponse:
    with tracer.start_as_current_span("load order"):
        return JSONResponse({"request_id": get_request_id()})


app = RequestIdMiddleware(
    OpenTelemetryMiddleware(Starlette(routes=[Route("/order", order)]))
)
