"""The floor: the reference middleware plus the contract's duties, one by one.

The reference middleware (``_reference.py``) is the least a request-id
middleware can do. The contract asks for more, and each duty has a price in
any implementation. These middlewares are the reference with duties added
cumulatively, each duty written the cheapest way we know, inline, with no
abstraction and no hardening beyond what the benchmark's requests need. The
last inline rung (``floor+hide`` for ASGI, ``floor+context`` for WSGI) does
everything the adapter does on the benchmark's requests; its overhead is the
floor the adapter's own is compared with (``instructions.py`` counts every
rung).

The ``seams`` rung after it does the same duties the way the adapters do:
the id chosen by ``correlation._ids.resolve(config, incoming)`` (the default
rule's fast path inside), its lifetime owned by ``correlation._context.begin``
and ``end``, the id hidden (ASGI) with ``hide()`` and ``restore()``, and
``receive``/``send`` (or ``start_response``) methods of a per-request wrapper
object instead of closures. It is inline in ``__call__``
like the adapter's own code, so its difference from the rung above is the
price of calling the core's seams rather than inlining them: what the
design, one owner of the id's choice and lifetime for every adapter and unit
of work, costs over the cheapest inline floor. The adapter's own overhead
above the ``seams`` rung is then what its hardening costs (stacking,
repeated headers, one-shot iterables, WebSocket, generator bodies, errors).

Which duties are on is read from attributes per request, and the structure
that allows each duty costs a little even when it is off: the ``floor`` rung,
with no duty on, measures that against the reference itself.
"""

from __future__ import annotations

import contextvars
import typing
from uuid import uuid4

from correlation import _context, _ids
from correlation._config import Config

if typing.TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from adapters._types import Message, Receive, Scope, Send, WrappedApp

_NAME = b"x-request-id"
_WSGI_KEY = "HTTP_X_REQUEST_ID"
_WSGI_NAME = "X-Request-ID"
_MARKER = "bench.floor"


class _Binding:
    """The per-request object the ContextVar holds once ``binding`` is on."""

    __slots__ = ("request_id",)

    def __init__(self, request_id: str | None) -> None:
        self.request_id = request_id


_VAR: contextvars.ContextVar[object] = contextvars.ContextVar(
    "bench.floor", default=None
)

#: The ASGI duties, in the order the rungs add them.
ASGI_DUTIES = {
    "ids": "ids from a batch of os.urandom, not uuid4()",
    "validate": "the default rule checked on the raw value",
    "scan": "every header read, names compared case-insensitively, repeats seen",
    "response": "the app's own header kept, its start message copied, not mutated",
    "scope": "a scope copy with a stacking mark, state['request_id'],"
    " the request header rewritten when the id changed",
    "binding": "a per-request binding, blanked when the request ends",
    "hide": "the id hidden during receive() and the final body send (uvicorn 2167)",
    "seams": "no new duty: the same ones through the core's seams instead of"
    " inline, resolve(), begin(), end(), hide() and restore() called,"
    " receive and send methods of a per-request object, not closures",
}

#: The WSGI duties, in the order the rungs add them.
WSGI_DUTIES = {
    "ids": "ids from a batch of os.urandom, not uuid4()",
    "validate": "the default rule checked on the value",
    "response": "the app's own header kept, a new header list, not mutated",
    "environ": "environ['correlation.request_id'], a stacking mark,"
    " the request header rewritten when the id changed",
    "context": "a per-request binding set in a copy of the thread's context, the"
    " app run in it (the thread's own context never changes), blanked at the end",
    "seams": "no new duty: the same ones through the core's seams instead of"
    " inline, resolve(), begin() and end() called, start_response a method"
    " of a per-request object, not a closure",
}

#: The config the ``seams`` rungs resolve with: the defaults, as the benchmark's.
_CONFIG = Config()


def ladder(duties: dict[str, str]) -> list[tuple[str, str, frozenset[str]]]:
    """The rungs: ``(candidate name, what it adds, duties on)``, one more each.

    The first, ``floor``, has none: it does what the reference does, with the
    floor's own structure, so that each later rung's difference from the one
    above is the cost of its duty alone.
    """
    rungs = [("floor", "(no duty: the floor's structure alone)", frozenset[str]())]
    names: list[str] = []
    for duty, adds in duties.items():
        names.append(duty)
        rungs.append((f"floor+{duty}", adds, frozenset(names)))
    return rungs


def _switch(middleware: object, duties: frozenset[str], known: dict[str, str]) -> None:
    """Set one boolean attribute per known duty: whether it is on."""
    unknown = sorted(duties - known.keys())
    if unknown:
        raise ValueError(f"unknown duties {unknown}; known: {sorted(known)}")
    for duty in known:
        setattr(middleware, duty, duty in duties)


class FloorASGI:
    """The reference ASGI middleware with *duties* added."""

    # One per ASGI_DUTIES key: whether the duty is on.
    ids: bool
    validate: bool
    scan: bool
    response: bool
    scope: bool
    binding: bool
    hide: bool
    seams: bool

    def __init__(self, app: WrappedApp, duties: frozenset[str]) -> None:
        self.app = app
        _switch(self, duties, ASGI_DUTIES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the incoming (or a new) id around the app and echo it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        value: bytes | None = None
        if self.scan:
            repeated = False
            for key, raw in headers:
                if len(key) == 12 and (key == _NAME or key.lower() == _NAME):
                    if value is None:
                        value = raw
                    else:
                        repeated = True
            if repeated:
                value = None
        else:
            for key, raw in headers:
                if key == _NAME:
                    value = raw
                    break
        if self.seams:
            # Inline, as the adapter is: a helper coroutine would add its own
            # frame to what the rung measures.
            incoming = None if value is None else value.decode("latin-1")
            request_id = _ids.resolve(_CONFIG, incoming)
            if request_id is incoming and value is not None:
                app_headers = headers
            else:
                value = request_id.encode("ascii")
                app_headers = [*headers, (_NAME, value)]
            binding = _context.begin(request_id, "asgi")
            wrapper = _AsgiWrapper(receive, send, (_NAME, value))
            try:
                scope = dict(scope)
                scope[_MARKER] = binding
                scope["headers"] = app_headers
                state = scope.get("state")
                if state is None:
                    state = scope["state"] = {}
                state["request_id"] = request_id
                await self.app(scope, wrapper.receive, wrapper.send)
            finally:
                _context.end(binding)
            return
        if (
            value is not None
            and self.validate
            and not (len(value) <= 128 and value.isalnum())
            and not _ids.default_accepts_bytes(value)
        ):
            value = None
        if value is None:
            request_id = _ids.generate_id() if self.ids else uuid4().hex
            value = request_id.encode("ascii")
            changed = True
        else:
            request_id = value.decode("latin-1")
            changed = False
        bound: object = request_id
        if self.binding:
            bound = _Binding(request_id)
        if self.scope:
            scope = dict(scope)
            scope[_MARKER] = bound
            if changed:
                scope["headers"] = [*headers, (_NAME, value)]
            state = scope.get("state")
            if state is None:
                state = scope["state"] = {}
            state["request_id"] = request_id
        header = (_NAME, value)
        response = self.response
        hide = self.hide

        async def send_with_id(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if response:
                    old = message.get("headers") or []
                    for key, _ in old:
                        if len(key) == 12 and (key == _NAME or key.lower() == _NAME):
                            break
                    else:
                        message = dict(message)
                        message["headers"] = [*old, header]
                else:
                    message["headers"] = [*message.get("headers", ()), header]
            elif (
                hide
                and kind == "http.response.body"
                and not message.get("more_body", False)
            ):
                token = _VAR.set(None)
                try:
                    await send(message)
                finally:
                    _VAR.reset(token)
                return
            await send(message)

        if hide:

            async def receive_hidden() -> Message:
                token = _VAR.set(None)
                try:
                    return await receive()
                finally:
                    _VAR.reset(token)

            receive = receive_hidden
        token = _VAR.set(bound)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.binding:
                bound.request_id = None  # type: ignore[attr-defined]
            _VAR.reset(token)


class _AsgiWrapper:
    """The ``seams`` rung's view of the server's receive and send."""

    __slots__ = ("_header", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send, header: tuple[bytes, bytes]):
        self._receive = receive
        self._send = send
        self._header = header

    async def receive(self) -> Message:
        token = _context.hide()
        try:
            return await self._receive()
        finally:
            _context.restore(token)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            old = message.get("headers") or []
            for key, _ in old:
                if len(key) == 12 and (key == _NAME or key.lower() == _NAME):
                    break
            else:
                message = dict(message)
                message["headers"] = [*old, self._header]
        elif kind == "http.response.body" and not message.get("more_body", False):
            token = _context.hide()
            try:
                await self._send(message)
            finally:
                _context.restore(token)
            return
        await self._send(message)


class FloorWSGI:
    """The reference WSGI middleware with *duties* added."""

    # One per WSGI_DUTIES key: whether the duty is on.
    ids: bool
    validate: bool
    response: bool
    environ: bool
    context: bool
    seams: bool

    def __init__(self, app: WSGIApplication, duties: frozenset[str]) -> None:
        self.app = app
        _switch(self, duties, WSGI_DUTIES)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Bind the incoming (or a new) id around the app call and echo it."""
        if self.seams:
            # Inline, as the adapter's choice and binding are.
            incoming = environ.get(_WSGI_KEY)
            chosen = _ids.resolve(_CONFIG, incoming)
            context = contextvars.copy_context()
            binding = context.run(_context.begin, chosen, "wsgi")
            environ["correlation.request_id"] = chosen
            environ[_MARKER] = binding
            if chosen is not incoming:
                environ[_WSGI_KEY] = chosen
            wrapper = _WsgiWrapper(start_response, (_WSGI_NAME, chosen))
            try:
                result = context.run(self.app, environ, wrapper.start_response)
            finally:
                _context.end(binding)
            if type(result) not in (list, tuple):
                raise TypeError("the floor serves list bodies only")
            return result
        request_id = environ.get(_WSGI_KEY)
        if (
            request_id is not None
            and self.validate
            and not (
                request_id.isascii()
                and _ids.default_accepts_bytes(request_id.encode("ascii"))
            )
        ):
            request_id = None
        changed = request_id is None
        if request_id is None:
            request_id = _ids.generate_id() if self.ids else uuid4().hex
        header = (_WSGI_NAME, request_id)
        response = self.response

        def start_response_with_id(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
            /,
        ) -> Callable[[bytes], object]:
            if response:
                for key, _ in headers:
                    if key.lower() == "x-request-id":
                        break
                else:
                    headers = [*headers, header]
            else:
                headers.append(header)
            return start_response(status, headers, exc_info)

        bound: object = _Binding(request_id) if self.context else request_id
        if self.environ:
            environ["correlation.request_id"] = request_id
            environ[_MARKER] = bound
            if changed:
                environ[_WSGI_KEY] = request_id
        if not self.context:
            token = _VAR.set(request_id)
            try:
                return self.app(environ, start_response_with_id)
            finally:
                _VAR.reset(token)
        context = contextvars.copy_context()
        context.run(_VAR.set, bound)
        try:
            result = context.run(self.app, environ, start_response_with_id)
        finally:
            bound.request_id = None  # type: ignore[attr-defined]
        if type(result) not in (list, tuple):
            # A generator body would need wrapping to run in the context.
            raise TypeError("the floor serves list bodies only")
        return result


class _WsgiWrapper:
    """The ``seams`` rung's ``start_response``, the id header added once."""

    __slots__ = ("_header", "_start_response")

    def __init__(self, start_response: StartResponse, header: tuple[str, str]):
        self._start_response = start_response
        self._header = header

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        for key, _ in headers:
            if key.lower() == "x-request-id":
                break
        else:
            headers = [*headers, self._header]
        return self._start_response(status, headers, exc_info)
