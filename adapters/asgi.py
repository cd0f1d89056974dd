"""ASGI 3 middleware that gives every HTTP request and WebSocket an id.

Wrap any ASGI application with it: a Starlette or FastAPI app
(``app.add_middleware(RequestIdMiddleware)``), or Django's
``get_asgi_application()``. Put it outermost, so that every other middleware,
and the error pages the framework renders, run inside it and see the id.
"""

from __future__ import annotations

from correlation import _context, _ids

# typing is not imported at run time: it would be most of this module's
# import cost (mypy treats any constant named TYPE_CHECKING as True).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from adapters._types import Message, Receive, Scope, Send, WrappedApp
    from correlation._config import Config

__all__ = ["RequestIdMiddleware"]

_MAX_LENGTH = _ids.MAX_DEFAULT_LENGTH

# Messages that open a response and carry its headers. The last one is the
# WebSocket denial response extension.
_HEADER_MESSAGES = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)


class RequestIdMiddleware:
    """Read, check or generate the request id, and bind it for the request.

    For ``http`` and ``websocket`` scopes the middleware:

    - takes the incoming ``config.header_name`` header when it passes the hard
      floor and ``config.validator``, and generates a new id otherwise;
    - makes it visible through ``correlation.get_request_id()`` until the
      application returns, and as ``scope["state"]["request_id"]``
      (Starlette's ``request.state.request_id``);
    - passes the application a copy of the scope whose request headers hold
      exactly one ``header_name`` header with the final id, unless
      ``config.update_request_header`` is ``False``;
    - adds the id to the response headers (``http.response.start``,
      ``websocket.accept`` and the WebSocket denial response), unless the
      application set that header itself or ``config.response_header`` is
      ``False``.

    ``lifespan`` and unknown scope types pass through untouched.

    Args:
        app: The ASGI application to wrap.
        config: The header configuration; ``None`` means ``Config()``.

    .. versionadded:: 0.1
    """

    def __init__(self, app: WrappedApp, *, config: Config | None = None) -> None:
        # Imported here, not with the module: see correlation._config.
        from correlation._config import config_or_default

        self.app = app
        self.config = config = config_or_default(config)
        # ASGI header names arrive lowercased from servers; compare lowercased
        # anyway, since hand-built scopes and some middleware do not.
        self._name = config.header_name.lower().encode("ascii")
        # Decided once here, not per request: whether one valid header can be
        # taken as it is (the default rule, checked on the raw bytes), and
        # whether a missing one is the built-in generator's to fill.
        self._default_rule = (
            config.trust_incoming and config.validator is _ids.default_validator
        )
        self._default_generator = config.generator is _ids.generate_id
        _mark_coroutine_function(_Request.send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope; see the class docstring."""
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return

        name = self._name
        config = self.config
        headers = scope.get("headers") or []
        listed = type(headers) is list
        if not listed:
            headers = list(headers)  # a one-shot iterable is read twice below
        name_len = len(name)
        found = None
        duplicated = False
        for item in headers:
            key = item[0]
            # Inlined (this loop runs for every header of every request). The
            # length decides most headers; servers send lowercased names, as
            # ASGI asks, so a lowered copy is almost never made.
            if len(key) == name_len and (key == name or key.lower() == name):
                if found is None:
                    found = item
                else:
                    duplicated = True

        binding = None
        id_bytes = None
        # A live binding in this context is rare (adapters stacked, or a
        # request started in a copy of one still in flight): read it first,
        # and look for the scope mark only when there is one.
        outer = _context.get_binding()
        outer_id = None if outer is None else outer.request_id
        if outer_id is not None and scope.get(_context.MARKER_KEY) is outer:
            # Another adapter further out already chose the id for this very
            # request; agree with it.
            request_id = outer_id
        else:
            if found is None:
                if self._default_generator:
                    try:
                        request_id = _ids.take_pooled_id()
                    except IndexError:  # the batch is used up: make the next
                        request_id = _ids.generate_id()
                else:
                    request_id = _ids.resolve_request_id(config, None)
            elif (
                not duplicated
                and self._default_rule
                and (
                    # The default rule's own first test, inlined (a hex or
                    # other alphanumeric id), then the whole rule.
                    ((value := found[1]).isalnum() and len(value) <= _MAX_LENGTH)
                    or _ids.default_accepts_bytes(value)
                )
            ):
                # The common case: one occurrence that the default rule (which
                # implies the hard floor) accepts as sent.
                id_bytes = found[1]
                request_id = id_bytes.decode("ascii")
            else:
                incoming = _ids.join_header_values(
                    [item[1].decode("latin-1") for item in _named(headers, name)]
                )
                request_id = _ids.resolve_request_id(config, incoming)
            binding = outer = _Request()
            # What _context.bind does, inlined with the ContextVar's own set:
            # a Python frame would cost as much again (see _context).
            binding.request_id = request_id
            binding._token = _context.set_binding(binding)

        try:
            scope = dict(scope)
            scope[_context.MARKER_KEY] = outer
            if config.update_request_header and not (
                # Already right: one header, spelled as this adapter writes
                # it, holding the final id. The list is passed on unchanged.
                id_bytes is not None and found is not None and found[0] == name
            ):
                id_bytes = request_id.encode("ascii")
                if found is None:
                    headers = [*headers, (name, id_bytes)]
                elif not duplicated:
                    # Put the final id where the client's value was.
                    headers = headers.copy()
                    headers[headers.index(found)] = (name, id_bytes)
                else:
                    headers = [item for item in headers if not _is_named(item, name)]
                    headers.append((name, id_bytes))
                scope["headers"] = headers
            elif not listed:
                # The iterable the server sent has been read: pass on the list.
                scope["headers"] = headers
            if id_bytes is None:
                id_bytes = request_id.encode("ascii")
            state = scope.get("state")
            if state is None:
                state = scope["state"] = {}
            state["request_id"] = request_id

            header = (name, id_bytes) if config.response_header else None
            if binding is not None:
                # The binding also holds the wrappers of the server's
                # callables: one object per request, not three.
                binding.receive_ = receive
                binding.send_ = send
                binding.header = header
                receive = binding.receive
                send = binding.send
            elif header is not None:
                # The outer adapter owns the request and wraps the server's
                # callables; this one only adds its header, with the same
                # send, left unbound. (Its hiding the id during the final
                # body again changes nothing: the owner's send does too.)
                wrapper = _Request()
                wrapper.request_id = None  # never bound: reads as ended
                wrapper.send_ = send
                wrapper.header = header
                send = wrapper.send
            await self.app(scope, receive, send)
        except Exception as exc:
            if binding is not None:
                _context.note_request_id(exc, request_id)
            raise
        finally:
            if binding is not None:
                # _context.unbind, inlined: end the binding for every copy,
                # then restore this context.
                binding.request_id = None
                # Contexts copied from the request (a task that outlives it,
                # a server's keep-alive timer) keep the binding: let go of
                # the server's callables, and of its connection with them.
                binding.receive_ = (
                    _http_disconnect if scope_type == "http" else _websocket_disconnect
                )
                binding.send_ = _send_after_end
                _context.reset_binding(binding._token)


# What ``receive`` gives once the request has ended, as the ASGI spec asks of
# a server after the response (HTTP) or the connection (WebSocket) is over.
# 1005: "no status code received", the spec's default close code.
async def _http_disconnect() -> Message:
    return {"type": "http.disconnect"}


async def _websocket_disconnect() -> Message:
    return {"type": "websocket.disconnect", "code": 1005}


async def _send_after_end(message: Message) -> None:
    raise RuntimeError("send was called after the request ended")


def _is_named(item: tuple[bytes, bytes], name: bytes) -> bool:
    key = item[0]
    return key == name or (len(key) == len(name) and key.lower() == name)


def _named(
    headers: list[tuple[bytes, bytes]], name: bytes
) -> list[tuple[bytes, bytes]]:
    """Return every occurrence of the *name* header, in order."""
    return [item for item in headers if _is_named(item, name)]


# uvicorn resumes reading a paused connection from inside ``receive`` and
# when the final response body is sent, and asyncio copies the current
# context there for the reader callback; the next request on that keep-alive
# connection then starts in the copy (uvicorn issue 2167). The owning adapter
# hides the id during those two calls, so the copy holds none and code outside
# the adapter never sees this request's id in the next one, even while this
# one still works after its response (a Starlette background task). Other
# sends keep the id: uvicorn writes its access log line in the one that
# starts the response.


class _Request(_context.Binding):
    """The owning adapter's binding, and its view of the server's callables.

    ``send`` is a plain function that returns the server's own awaitable, so
    the response start and streamed chunks cost no extra coroutine; only the
    final body message, during which the id is hidden, gets one. A nested
    adapter uses an unbound instance for its ``send`` alone.
    """

    __slots__ = ("header", "receive_", "send_")

    receive_: Receive
    send_: Send
    #: The response header to add, or ``None`` when it is not echoed.
    header: tuple[bytes, bytes] | None

    async def receive(self) -> Message:
        """The server's ``receive``, run with the id hidden."""
        token = _context.set_binding(None)
        try:
            return await self.receive_()
        finally:
            _context.reset_binding(token)

    def send(self, message: Message) -> Awaitable[None]:
        """The server's ``send``: adds the header, hides the id at the end."""
        kind = message["type"]
        if kind == "http.response.body":
            if message.get("more_body", False):
                return self.send_(message)
            return self._send_last(message)
        header = self.header
        if header is not None and kind in _HEADER_MESSAGES:
            headers = message.get("headers")
            if headers:
                name = header[0]
                name_len = len(name)
                for key, _ in headers:
                    if len(key) == name_len and (key == name or key.lower() == name):
                        # The application chose its own value: keep it, add
                        # no second.
                        return self.send_(message)
                headers = [*headers, header]
            else:
                headers = [header]
            # A new message, so an application that reuses its dict is
            # unaffected.
            message = dict(message)
            message["headers"] = headers
        elif kind == "http.response.pathsend":
            # The path send extension's message also ends the response.
            return self._send_last(message)
        return self.send_(message)

    async def _send_last(self, message: Message) -> None:
        token = _context.set_binding(None)
        try:
            await self.send_(message)
        finally:
            _context.reset_binding(token)


def _mark_coroutine_function(function: Callable[..., object]) -> None:
    """Make ``iscoroutinefunction`` true for *function*, which returns one.

    ``_Request.send`` is a plain function returning the server's coroutine
    (or its own). Callers that check before they call, as asgiref's
    ``AsyncToSync`` does (it warns otherwise), must still see an async
    callable. The same marks ``inspect.markcoroutinefunction`` (3.12+) and
    asyncio's legacy check (3.10, 3.11) look for; both modules are loaded by
    then (``dataclasses`` imports ``inspect``; an ASGI server, ``asyncio``).
    """
    import inspect

    # Each branch runs on some of the supported Pythons only; the test of the
    # wrapped send's markings runs on all of them.
    if hasattr(inspect, "markcoroutinefunction"):  # pragma: no cover - 3.12+
        inspect.markcoroutinefunction(function)
    else:  # pragma: no cover - Python 3.10 and 3.11
        from asyncio import coroutines

        function._is_coroutine = coroutines._is_coroutine  # type: ignore[attr-defined]
