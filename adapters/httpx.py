"""httpx: the current request id on every request a client sends.

::

    import httpx
    from adapters.httpx import propagate

    client = propagate(httpx.Client(), hosts=[".internal"])

or, where the client is built::

    hook = RequestIdHook(hosts=[".internal"])
    client = httpx.AsyncClient(event_hooks={"request": [hook]})

It is an httpx *request event hook*, which httpx calls on every hop (the first
request, each redirect and each authentication re-send) above the transport,
so it works whatever transport, proxy or ``mounts`` the client uses. The rules
(the id read per hop, the caller's own header kept, the ``hosts`` list, the id
taken off on a redirect to a host not listed) are ``correlation._outbound``'s.

The same hook serves the clients of httpx's fork httpx2, whose event hooks,
requests and redirects work alike. httpx is not imported by this module;
install it with the ``httpx`` extra.
"""

from __future__ import annotations

from correlation._outbound import Outbound as _Outbound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any, Protocol, TypeVar

    import httpx

    class _HasEventHooks(Protocol):
        """An httpx (or httpx2) ``Client`` or ``AsyncClient``."""

        @property
        def event_hooks(self) -> dict[str, list[Callable[..., Any]]]: ...
        @event_hooks.setter
        def event_hooks(self, value: dict[str, list[Callable[..., Any]]]) -> None: ...

    _Client = TypeVar("_Client", bound=_HasEventHooks)

del TYPE_CHECKING

__all__ = ["RequestIdHook", "propagate"]

#: The request extension in which the hook notes the id it put on a request.
#: httpx copies a request's extensions onto its redirect, with the headers, so
#: on the next hop the hook can tell its own header from the caller's.
_ADDED = "correlation.request_id"


class _Done:
    """The hook's result: ignored by ``Client``, awaited by ``AsyncClient``.

    ``Client`` ignores a request hook's result and ``AsyncClient`` awaits it.
    A coroutine ignored by ``Client`` would warn that it was never awaited;
    this object does not, and awaiting it finishes at once.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator, so awaiting it finishes at once


_DONE = _Done()


class RequestIdHook:
    """An httpx request event hook sending the current id; for sync and async clients.

    One object serves both ``httpx.Client`` and ``httpx.AsyncClient``. It adds
    ``header_name`` with ``correlation.get_request_id()`` to each hop sent
    inside a unit of work (a request, a ``bound_request_id`` block, a task),
    to the ``hosts`` listed (``None``: every host; ``"api.internal"`` exactly,
    ``".internal"`` the domain and its subdomains, ``"*"`` any). A header the
    caller set is never touched. A bad ``header_name`` or ``hosts`` raises
    here.
    """

    __slots__ = ("_outbound",)

    def __init__(
        self, *, header_name: str = "X-Request-ID", hosts: list[str] | None = None
    ) -> None:
        self._outbound = _Outbound(header_name, hosts, _host_of)

    def __repr__(self) -> str:
        return f"RequestIdHook({self._outbound!r})"

    def __call__(self, request: httpx.Request) -> _Done:
        """Set, keep or take off the id header of this hop."""
        extensions = request.extensions
        added = extensions.get(_ADDED)
        if self._outbound.idle(added):
            # Outside a unit of work: the headers are not even read.
            return _DONE
        headers = request.headers
        name = self._outbound.header_name
        sent = headers.get(name)
        value = self._outbound.header_value(request.url, sent, added)
        if value == sent:
            return _DONE
        if value is None:
            del headers[name]
            del extensions[_ADDED]
        else:
            headers[name] = value
            extensions[_ADDED] = value
        return _DONE


def _host_of(url: httpx.URL) -> str:
    # The host as sent: an internationalised name in its xn-- form, an IPv6
    # address without brackets.
    return url.raw_host.decode("ascii")


def propagate(
    client: _Client,
    *,
    header_name: str = "X-Request-ID",
    hosts: list[str] | None = None,
) -> _Client:
    """Install a ``RequestIdHook`` on *client* and return the client.

    *client* is an ``httpx.Client`` or ``httpx.AsyncClient`` (or one of the
    httpx2 fork's, which has the same event hooks).

    Idempotent: a hook this function or the caller installed before is
    replaced, so calling it again changes the settings instead of sending the
    header twice. The hook runs after the client's other request hooks, so a
    header one of them sets is the caller's own.
    """
    hook = RequestIdHook(header_name=header_name, hosts=hosts)
    hooks = getattr(client, "event_hooks", None)
    if not isinstance(hooks, dict) or "request" not in hooks:
        raise TypeError(
            f"propagate() takes an httpx.Client or httpx.AsyncClient, got"
            f" {type(client).__name__}"
        )
    others: list[Any] = [
        h for h in hooks["request"] if not isinstance(h, RequestIdHook)
    ]
    client.event_hooks = {**hooks, "request": [*others, hook]}
    return client
