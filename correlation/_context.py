"""The id's lifetime: the one ContextVar, its getter, and the seams that bind it.

Everything that decides when an id is visible lives here, and every adapter
and integration goes through these seams instead of touching the variable:

``begin(request_id, protocol=None) -> Binding``
    Bind an id in the current context, for one unit of work. An adapter names
    its protocol (``"asgi"``, ``"wsgi"``): only such a binding, one HTTP
    request or WebSocket, may be adopted by an adapter further in
    (``outer_binding``).
``end(binding)``
    End it: first mark it ended, so every context copied while it was bound
    reads ``None`` from then on, then restore the context it was begun in.
    It never raises: ended from another context (an async generator closed
    by the loop's finalizer, a response body dropped by the garbage
    collector), it only marks; ended twice, the second call does nothing.
``outer_binding(mark, bridged=False) -> Binding | None``
    The live binding of an adapter further out that serves this same request,
    or ``None`` when this request is the caller's own to bind.
``hide() -> Token`` / ``restore(token)``
    Hide the id while server code runs on the request's behalf (the uvicorn
    2167 guard, see ``adapters.asgi``), then show it again.
``note_request_id(exc, request_id)``
    Name the request on an exception that leaves an adapter.

Choosing the id itself (the hard floor, the default rule, the generator) is
``correlation._ids.resolve``.

The variable does not hold the id but a small ``Binding``, and the getter
reads the id through it. A token reset restores only the context it was made
in, while Python copies contexts all the time (``asyncio.create_task``, every
callback asyncio schedules, thread-pool helpers, a server that starts the next
request in a copy, uvicorn issue 2167). Those copies keep a reference to the
binding, not a snapshot of the id, so marking the binding ended blanks them
all at once: an id never outlives its unit of work.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = [
    "MARK_KEY",
    "Binding",
    "begin",
    "end",
    "get_request_id",
    "hide",
    "note_request_id",
    "outer_binding",
    "restore",
]


class Binding:
    """One unit of work's id, from ``begin`` until ``end``.

    Read ``request_id`` for the id; it is ``None`` once the unit has ended.
    Everything else is this module's.
    """

    __slots__ = ("_protocol", "_token", "request_id")

    request_id: str | None
    #: The adapter's protocol for a request's binding, ``None`` for any other
    #: unit of work (``bound_request_id``, a carried call, a task).
    _protocol: str | None
    #: The reset token while bound; dropped at the end, so an ended binding
    #: keeps no reference to the context it was bound in.
    _token: Token[Binding | None] | None

    def __repr__(self) -> str:
        state = "ended" if self.request_id is None else repr(self.request_id)
        kind = "unit of work" if self._protocol is None else self._protocol
        return f"<correlation Binding {kind} {state}>"


#: The key under which an adapter leaves its binding in the scope or environ it
#: passes on, so that an adapter further in can tell a real outer adapter from a
#: binding it merely inherited (see ``outer_binding``). Shared by both
#: adapters: a2wsgi hands the ASGI scope to WSGI apps as ``environ["asgi.scope"]``.
MARK_KEY = "correlation.binding"

# Package-prefixed name, so the var is recognisable in copy_context() dumps.
_BINDING: ContextVar[Binding | None] = ContextVar("correlation.binding", default=None)


def get_request_id() -> str | None:
    """Return the id of the request or unit of work in flight, or ``None``.

    Works from any code the request runs: handlers, middleware inside the
    adapter, threads the framework runs sync code in, streamed bodies, and
    tasks the request spawned while it is still in flight. Once the response
    has ended it returns ``None`` everywhere, never a stale id.
    """
    binding = _BINDING.get()
    return None if binding is None else binding.request_id


def begin(request_id: str, protocol: str | None = None) -> Binding:
    """Bind *request_id* in the current context until ``end``.

    The caller ends it on every path (a ``finally``), preferably in the same
    context: a ``Context.run`` that began it may end it in a later
    ``Context.run`` of the same context.
    """
    binding = Binding()
    binding.request_id = request_id
    binding._protocol = protocol
    binding._token = _BINDING.set(binding)
    return binding


def end(binding: Binding) -> None:
    """End *binding* for every context copy, then restore its own context."""
    token = binding._token
    if token is None:  # ended already
        return
    binding.request_id = None
    binding._token = None  # an ended binding keeps no context alive
    # The variable through the token, not the module global: a response body
    # may be ended by the garbage collector while the interpreter shuts down,
    # when module globals are already gone.
    var = token.var
    if var.get() is not binding:
        # Not current here: ended from outside the context it was begun in,
        # such as the WSGI adapter's own context for a request, which nothing
        # enters again. Every copy reads None through the ended binding.
        return
    try:
        var.reset(token)
    except ValueError:
        # Current here, but in a copy of the context it was begun in: an
        # async generator closed by the loop's finalizer in a new task, say.
        return


def outer_binding(mark: object, bridged: bool = False) -> Binding | None:
    """Return the live binding of an adapter further out that serves this request.

    *mark* is what the scope or environ at hand holds under ``MARK_KEY``.
    An adapter further out that owns this very request left its binding
    there, and that binding is the one current here. Anything else is a
    request of its own: a binding that has ended, one inherited in a context
    copied from an earlier request (a server may start a request in such a
    copy, uvicorn issue 2167), a mark left by another request, and a
    ``bound_request_id`` block or carried call around an in-process request.

    *bridged* is for an environ that a bridge may have built from an ASGI
    scope without carrying the mark over (asgiref's ``WsgiToAsgi`` passes
    nothing but the headers): with no mark at all, the live binding of an ASGI
    adapter is taken as the outer adapter's. Such an environ is served inside
    the ASGI request that called the bridge, in a copy of its context, and
    nowhere else: a WSGI server never starts a request in a context holding an
    ASGI binding, and a leftover ASGI binding in a copied context meets the
    outermost ASGI adapter first, which binds its own. An environ made inside a
    WSGI request (a test client in a view) is a request of its own, since WSGI
    middleware pass the environ, mark and all. The trade-off: a WSGI app called
    in-process from inside an ASGI request (a test client in an endpoint)
    cannot be told from one behind ``WsgiToAsgi``, and takes the ASGI request's
    id; inside a ``bound_request_id`` block it gets its own. An ASGI scope
    always carries the mark from one adapter to the next, so ASGI never needs
    this.
    """
    binding = _BINDING.get()
    if binding is None or binding._token is None or binding._protocol is None:
        return None
    if mark is binding or (mark is None and bridged and binding._protocol == "asgi"):
        return binding
    return None


def hide() -> Token[Binding | None]:
    """Hide the id in this context until ``restore``: ``get_request_id()`` is None.

    Adapters hide it while the server's own code runs on the request's behalf
    and may copy the context for later (see ``adapters.asgi``).
    """
    return _BINDING.set(None)


#: ``restore(token)``: show again what ``hide`` hid; call it in the same
#: context. It is the ContextVar's own ``reset`` under the seam's name.
restore = _BINDING.reset


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
