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
del TYPE_CHECKING

__all__ = ["RequestIdMiddleware"]

#: A request header: (name, value), as ASGI servers send them.
_Header = tuple[bytes, bytes]

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

    Behind another adapter that serves the same request (the same adapter
    twice, say), it takes that adapter's id instead of choosing one. ``lifespan``
    and unknown scope types pass through untouched.

    Args:
        app: The ASGI application to wrap.
        config: The header configuration; ``None`` means ``Config()``.
    """

    def __init__(self, app: WrappedApp, *, config: Config | None = None) -> None:
        # Imported here, not with the module: see correlation._config; asgiref's
        # sync module loads asyncio, which an ASGI server has loaded already.
        from asgiref.sync import markcoroutinefunction

        from correlation._config import config_or_default

        self.app = app
        self.config = config = config_or_default(config)
        # ASGI servers send header names lowercased; compare lowercased anyway,
        # since hand-built scopes and some middleware do not.
        self._header_name = config.header_name.lower().encode("ascii")
        # Whether ``resolve`` may need other headers: only fallback sources
        # the config trusts.
        self._reads_fallbacks = bool(config.fallback_sources) and config.trust_incoming
        # The wrapped send is a plain function returning an awaitable (see
        # _Exchange.send); callers that check before they call, as asgiref's
        # AsyncToSync does, must still see an async callable.
        markcoroutinefunction(_Exchange.send)
        markcoroutinefunction(_HeaderAdder.send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope; see the class docstring."""
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return

        headers = scope.get("headers") or []
        if type(headers) is not list:
            headers = list(headers)  # a server's one-shot iterable, read twice
        # 1. Find the id header. Inline: it runs for every header of every
        # request (a method would add 760 instructions, 2.4 % of the
        # adapter's overhead). The length decides most headers, and a lowered
        # copy is made only for hand-built scopes: servers send lowercase.
        name = self._header_name
        name_len = len(name)
        found = None
        duplicated = False
        for item in headers:
            key = item[0]
            if len(key) == name_len and (key == name or key.lower() == name):
                if found is None:
                    found = item
                else:
                    duplicated = True

        # 2. Agree with an adapter further out that serves this very request.
        # It left its mark in the scope; an unmarked scope has none.
        mark = scope.get(_context.MARK_KEY)
        if mark is not None:
            outer = _context.outer_binding(mark)
            if outer is not None and outer.request_id is not None:
                await self._serve_inside(
                    outer, scope, headers, found, duplicated, receive, send
                )
                return

        # 3. Choose the id and bind it for the request.
        if found is None:
            incoming = None
        elif duplicated:
            incoming = _joined(headers, name)
        else:
            incoming = found[1].decode("latin-1")
        # The fallback headers are read only if the config names some, and
        # only when the id header gives no id.
        read = _header_reader(headers) if self._reads_fallbacks else None
        request_id = _ids.resolve(self.config, incoming, read)
        binding = _context.begin(request_id, "asgi")
        # The client's header holds the final id when ``resolve`` kept the
        # value as sent (it returns the very object): reuse its bytes.
        kept = found if request_id is incoming and not duplicated else None
        if not self.config.response_header:
            header = None
        else:
            header = (name, request_id.encode("ascii") if kept is None else kept[1])
        exchange = _Exchange(receive, send, header)
        try:
            # 4. Call the app with a scope of its own, holding the final id.
            scope = self._scope_for_app(
                scope, headers, found, duplicated, kept, binding, request_id
            )
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            _context.note_request_id(exc, request_id)
            raise
        finally:
            # 5. End the request: for the server, for this context, for copies.
            exchange.close(scope_type)
            _context.end(binding)

    async def _serve_inside(
        self,
        outer: _context.Binding,
        scope: Scope,
        headers: list[_Header],
        found: _Header | None,
        duplicated: bool,
        receive: Receive,
        send: Send,
    ) -> None:
        """Serve a request whose id an adapter further out chose and owns.

        This adapter writes what its own config asks for (the request header,
        the response header, the state), with the outer adapter's id.
        """
        request_id = outer.request_id
        if request_id is None:  # pragma: no cover - outer_binding gives live ones
            raise RuntimeError("the request of the outer adapter has ended")
        scope = self._scope_for_app(
            scope, headers, found, duplicated, None, outer, request_id
        )
        if self.config.response_header:
            header = (self._header_name, request_id.encode("ascii"))
            send = _HeaderAdder(send, header).send
        await self.app(scope, receive, send)

    def _scope_for_app(
        self,
        scope: Scope,
        headers: list[_Header],
        found: _Header | None,
        duplicated: bool,
        kept: _Header | None,
        mark: _context.Binding,
        request_id: str,
    ) -> Scope:
        """A copy of *scope* for the app: the mark, the id header, the state.

        The caller's scope is not changed, as the ASGI spec asks of middleware,
        except for the per-request state dict the server made for it (where
        the contract puts ``scope["state"]["request_id"]``). With
        ``update_request_header`` the app sees exactly one id header, holding
        the final id, where the client's first one was, or last.
        """
        scope = dict(scope)
        scope[_context.MARK_KEY] = mark
        name = self._header_name
        if not self.config.update_request_header or (
            kept is not None and kept[0] == name
        ):
            # The headers as the server sent them (already right when the
            # client's one header, spelled as this adapter writes it, holds
            # the final id). A one-shot iterable has been read: pass the list.
            if headers is not scope.get("headers"):
                scope["headers"] = headers
        else:
            final = (name, request_id.encode("ascii"))
            if found is None:
                scope["headers"] = [*headers, final]
            else:
                first = headers.index(found)
                scope["headers"] = [
                    final if index == first else item
                    for index, item in enumerate(headers)
                    if index == first or not duplicated or not _is_named(item[0], name)
                ]
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = request_id
        return scope


def _joined(headers: list[_Header], name: bytes) -> str:
    """The values of every *name* header, joined as one RFC 9110 list."""
    return _ids.join_header_values(
        [value.decode("latin-1") for key, value in headers if _is_named(key, name)]
    )


def _header_reader(headers: list[_Header]) -> Callable[[str], str | None]:
    """For ``resolve``: a header's values by name, joined, or ``None``."""

    def read(name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        values = [
            value.decode("latin-1") for key, value in headers if _is_named(key, wanted)
        ]
        return ",".join(values) if values else None

    return read


def _is_named(key: bytes, name: bytes) -> bool:
    return key == name or (len(key) == len(name) and key.lower() == name)


def _send_with_header(send: Send, header: _Header, message: Message) -> Awaitable[None]:
    """Send *message*, which opens a response, with *header* added once."""
    headers = message.get("headers")
    if headers:
        name = header[0]
        name_len = len(name)
        for key, _ in headers:
            if len(key) == name_len and (key == name or key.lower() == name):
                # The application chose its own value: keep it, add no second.
                return send(message)
        headers = [*headers, header]
    else:
        headers = [header]
    # A new message, so an application that reuses its dict is unaffected.
    message = dict(message)
    message["headers"] = headers
    return send(message)


class _Exchange:
    """One request's view of the server's ``receive`` and ``send``.

    It adds the response header, and hides the id while the server's own code
    runs on the request's behalf. uvicorn resumes reading a paused connection
    from inside ``receive`` and when the final response body is sent, and
    asyncio copies the current context there for the reader callback; the next
    request on that keep-alive connection then starts in the copy (uvicorn
    issue 2167). With the id hidden during those two calls, the copy holds
    none, and code outside the adapter never sees this request's id in the next
    one, even while this one still works after its response (a Starlette
    background task). Other sends keep the id: uvicorn writes its access log
    line in the one that starts the response.
    """

    __slots__ = ("_header", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send, header: _Header | None) -> None:
        self._receive = receive
        self._send = send
        #: The response header to add, or ``None`` when it is not echoed.
        self._header = header

    async def receive(self) -> Message:
        """The server's ``receive``, run with the id hidden."""
        token = _context.hide()
        try:
            return await self._receive()
        finally:
            _context.restore(token)

    def send(self, message: Message) -> Awaitable[None]:
        """The server's ``send``: adds the header, hides the id at the end.

        A plain function that returns the server's own awaitable, so the
        response start and streamed chunks cost no coroutine of ours; only the
        message that ends the response, sent with the id hidden, gets one.
        An ``async def`` here would add 1,500 instructions per request
        (callgrind, 4.6 % of the adapter's overhead), and a coroutine per chunk.
        """
        kind = message["type"]
        if kind == "http.response.body":
            if message.get("more_body", False):
                return self._send(message)
            return self._send_hidden(message)
        header = self._header
        if header is not None and kind in _HEADER_MESSAGES:
            return _send_with_header(self._send, header, message)
        if kind == "http.response.pathsend":
            # The path send extension's message also ends the response.
            return self._send_hidden(message)
        return self._send(message)

    async def _send_hidden(self, message: Message) -> None:
        token = _context.hide()
        try:
            await self._send(message)
        finally:
            _context.restore(token)

    def close(self, scope_type: str) -> None:
        """Let go of the server's callables once the request has ended.

        Contexts copied from the request (a task that outlives it, a server's
        keep-alive timer) may keep this object alive, and the server's
        callables would keep the connection with it. A ``receive`` kept past
        the end gets the disconnect the ASGI spec has a server send once the
        response or connection is over; a ``send`` raises.
        """
        self._receive = (
            _http_disconnect if scope_type == "http" else _websocket_disconnect
        )
        self._send = _send_after_end


class _HeaderAdder:
    """A nested adapter's ``send``: its header added, nothing else changed."""

    __slots__ = ("_header", "_send")

    def __init__(self, send: Send, header: _Header) -> None:
        self._send = send
        self._header = header

    def send(self, message: Message) -> Awaitable[None]:
        """The outer adapter's ``send``, with this adapter's header added."""
        if message["type"] in _HEADER_MESSAGES:
            return _send_with_header(self._send, self._header, message)
        return self._send(message)


# What ``receive`` gives once the request has ended, as the ASGI spec asks of
# a server after the response (HTTP) or the connection (WebSocket) is over.
# 1005: "no status code received", the spec's default close code.
async def _http_disconnect() -> Message:
    return {"type": "http.disconnect"}


async def _websocket_disconnect() -> Message:
    return {"type": "websocket.disconnect", "code": 1005}


async def _send_after_end(message: Message) -> None:
    raise RuntimeError("send was called after the request ended")
