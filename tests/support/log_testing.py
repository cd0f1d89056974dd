"""Log-record capture and Django signal receivers for the framework tests.

Not a test module. ``capture_records(name)`` puts a ``RecordCapture`` handler
with ``RequestIdFilter`` on a logger for the length of a ``with`` block; a
test module's fixture yields it. ``connected(...)`` does the same for Django
signal receivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from correlation.logging import RequestIdFilter

if TYPE_CHECKING:
    from django.dispatch import Signal

__all__ = ["RecordCapture", "capture_records", "connected", "correlation_logs"]


class RecordCapture(logging.Handler):
    """Keeps the records it handles, after its filters ran."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capture_records(logger_name: str) -> Iterator[RecordCapture]:
    """A ``RecordCapture`` with ``RequestIdFilter`` on the logger *logger_name*."""
    handler = RecordCapture()
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


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
    """Capture the "correlation" logger at DEBUG, as fully formatted texts.

    Attached and detached around one use (one hypothesis example, say), so
    uses do not share records. Each text holds the formatted line (traceback
    included) and the raw ``msg`` and ``args``, so a value hidden in either
    is found.
    """
    logger = logging.getLogger("correlation")
    handler = RecordCapture()
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        yield texts
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        texts.extend(
            f"{formatter.format(r)} {r.msg!r} {r.args!r}" for r in handler.records
        )
