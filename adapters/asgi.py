"""ASGI 3 middleware that gives every HTTP request and WebSocket an id.

Wrap any ASGI application with it: a Starlette or FastAPI app
(``app.add_middleware(RequestIdMiddleware)``), or Django's
``get_asgi_application()``. Put it outermost, so that every other middleware,
and the error pages the framework renders, run inside it and see the id.
"""

from __future__ import annotations

import typing

from correlation import _config, _context, _ids

if typing.TYPE_CHECKING:
    from adapters._types import Message, Receive, Scope, Send, WrappedApp

__all__ = ["RequestIdMiddleware"]

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

    def __init__(
        self, app: WrappedApp, *, config: _config.Config | None = None
    ) -> None:
        self.app = app
        self.config = config = _config.config_or_default(config)
        # ASGI header names arrive lowercased from servers; compare lowercased
        # anyway, since hand-built scopes and some middleware do not.
        self._name = config.header_name.lower().encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope; see the class docstring."""
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return

        name = self._name
        config = self.config
        headers = scope.get("headers") or []
        if type(headers) is not list:
            headers = list(headers)  # a one-shot iterable is read twice below
        name_len = len(name)
        found = None
        for item in headers:
            key = item[0]
            # Inlined (this loop runs for every header of every request):
            # servers send lowercased names, as ASGI asks, so the plain
            # comparison decides almost always without a lowered copy.
            if key == name or (len(key) == name_len and key.lower() == name):
                if found is None:
                    found = [item]
                else:
                    found.append(item)

        binding = None
        # The scope mark is absent unless adapters are stacked: look it up
        # first, and read the context only when it is there.
        marker = scope.get(_context.MARKER_KEY)
        outer = None if marker is None else _context.current_binding()
        if marker is outer and outer is not None and outer.request_id is not None:
            # Another adapter further out already chose the id for this very
            # request; agree with it.
            request_id = outer.request_id
        else:
            incoming = None
            if found is not None:
                incoming = _ids.join_header_values(
                    [item[1].decode("latin-1") for item in found]
                )
            request_id = _config.resolve_request_id(config, incoming)
            binding = outer = _context.bind_request_id(request_id)

        try:
            id_bytes = request_id.encode("ascii")
            scope = dict(scope)
            if config.update_request_header:
                if found is None:
                    headers = [*headers, (name, id_bytes)]
                elif len(found) == 1:
                    # The usual case: put the final id where the client's was.
                    headers = headers.copy()
                    headers[headers.index(found[0])] = (name, id_bytes)
                else:
                    headers = [item for item in headers if item not in found]
                    headers.append((name, id_bytes))
                scope["headers"] = headers
            state = scope.get("state")
            if state is None:
                state = scope["state"] = {}
            state["request_id"] = request_id
            scope[_context.MARKER_KEY] = outer

            if binding is None:
                # The outer adapter owns the request: it wraps the server's
                # callables; this one only adds its header.
                if config.response_header:
                    send = _send_with_header(send, name, id_bytes)
            else:
                receive = _receive_without_id(receive)
                send = _send_with_id(send, name, id_bytes, config.response_header)
            await self.app(scope, receive, send)
        except Exception as exc:
            if binding is not None:
                _context.note_request_id(exc, request_id)
            raise
        finally:
            if binding is not None:
                _context.unbind(binding)


# uvicorn resumes reading a paused connection from inside ``receive`` and
# when the final response body is sent, and asyncio copies the current
# context there for the reader callback; the next request on that keep-alive
# connection then starts in the copy (uvicorn issue 2167). The owning adapter
# hides the id during those two calls, so the copy holds none and code outside
# the adapter never sees this request's id in the next one, even while this
# one still works after its response (a Starlette background task). Other
# sends keep the id: uvicorn writes its access log line in the one that
# starts the response.


def _receive_without_id(receive: Receive) -> Receive:
    """Wrap the server's ``receive`` so that server code runs with no id."""

    async def receive_without_id() -> Message:
        token = _context.clear_for_server()
        try:
            return await receive()
        finally:
            _context.restore_after_server(token)

    return receive_without_id


def _send_with_id(send: Send, name: bytes, value: bytes, add_header: bool) -> Send:
    """The owning adapter's ``send``: adds the header, hides the id at the end."""

    async def send_with_id(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not message.get("more_body", False):
                token = _context.clear_for_server()
                try:
                    await send(message)
                finally:
                    _context.restore_after_server(token)
                return
        elif add_header and kind in _HEADER_MESSAGES:
            message = _with_header(message, name, value)
        await send(message)

    return send_with_id


def _send_with_header(send: Send, name: bytes, value: bytes) -> Send:
    """A nested adapter's ``send``: only adds its header."""

    async def send_with_header(message: Message) -> None:
        if message["type"] in _HEADER_MESSAGES:
            message = _with_header(message, name, value)
        await send(message)

    return send_with_header


def _with_header(message: Message, name: bytes, value: bytes) -> Message:
    """Return *message* with the id header added, unless the app set one."""
    headers = message.get("headers")
    if headers:
        name_len = len(name)
        for item in headers:
            key = item[0]
            if key == name or (len(key) == name_len and key.lower() == name):
                # The application chose its own value: keep it, add no second.
                return message
        headers = [*headers, (name, value)]
    else:
        headers = [(name, value)]
    # A new message, so an application that reuses its dict is unaffected.
    return {**message, "headers": headers}
