"""The one ContextVar, its public getter, and the bind/unbind pair adapters use.

The ContextVar does not hold the id itself but a small per-request
``Binding``. ``unbind`` both resets the variable in the adapter's own context
and marks the binding ended. Copies of the context taken while the request ran
(tasks it spawned, callbacks asyncio scheduled, a server that starts the next
request in such a copy, as in uvicorn issue 2167) still point at the binding,
but read ``None`` through it once the response has ended: an id never outlives
its request.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = [
    "MARKER_KEY",
    "Binding",
    "bind",
    "bind_request_id",
    "current_binding",
    "get_binding",
    "get_request_id",
    "note_request_id",
    "reset_binding",
    "set_binding",
    "unbind",
]


class Binding:
    """One request's id, for as long as the request is in flight.

    Adapters may subclass it (with ``__slots__``) to keep their own
    per-request state on the same object.
    """

    __slots__ = ("_token", "request_id")

    request_id: str | None
    _token: Token[Binding | None]

    def __repr__(self) -> str:
        state = "ended" if self.request_id is None else repr(self.request_id)
        return f"<correlation Binding {state}>"


#: The key under which an adapter leaves the request's binding in the scope or
#: environ it passes on, so that a second adapter further in can tell a real
#: outer adapter from a binding left over in a context copied from an earlier
#: request (uvicorn issue 2167). Shared by both adapters: a2wsgi hands the ASGI
#: scope to WSGI apps as ``environ["asgi.scope"]``.
MARKER_KEY = "correlation.binding"

# Package-prefixed name, so the var is recognisable in copy_context() dumps.
_BINDING: ContextVar[Binding | None] = ContextVar("correlation.binding", default=None)


def get_request_id() -> str | None:
    """Return the id of the request being served, or ``None`` outside one.

    Works from any code the request runs: handlers, middleware inside the
    adapter, threads the framework runs sync code in, streamed bodies, and
    tasks the request spawned while it is still in flight. Once the response
    has ended it returns ``None`` everywhere, never a stale id.

    .. versionadded:: 0.1
    """
    binding = _BINDING.get()
    return None if binding is None else binding.request_id


def current_binding() -> Binding | None:
    """Return the binding of the request in flight in this context, if any.

    Adapters use it to find an outer adapter. An ended binding left behind in a
    copied context is not returned.
    """
    binding = _BINDING.get()
    if binding is None or binding.request_id is None:
        return None
    return binding


def bind(binding: Binding, request_id: str) -> None:
    """Make *request_id* the current id in this context until ``unbind``.

    *binding* is a new ``Binding``, or an instance of an adapter's subclass
    that also carries its per-request state (one object per request instead
    of two). The caller must call ``unbind`` in the same context, in a
    ``finally``. (The ASGI adapter does both steps inline, with
    ``set_binding`` and ``reset_binding``: on every request, the two Python
    frames cost as much as the work they do.)
    """
    binding.request_id = request_id
    binding._token = _BINDING.set(binding)


def bind_request_id(request_id: str) -> Binding:
    """Bind *request_id* with a new plain ``Binding`` and return it."""
    binding = Binding()
    bind(binding, request_id)
    return binding


def unbind(binding: Binding) -> None:
    """End the request: restore this context and blank every copy of it."""
    binding.request_id = None
    _BINDING.reset(binding._token)


# Adapters hide the id while server code runs on the request's behalf (ASGI
# ``receive`` and the final body ``send``): asyncio captures the current
# context for callbacks the server schedules there, and uvicorn (issue 2167)
# starts the next request on a keep-alive connection in such a captured copy.
# Holding no binding at that moment keeps the next request clean even while
# this one still runs (a Starlette background task after the response, say).
# ``token = set_binding(None)``, then ``reset_binding(token)`` in the same
# context. They are the ContextVar's own methods, not wrappers: they run on
# every response, and a Python frame would double their cost.
set_binding = _BINDING.set
reset_binding = _BINDING.reset
#: The ContextVar's own ``get``: the current ``Binding``, ended or not, or
#: ``None`` (``current_binding`` leaves ended ones out, at one frame's cost).
get_binding = _BINDING.get


def note_request_id(exc: BaseException, request_id: str | None) -> None:
    """Name the request on an exception leaving the adapter.

    The server's traceback log then says which request failed. Python 3.11+
    only (``add_note``); the note is added once however many adapters it
    passes, and not at all once the request has ended (``None``).
    """
    add_note = getattr(exc, "add_note", None)
    if add_note is None or request_id is None:
        return
    note = f"request_id={request_id}"
    if note not in getattr(exc, "__notes__", ()):
        add_note(note)
