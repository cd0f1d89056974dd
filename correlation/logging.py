"""Logging integration: put the request id on every log record.

Attach ``RequestIdFilter`` to a handler and use ``%(request_id)s`` in its
format. It never drops a record.
"""

from __future__ import annotations

import logging

from correlation import _context

__all__ = ["RequestIdFilter"]


class RequestIdFilter(logging.Filter):
    """Set ``record.request_id`` on each record that passes through.

    The value is the current request id, or *default* outside a unit of work.
    A value the caller passed with ``extra={"request_id": ...}`` is kept.
    Attach it to a handler (not a logger) so records from every logger get
    the attribute:

        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))

    Args:
        default: What a record logged outside a unit of work shows: ``"-"``,
            or another text (``""``, ``"none"``), or ``None`` for a
            structured formatter that writes it as null.

    Raises:
        TypeError: *default* is neither a ``str`` nor ``None``.
    """

    def __init__(self, *, default: str | None = "-") -> None:
        super().__init__()
        if default is not None and not isinstance(default, str):
            raise TypeError(f"default must be a str or None, got {default!r:.100}")
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id`` to *record* unless it already has one; keep it."""
        if "request_id" not in record.__dict__:
            request_id = _context.get_request_id()
            record.request_id = self.default if request_id is None else request_id
        return True
