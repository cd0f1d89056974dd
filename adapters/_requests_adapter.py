"""``adapters.requests.RequestIdAdapter`` itself, which needs requests to be defined.

It subclasses requests' ``HTTPAdapter``, so this module imports requests;
``adapters.requests`` loads it on first use of the name, so that importing
``adapters.requests`` loads no requests.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest
from requests.adapters import HTTPAdapter

from correlation._outbound import AddedId, Outbound


class RequestIdAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that sends the current id on every hop.

    It adds ``header_name`` with ``correlation.get_request_id()`` to each
    request sent inside a unit of work, to the ``hosts`` listed (``None``:
    every host; ``"api.internal"`` exactly, ``".internal"`` the domain and its
    subdomains, ``"*"`` any). A header the caller set is never touched. Other
    keyword arguments (``max_retries``, ``pool_maxsize``, ...) go to
    ``HTTPAdapter``. A bad ``header_name`` or ``hosts`` raises here.
    """

    #: What HTTPAdapter pickles, and the rules. A plain list, as HTTPAdapter
    #: declares it.
    __attrs__ = [*HTTPAdapter.__attrs__, "_outbound"]  # noqa: RUF012

    def __init__(
        self,
        *,
        header_name: str = "X-Request-ID",
        hosts: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self._outbound = Outbound(header_name, hosts, _host_of)
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"RequestIdAdapter({self._outbound!r})"

    def add_headers(self, request: PreparedRequest, **kwargs: Any) -> None:
        """Set, keep or take off the id header of this hop."""
        super().add_headers(request, **kwargs)
        headers = request.headers
        name = self._outbound.header_name
        sent = headers.get(name)
        if isinstance(sent, bytes):
            return  # the caller's own, given as bytes
        added = sent if type(sent) is AddedId else None
        value = self._outbound.header_value(request.url, sent, added)
        if value == sent:
            return
        if value is None:
            del headers[name]
        else:
            headers[name] = AddedId(value)


def _host_of(url: str | None) -> str:
    return urlsplit(url or "").hostname or ""


RequestIdAdapter.__module__ = "adapters.requests"
