"""``adapters.opentelemetry.RequestIdSpanProcessor``, which needs the SDK to be defined.

It subclasses the OpenTelemetry SDK's ``SpanProcessor``, so this module
imports the SDK; ``adapters.opentelemetry`` loads it on first use of the
name, so that importing ``adapters.opentelemetry`` loads no OpenTelemetry.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

from correlation import _context

__all__ = ["RequestIdSpanProcessor"]


class RequestIdSpanProcessor(SpanProcessor):
    """A span processor: every span started inside a unit of work gets the id.

    ``on_start`` sets *attribute* to ``get_request_id()`` on each span
    started while an id is current (a request, a ``bound_request_id`` block,
    a task); a span started outside one gets no attribute. The id is read
    when the span starts, in the code that starts it; nothing is kept.

    Args:
        attribute: The span attribute's name, a non-empty ``str``.

    Raises:
        TypeError: *attribute* is not a ``str``.
        ValueError: *attribute* is empty.
    """

    def __init__(self, *, attribute: str = "request_id") -> None:
        if not isinstance(attribute, str):
            raise TypeError(f"attribute must be a str, got {attribute!r:.100}")
        if not attribute:
            raise ValueError("attribute must be a non-empty str, got ''")
        self.attribute = attribute

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Set the attribute on *span* when an id is current."""
        request_id = _context.get_request_id()
        if request_id is not None:
            span.set_attribute(self.attribute, request_id)
