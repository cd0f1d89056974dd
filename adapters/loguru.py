"""loguru: the current request id in every record's ``extra``.

Install ``patcher`` on the logger, then use ``{extra[request_id]}`` in a
sink's format::

    import sys

    from loguru import logger

    from adapters.loguru import patcher

    logger.configure(patcher=patcher)
    logger.remove()
    logger.add(sys.stderr, format="{time} {level} [{extra[request_id]}] {message}")

(``logger = logger.patch(patcher)`` does the same for one logger object.)
A patcher runs for every record, where it is logged, before any sink sees it,
so a sink added with ``enqueue=True`` gets the id of the request that logged
the record. Unlike a sink's *filter*, it never drops a record: outside a
unit of work the record gets ``"-"``, so the format never raises
``KeyError``.

loguru is not imported by this module; install it with the ``loguru`` extra.
"""

from __future__ import annotations

from adapters import _extras
from correlation import _context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from loguru import Record
del TYPE_CHECKING

_extras.require(__name__, "loguru", extra="loguru", label="loguru")

__all__ = ["patcher"]


def patcher(record: Record) -> None:
    """A loguru patcher: ``record["extra"]["request_id"]`` is the current id.

    The value is the id of the unit of work in flight, or ``"-"`` outside
    one. A ``request_id`` the record already has (from
    ``logger.contextualize(request_id=...)``, ``logger.bind(...)`` or the log
    call's own keyword arguments) is kept.
    """
    extra = record["extra"]
    if "request_id" not in extra:
        request_id = _context.get_request_id()
        extra["request_id"] = "-" if request_id is None else request_id
