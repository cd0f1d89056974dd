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

    The value is the current request id, or ``"-"`` outside a request. A value
    the caller passed with ``extra={"request_id": ...}`` is kept. Attach it to
    a handler (not a logger) so records from every logger get the attribute::

        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))

    .. versionadded:: 0.1
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``request_id`` to *record* unless it already has one; keep it."""
        if "request_id" not in record.__dict__:
            request_id = _context.get_request_id()
            record.request_id = "-" if request_id is None else request_id
        return True
