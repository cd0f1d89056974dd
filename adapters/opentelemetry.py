"""OpenTelemetry: the request id on spans, and request ids that are trace ids.

Add the span processor to the SDK's tracer provider::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from adapters.opentelemetry import RequestIdSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(RequestIdSpanProcessor())
    trace.set_tracer_provider(provider)

Every span started while an id is current gets the attribute
``request_id``. With OpenTelemetry's ASGI or WSGI middleware *inside* the
toolkit's adapter, that includes the server span.

With OpenTelemetry's middleware *outside* the adapter, the server span is
current when the adapter picks the id, and ``trace_id_or_new`` as the
generator makes a request that came without an id take the trace's id::

    from correlation import Config
    from adapters.opentelemetry import trace_id_or_new

    config = Config(generator=trace_id_or_new)

Importing this module loads no OpenTelemetry: ``RequestIdSpanProcessor``
(a subclass of the SDK's ``SpanProcessor``) is loaded on first use of the
name, and ``trace_id_or_new`` imports the API on its first call. Install
both with the ``opentelemetry`` extra.
"""

from __future__ import annotations

from adapters import _extras
from correlation import _ids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from adapters._opentelemetry_processor import (
        RequestIdSpanProcessor as RequestIdSpanProcessor,
    )
del TYPE_CHECKING

_extras.require(__name__, "opentelemetry", extra="opentelemetry", label="OpenTelemetry")

__all__ = ["RequestIdSpanProcessor", "trace_id_or_new"]


def __getattr__(name: str) -> Any:
    # RequestIdSpanProcessor subclasses the SDK's SpanProcessor, so its module
    # imports the SDK: it is loaded when the name is first asked for.
    if name == "RequestIdSpanProcessor":
        try:
            from adapters._opentelemetry_processor import RequestIdSpanProcessor
        except ImportError as exc:
            if not (exc.name or "").startswith("opentelemetry"):
                raise
            raise ImportError(
                "adapters.opentelemetry.RequestIdSpanProcessor needs the"
                " OpenTelemetry SDK: pip install 'correlation-toolkit[opentelemetry]'",
                name=exc.name,
            ) from exc
        globals()[name] = RequestIdSpanProcessor  # later lookups skip this function
        return RequestIdSpanProcessor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def trace_id_or_new() -> str:
    """A ``Config.generator``: the current trace's id, or a new random id.

    When a valid span is current (OpenTelemetry's ASGI or WSGI middleware
    runs outside the toolkit's adapter and has started the server span), the
    id is that span's trace id as 32 lowercase hex digits, the form trace
    backends show, so a request id found in a log line is also the trace to
    open. Otherwise it is ``correlation.generate_id()``'s new random id.
    """
    from opentelemetry.trace import get_current_span

    span_context = get_current_span().get_span_context()
    if span_context.is_valid:
        return format(span_context.trace_id, "032x")
    return _ids.generate_id()
