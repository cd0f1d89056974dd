"""aiohttp: the current request id on every request a client session sends.

::

    import aiohttp
    from adapters.aiohttp import RequestIdClientMiddleware

    session = aiohttp.ClientSession(
        middlewares=(RequestIdClientMiddleware(hosts=[".internal"]),)
    )

A client middleware (aiohttp 3.12 or newer): aiohttp calls the session's
middlewares on every hop (the first request and each redirect, which it
builds afresh from the headers the caller gave). The rules are
``correlation._outbound``'s. A request's own ``middlewares=`` argument
replaces the session's: pass this one there too.

aiohttp is not imported by this module; install it with the ``aiohttp`` extra.
"""

from __future__ import annotations

from correlation._outbound import AddedId as _AddedId
from correlation._outbound import Outbound as _Outbound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
    from yarl import URL

del TYPE_CHECKING

__all__ = ["RequestIdClientMiddleware"]


class RequestIdClientMiddleware:
    """An aiohttp client middleware that sends the current id on every hop.

    It adds ``header_name`` with ``correlation.get_request_id()`` to each
    request sent inside a unit of work, to the ``hosts`` listed (``None``:
    every host; ``"api.internal"`` exactly, ``".internal"`` the domain and its
    subdomains, ``"*"`` any). A header the caller set is never touched. A bad
    ``header_name`` or ``hosts`` raises here.
    """

    __slots__ = ("_outbound",)

    def __init__(
        self, *, header_name: str = "X-Request-ID", hosts: list[str] | None = None
    ) -> None:
        self._outbound = _Outbound(header_name, hosts, _host_of)

    def __repr__(self) -> str:
        return f"RequestIdClientMiddleware({self._outbound!r})"

    async def __call__(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        """Set, keep or take off the id header of this hop, then send it."""
        headers = request.headers
        name = self._outbound.header_name
        sent = headers.get(name)
        # A middleware further out may send the same request twice (a retry,
        # a Digest challenge): the value this one added is its own again.
        added = sent if type(sent) is _AddedId else None
        value = self._outbound.header_value(request.url, sent, added)
        if value != sent:
            if value is None:
                del headers[name]
            else:
                headers[name] = _AddedId(value)
        return await handler(request)


def _host_of(url: URL) -> str:
    return url.raw_host or ""
