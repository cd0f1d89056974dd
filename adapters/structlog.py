"""structlog: the current request id in every event dict.

Add ``add_request_id`` to structlog's processors, before the renderer::

    import structlog
    from adapters.structlog import add_request_id

    structlog.configure(
        processors=[
            add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(),
        ]
    )

The processor runs where the event is logged, so it reads the id of the
request, task or ``bound_request_id`` block that logged it; structlog's
async methods (``await log.ainfo(...)``) run the processors in a thread with
a copy of the caller's context, which holds the same id. For records from
the standard library's ``logging`` that structlog formats, put it in
``ProcessorFormatter``'s ``foreign_pre_chain`` too.

structlog is not imported by this module; install it with the ``structlog``
extra.
"""

from __future__ import annotations

from adapters import _extras
from correlation import _context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import MutableMapping
    from typing import Any
del TYPE_CHECKING

_extras.require(__name__, "structlog", extra="structlog", label="structlog")

__all__ = ["add_request_id"]


def add_request_id(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: ``event_dict["request_id"]`` is the current id.

    It adds the key only inside a unit of work (a request, a
    ``bound_request_id`` block, a task) and only when the event has none: a
    ``request_id`` bound with ``log.bind(request_id=...)`` or passed to the
    log call is kept. Outside a unit of work the event is left as it is, so
    a renderer shows no key rather than a placeholder.
    """
    if "request_id" not in event_dict:
        request_id = _context.get_request_id()
        if request_id is not None:
            event_dict["request_id"] = request_id
    return event_dict
