"""Log capture, the suite's one helper for it, and Django signal receivers.

Not a test module. ``capture_logs(name)`` puts a ``LogCapture`` handler on a
logger for the length of a ``with`` block: it keeps every record, after
``RequestIdFilter`` gave it its ``request_id``, and formats them on demand
(``lines``, ``text``; ``texts`` for every string a record holds, where a
hostile value must not hide). ``correlation_logs()`` is the same for the
toolkit's own logger at DEBUG. A test module's fixture yields the capture;
the servers in ``servers`` collect their loggers with it. ``connected(...)``
connects Django signal receivers for a block.

The probe apps (``asgi_probe``, ``wsgi_probe``) keep their own handlers: they
run inside server processes and file each record with its request's token in
the probe's store, which is what the server tests read back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from correlation.logging import RequestIdFilter

if TYPE_CHECKING:
    from django.dispatch import Signal

__all__ = ["LogCapture", "capture_logs", "connected", "correlation_logs"]

#: How ``LogCapture.lines`` formats a record unless told otherwise.
DEFAULT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class LogCapture(logging.Handler):
    """Keeps every record it handles, from any thread, after its filters ran."""

    def __init__(self, fmt: str = DEFAULT_FORMAT) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.setFormatter(logging.Formatter(fmt))
        self._records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self._records.append(record)

    @property
    def records(self) -> list[logging.LogRecord]:
        """The records so far, oldest first (a copy)."""
        with self._guard:
            return list(self._records)

    def lines(self, *names: str) -> list[str]:
        """The records of the loggers *names* (all when none given), formatted.

        A formatted record holds its traceback, if any, on the lines after it.
        """
        return [
            self.format(record)
            for record in self.records
            if not names or record.name in names
        ]

    def text(self) -> str:
        """Every record formatted, one after the other."""
        return "\n".join(self.lines())

    def texts(self) -> list[str]:
        """Per record, every string it holds: formatted, msg, args, attributes."""
        return [
            f"{self.format(record)} {record.msg!r} {record.args!r} {vars(record)!r}"
            for record in self.records
        ]


@contextmanager
def capture_logs(
    logger_name: str, *, level: int | None = None, fmt: str = DEFAULT_FORMAT
) -> Iterator[LogCapture]:
    """A ``LogCapture`` on the logger *logger_name* ("" for the root) for the block.

    *level*, when given, is the logger's level meanwhile (``logging.DEBUG``
    to see what it would not log otherwise). The records still propagate, so
    pytest shows them when a test fails.
    """
    handler = LogCapture(fmt)
    logger = logging.getLogger(logger_name)
    old_level = logger.level
    logger.addHandler(handler)
    if level is not None:
        logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@contextmanager
def connected(
    *receivers: tuple[Signal, Callable[..., Any], str],
) -> Iterator[None]:
    """Each ``(signal, receiver, dispatch_uid)`` connected for the block."""
    for signal, receiver, uid in receivers:
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        for signal, _, uid in receivers:
            signal.disconnect(dispatch_uid=uid)


@contextmanager
def correlation_logs() -> Iterator[list[str]]:
    """Capture the "correlation" logger at DEBUG; the list fills when the block ends.

    Attached and detached around one use (one hypothesis example, say), so
    uses do not share records. Each text is ``LogCapture.texts``: the
    formatted line (traceback included), the raw ``msg`` and ``args`` and the
    record's attributes, so a value hidden in any of them is found.
    """
    texts: list[str] = []
    with capture_logs("correlation", level=logging.DEBUG) as capture:
        yield texts
    texts.extend(capture.texts())
