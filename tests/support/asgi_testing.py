"""Hand-built ASGI for the tests: scopes, a server's send and receive, drivers.

Not a test module. pytest puts this folder on ``sys.path`` (``pythonpath`` in
pyproject.toml), so tests import it as ``asgi_testing``. Everything awaited
here is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

import anyio
import httpx
from asgiref.testing import ApplicationCommunicator
from hooks_testing import counting_generator

from adapters._types import ASGIApp, Message, Receive, Scope, Send
from correlation import _context, get_request_id

__all__ = [
    "HEX32",
    "TIMEOUT",
    "Communicator",
    "Headers",
    "Recorder",
    "asgi_client",
    "assert_unbound",
    "communicator",
    "counting_generator",
    "http_scope",
    "lifespan_running",
    "receive_empty_body",
    "response_start",
    "run_websocket",
    "serve",
    "single_message",
    "values_of",
    "websocket_scope",
    "with_lifespan_state",
]

#: Upper bound for anything that could hang; no test should come close.
TIMEOUT = 10.0

#: What the default generator makes: 32 lowercase hex digits.
HEX32 = re.compile(r"[0-9a-f]{32}")

Headers = list[tuple[bytes, bytes]]


def _scope(own: dict[str, Any], headers: Headers | None, extra: Any) -> Scope:
    """Return a connection scope: *own* keys, then *extra*, over common ones."""
    return {
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "query_string": b"",
        "root_path": "",
        "headers": [] if headers is None else headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        **own,
        **extra,
    }


def http_scope(headers: Headers | None = None, **extra: Any) -> Scope:
    """Return an HTTP scope shaped like the ones uvicorn builds."""
    own: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
    }
    return _scope(own, headers, extra)


def websocket_scope(headers: Headers | None = None, **extra: Any) -> Scope:
    """Return a WebSocket scope that supports the denial response extension."""
    own: dict[str, Any] = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    return _scope(own, headers, extra)


async def receive_empty_body() -> Message:
    """The server's ``receive``: a request with an empty body."""
    return {"type": "http.request", "body": b"", "more_body": False}


class Recorder:
    """The server's ``send``: keeps every message and the id visible at send."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.ids: list[str | None] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.ids.append(get_request_id())

    def ids_until_end(self) -> list[str | None]:
        """The ids seen at every send but the one that ends the response.

        The owning adapter hides the id from the server while it sends the
        final body (uvicorn issue 2167): ``ids_at_end`` holds those, ``None``.
        """
        return [i for i, m in zip(self.ids, self.messages, strict=True) if not _ends(m)]

    def ids_at_end(self) -> list[str | None]:
        """The ids seen while the response-ending body messages were sent."""
        return [i for i, m in zip(self.ids, self.messages, strict=True) if _ends(m)]


def _ends(message: Message) -> bool:
    if message["type"] == "http.response.pathsend":
        return True  # the path send extension: always the last message
    return message["type"] == "http.response.body" and not message.get(
        "more_body", False
    )


def serve(app: ASGIApp, scope: Scope) -> Recorder:
    """Run one HTTP request through *app* on a fresh loop; return the sender."""
    send = Recorder()
    asyncio.run(asyncio.wait_for(app(scope, receive_empty_body, send), TIMEOUT))
    return send


def values_of(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Return the values of every *name* header, matched case-insensitively."""
    return [value for key, value in headers if key.lower() == name.lower()]


def single_message(messages: Iterable[Message], message_type: str) -> Message:
    """Return the single message of *message_type* among *messages*."""
    found = [m for m in messages if m["type"] == message_type]
    assert len(found) == 1, found
    return found[0]


def response_start(sent: Recorder) -> Message:
    """Return the single ``http.response.start`` message *sent* holds."""
    return single_message(sent.messages, "http.response.start")


def assert_unbound() -> None:
    """Check that no request id, not even an ended binding, is in this context."""
    assert get_request_id() is None
    assert _context._BINDING.get() is None


class Communicator(Protocol):
    """The part of asgiref's ``ApplicationCommunicator`` the tests use."""

    async def send_input(self, message: Message) -> None: ...

    async def receive_output(self, timeout: float = ...) -> Message: ...

    async def wait(self, timeout: float = ...) -> None: ...


def communicator(app: ASGIApp, scope: Scope) -> Communicator:
    """Return an ``ApplicationCommunicator``, typed (asgiref leaves it bare)."""
    return cast(
        Communicator,
        ApplicationCommunicator(app, scope),  # type: ignore[no-untyped-call]
    )


def asgi_client(
    app: ASGIApp, *, raise_app_exceptions: bool = True
) -> httpx.AsyncClient:
    """Return an httpx client that serves *app* in process."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def run_websocket(
    app: ASGIApp,
    path: str,
    headers: Headers,
    texts: Sequence[str] = (),
) -> list[Message]:
    """Drive one WebSocket connection at the ASGI level; return what the app sent.

    The client sends ``websocket.connect`` and then *texts*, and afterwards
    waits (until ``TIMEOUT``) for the app to end the connection. The scope
    offers the denial response extension, as uvicorn and hypercorn do. Checks
    that nothing stays bound and that the caller's scope is not mutated.
    """
    scope = websocket_scope(
        [(b"host", b"testserver"), *headers],
        path=path,
        raw_path=path.encode("ascii"),
    )
    original_headers = list(scope["headers"])
    inbox: list[Message] = [{"type": "websocket.connect"}]
    inbox += [{"type": "websocket.receive", "text": text} for text in texts]
    sent: list[Message] = []

    async def receive() -> Message:
        if inbox:
            return inbox.pop(0)
        # A client with nothing more to say: only the timeout ends this.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> None:
        try:
            with anyio.fail_after(TIMEOUT):
                await app(scope, receive, send)
        finally:
            assert_unbound()

    asyncio.run(run())
    # The caller's scope is not mutated: the app got a copy.
    assert scope["headers"] == original_headers
    assert "state" not in scope
    return sent


@asynccontextmanager
async def lifespan_running(app: ASGIApp, state: dict[str, Any]) -> AsyncIterator[None]:
    """Run *app*'s lifespan protocol around the block, as a server does.

    Afterwards checks that the lifespan scope went through as the very same
    dict: the framework's own ``scope["app"]`` landed in it, the adapter's
    binding key did not.
    """
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": state,
    }

    async def run() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(run())
    try:
        with anyio.fail_after(TIMEOUT):
            await inbox.put({"type": "lifespan.startup"})
            assert await outbox.get() == {"type": "lifespan.startup.complete"}
        yield
        with anyio.fail_after(TIMEOUT):
            await inbox.put({"type": "lifespan.shutdown"})
            assert await outbox.get() == {"type": "lifespan.shutdown.complete"}
            await task
    finally:
        task.cancel()
    assert "app" in scope
    assert "correlation.binding" not in scope
    assert scope["state"] is state


def with_lifespan_state(
    app: ASGIApp, state: dict[str, Any], request_states: list[dict[str, Any]]
) -> ASGIApp:
    """Act as a server does: give each request a shallow copy of the state."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        request_state = dict(state)
        request_states.append(request_state)
        await app({**scope, "state": request_state}, receive, send)

    return server
