"""Lifetime, isolation and scope-type tests of the ASGI adapter.

Hand-built scopes and plain ASGI callables only. These tests pin down when the
id is visible (the whole request or connection, spawned tasks and threads
included) and when it is not (before, after, in leftover context copies, in
``lifespan`` and unknown scopes).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import pytest
from asgi_testing import (
    HEX32,
    TIMEOUT,
    Headers,
    Recorder,
    asgi_client,
    communicator,
    counting_generator,
    http_scope,
    receive_empty_body,
    response_start,
    serve,
    single_message,
    values_of,
    websocket_scope,
)
from asgiref.sync import sync_to_async
from hooks_testing import AfterConstruction, sequence_generator

from adapters._types import ASGIApp, Message, Receive, Scope, Send
from adapters.asgi import RequestIdMiddleware
from correlation import Config, _context, bound_request_id, get_request_id


def scripted_receive(messages: Iterable[Message]) -> Receive:
    """Return a ``receive`` that hands out *messages* in order, then fails."""
    pending = list(messages)

    async def receive() -> Message:
        assert pending, "the app read past the last message"
        await asyncio.sleep(0)
        return pending.pop(0)

    return receive


async def respond(send: Send, body: bytes = b"ok", status: int = 200) -> None:
    """Send a minimal complete HTTP response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Endpoint:
    """A plain ASGI HTTP app that records the id and scope it saw."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        self.ids.append(get_request_id())
        await receive()
        await respond(send)


# --- scopes that pass through ---------------------------------------------


class PassThroughProbe:
    """Records exactly what it was called with, and the id it saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, Receive, Send]] = []
        self.ids: list[str | None] = []
        self.received: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope, receive, send))
        self.ids.append(get_request_id())
        self.received.append(await receive())
        await send({"type": f"{scope['type']}.startup.complete"})


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param(
            {
                "type": "lifespan",
                "asgi": {"version": "3.0", "spec_version": "2.0"},
                "state": {},
            },
            id="lifespan",
        ),
        pytest.param({"type": "lifespan", "asgi": {"version": "3.0"}}, id="no-state"),
        pytest.param(
            {"type": "custom.protocol", "headers": [(b"x-request-id", b"abc")]},
            id="unknown-type",
        ),
        pytest.param(
            {"type": "HTTP", "headers": [(b"x-request-id", b"abc")]},
            id="not-http-case",
        ),
    ],
)
def test_non_request_scopes_pass_through_untouched(scope: Scope) -> None:
    """lifespan and unknown scopes reach the app as the very same objects."""
    before = copy.deepcopy(scope)
    probe = PassThroughProbe()
    startup: Message = {"type": "lifespan.startup"}
    sent: list[Message] = []

    async def receive() -> Message:
        return startup

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(RequestIdMiddleware(probe)(scope, receive, send), 5))
    assert len(probe.calls) == 1
    seen_scope, seen_receive, seen_send = probe.calls[0]
    assert seen_scope is scope
    assert seen_receive is receive
    assert seen_send is send
    assert scope == before
    assert probe.ids == [None]
    assert probe.received[0] is startup
    assert sent == [{"type": f"{scope['type']}.startup.complete"}]


def test_lifespan_state_is_not_given_a_request_id() -> None:
    """The lifespan state dict, shared by later requests, gains no request_id."""
    state: dict[str, Any] = {"pool": "db"}
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    probe = PassThroughProbe()

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    asyncio.run(asyncio.wait_for(RequestIdMiddleware(probe)(scope, receive, send), 5))
    assert state == {"pool": "db"}
    assert probe.calls[0][0]["state"] is state


# --- websocket ------------------------------------------------------------


class WebSocketEcho:
    """Accepts, echoes each text frame tagged with the id it sees, ends on close."""

    def __init__(self, accept: Message) -> None:
        self.accept = accept
        self.scope: Scope | None = None
        self.ids: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        message = await receive()
        assert message["type"] == "websocket.connect"
        self.ids.append(get_request_id())
        await send(self.accept)
        while True:
            message = await receive()
            self.ids.append(get_request_id())
            if message["type"] == "websocket.disconnect":
                return
            await asyncio.sleep(0)
            tagged = f"{message['text']}:{get_request_id()}"
            await send({"type": "websocket.send", "text": tagged})
            self.ids.append(get_request_id())


WS_INPUT: list[Message] = [
    {"type": "websocket.connect"},
    {"type": "websocket.receive", "text": "one"},
    {"type": "websocket.receive", "text": "two"},
    {"type": "websocket.receive", "text": "three"},
    {"type": "websocket.disconnect", "code": 1000},
]


@pytest.mark.parametrize(
    ("accept", "expected_headers"),
    [
        pytest.param(
            {"type": "websocket.accept"},
            [(b"x-request-id", b"ws-1")],
            id="no-headers-key",
        ),
        pytest.param(
            {"type": "websocket.accept", "subprotocol": None, "headers": []},
            [(b"x-request-id", b"ws-1")],
            id="empty-headers",
        ),
        pytest.param(
            {
                "type": "websocket.accept",
                "subprotocol": "chat",
                "headers": [(b"x-extra", b"1")],
            },
            [(b"x-extra", b"1"), (b"x-request-id", b"ws-1")],
            id="own-headers",
        ),
        pytest.param(
            {"type": "websocket.accept", "headers": [(b"X-Request-ID", b"mine")]},
            [(b"X-Request-ID", b"mine")],
            id="own-id-header",
        ),
    ],
)
def test_websocket_id_lives_for_whole_connection_and_is_echoed_on_accept(
    accept: Message, expected_headers: Headers
) -> None:
    """The handshake id is seen on every frame and echoed in websocket.accept."""
    accept_before = copy.deepcopy(accept)
    app = WebSocketEcho(accept)
    send = Recorder()
    scope = websocket_scope([(b"x-request-id", b"ws-1")])
    call = RequestIdMiddleware(app)(scope, scripted_receive(WS_INPUT), send)
    asyncio.run(asyncio.wait_for(call, TIMEOUT))

    assert app.ids == ["ws-1"] * 8
    accepted = single_message(send.messages, "websocket.accept")
    assert accepted["headers"] == expected_headers
    assert {k: v for k, v in accepted.items() if k != "headers"} == {
        k: v for k, v in accept.items() if k != "headers"
    }
    assert accept == accept_before
    assert [m["text"] for m in send.messages[1:]] == [
        "one:ws-1",
        "two:ws-1",
        "three:ws-1",
    ]
    assert send.ids == ["ws-1"] * 4


def test_websocket_denial_response_carries_id() -> None:
    """A websocket.http.response.start denial response carries the id once."""

    async def deny(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no"})

    send = Recorder()
    config = Config(generator=counting_generator())
    call = RequestIdMiddleware(deny, config=config)(
        websocket_scope([(b"x-request-id", b"bad id")]),
        scripted_receive([{"type": "websocket.connect"}]),
        send,
    )
    asyncio.run(asyncio.wait_for(call, TIMEOUT))
    start = single_message(send.messages, "websocket.http.response.start")
    assert start["headers"] == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", b"gen-1"),
    ]
    assert send.messages[1] == {"type": "websocket.http.response.body", "body": b"no"}


@pytest.mark.parametrize(
    "server_state",
    [pytest.param(None, id="no-state"), pytest.param({"k": "v"}, id="server-state")],
)
def test_websocket_state_and_request_headers_hold_id(
    server_state: dict[str, Any] | None,
) -> None:
    """A WebSocket scope gets state["request_id"] and one rewritten id header."""
    extra: dict[str, Any] = {} if server_state is None else {"state": server_state}
    scope = websocket_scope(
        [(b"host", b"example.org"), (b"X-Request-ID", b"a b")], **extra
    )
    before = copy.deepcopy(scope)
    app = WebSocketEcho({"type": "websocket.accept"})
    config = Config(generator=counting_generator())
    call = RequestIdMiddleware(app, config=config)(
        scope, scripted_receive(WS_INPUT[:1] + WS_INPUT[-1:]), Recorder()
    )
    asyncio.run(asyncio.wait_for(call, TIMEOUT))

    assert app.scope is not None
    assert app.scope["state"] == ({} if server_state is None else {"k": "v"}) | {
        "request_id": "gen-1"
    }
    if server_state is None:
        assert scope == before
    else:
        assert app.scope["state"] is server_state
        assert {k: v for k, v in scope.items() if k != "state"} == {
            k: v for k, v in before.items() if k != "state"
        }
    assert app.scope["headers"] == [
        (b"host", b"example.org"),
        (b"x-request-id", b"gen-1"),
    ]
    assert app.ids == ["gen-1", "gen-1"]


def test_websocket_through_communicator() -> None:
    """In an empty context a WebSocket keeps its generated id for every frame."""
    app = WebSocketEcho({"type": "websocket.accept"})

    async def main() -> list[Message]:
        comm = communicator(RequestIdMiddleware(app), websocket_scope())
        out = []
        await comm.send_input({"type": "websocket.connect"})
        out.append(await comm.receive_output(TIMEOUT))
        for text in ("a", "b"):
            await comm.send_input({"type": "websocket.receive", "text": text})
            out.append(await comm.receive_output(TIMEOUT))
        await comm.send_input({"type": "websocket.disconnect", "code": 1000})
        await comm.wait(TIMEOUT)
        return out

    accepted, first_frame, second_frame = asyncio.run(main())
    request_id = app.ids[0]
    assert request_id is not None
    assert HEX32.fullmatch(request_id)
    assert app.ids == [request_id] * 6
    assert accepted == {
        "type": "websocket.accept",
        "headers": [(b"x-request-id", request_id.encode())],
    }
    assert first_frame["text"] == f"a:{request_id}"
    assert second_frame["text"] == f"b:{request_id}"


# --- before, after, and when the app raises -------------------------------


def test_id_unset_before_and_after_the_call_in_the_callers_context() -> None:
    """get_request_id() is None right before and right after the adapter call."""
    app = Endpoint()

    async def main() -> tuple[str | None, str | None]:
        before = get_request_id()
        await RequestIdMiddleware(app)(
            http_scope([(b"x-request-id", b"abc")]), receive_empty_body, Recorder()
        )
        return before, get_request_id()

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) == (None, None)
    assert app.ids == ["abc"]


class Boom(Exception):
    """The app's own failure."""


def raising_app(when: str) -> ASGIApp:
    """Return an app that raises a fresh ``Boom`` at the given point."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert get_request_id() is not None
        await receive()
        if when != "before-start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        if when == "mid-body":
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await asyncio.sleep(0)
        raise Boom("app failed")

    return app


@pytest.mark.parametrize(
    "layers", [pytest.param(1, id="one"), pytest.param(2, id="stacked")]
)
@pytest.mark.parametrize("when", ["before-start", "after-start", "mid-body"])
def test_app_exception_propagates_as_same_object(when: str, layers: int) -> None:
    """The app's exception propagates as itself; the id is unset afterwards."""
    raised: list[BaseException] = []
    inner = raising_app(when)

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await inner(scope, receive, send)
        except Boom as exc:
            raised.append(exc)
            raise

    app: ASGIApp = recording
    for _ in range(layers):
        app = RequestIdMiddleware(app)

    async def main() -> tuple[BaseException, str | None]:
        try:
            await app(
                http_scope([(b"x-request-id", b"req-7")]),
                receive_empty_body,
                Recorder(),
            )
        except Boom as exc:
            return exc, get_request_id()
        raise AssertionError("the exception was swallowed")

    caught, after = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert caught is raised[0]
    assert after is None
    assert str(caught) == "app failed"
    notes: list[str] = getattr(caught, "__notes__", [])
    if sys.version_info >= (3, 11):
        assert [note for note in notes if "req-7" in note] == notes
        assert len(notes) == 1
    else:
        assert notes == []


def test_app_exception_keeps_its_own_notes() -> None:
    """A note the app already added stays, and the id note is added once."""
    error = Boom("with note")
    if sys.version_info >= (3, 11):
        error.add_note("app note")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise error

    async def main() -> None:
        middleware = RequestIdMiddleware(RequestIdMiddleware(app))
        await middleware(
            http_scope([(b"x-request-id", b"abc")]), receive_empty_body, Recorder()
        )

    with pytest.raises(Boom) as info:
        asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert info.value is error
    notes: list[str] = getattr(error, "__notes__", [])
    if sys.version_info >= (3, 11):
        assert notes[0] == "app note"
        assert len(notes) == 2
        assert "abc" in notes[1]
    else:
        assert notes == []


def test_cancelled_request_unsets_id() -> None:
    """A request cancelled mid-flight leaves the id unset in the serving task."""
    started = Recorder()
    after: list[str | None] = []

    async def main() -> None:
        release = asyncio.Event()
        entered = asyncio.Event()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            entered.set()
            await release.wait()

        async def server_task() -> None:
            try:
                await RequestIdMiddleware(app)(
                    http_scope([(b"x-request-id", b"abc")]), receive_empty_body, started
                )
            finally:
                after.append(get_request_id())

        task = asyncio.create_task(server_task())
        await asyncio.wait_for(entered.wait(), TIMEOUT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT)

    asyncio.run(main())
    assert after == [None]


# --- contexts that outlive the request ------------------------------------


def test_spawned_task_sees_id_in_flight_and_none_after() -> None:
    """A task the app spawns sees the id while in flight, None once it returned."""
    seen: list[str | None] = []

    async def main() -> str | None:
        recorded = asyncio.Event()
        release = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        async def background() -> None:
            seen.append(get_request_id())
            recorded.set()
            await release.wait()
            seen.append(get_request_id())

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            tasks.append(asyncio.create_task(background()))
            await asyncio.wait_for(recorded.wait(), TIMEOUT)
            await respond(send)

        await RequestIdMiddleware(app)(
            http_scope([(b"x-request-id", b"abc")]), receive_empty_body, Recorder()
        )
        returned = get_request_id()
        release.set()
        await asyncio.wait_for(tasks[0], TIMEOUT)
        return returned

    assert asyncio.run(asyncio.wait_for(main(), TIMEOUT)) is None
    assert seen == ["abc", None]


def test_copied_context_reads_none_after_response() -> None:
    """A context copied during the request reads None once the response ended."""
    contexts: list[contextvars.Context] = []
    during: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ctx = contextvars.copy_context()
        contexts.append(ctx)
        during.append(ctx.run(get_request_id))
        await respond(send)

    serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc")]))
    assert during == ["abc"]
    assert contexts[0].run(get_request_id) is None


class Connection:
    """A server's connection: its ``receive`` and ``send`` are bound to it."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def test_ended_request_lets_go_of_the_servers_callables() -> None:
    """Context copies outlive the request, but not the server's connection.

    A task or timer holding a context copied during the request holds the
    request's binding; it must not keep the server's connection alive. What
    the app kept of them still behaves as a server's would after the
    response: ``receive`` reports the disconnect (as the ASGI spec asks),
    ``send`` fails loudly.
    """
    contexts: list[contextvars.Context] = []
    kept: list[tuple[Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        contexts.append(contextvars.copy_context())
        kept.append((receive, send))
        assert (await receive())["type"] == "http.request"
        await respond(send)

    connection = Connection()
    gone = weakref.ref(connection)
    scope = http_scope([(b"x-request-id", b"abc")])
    middleware = RequestIdMiddleware(app)
    asyncio.run(middleware(scope, connection.receive, connection.send))
    assert [m["type"] for m in connection.sent] == [
        "http.response.start",
        "http.response.body",
    ]
    del connection
    gc.collect()
    assert gone() is None, "a context copied from the request holds the server"
    assert contexts[0].run(get_request_id) is None
    receive, send = kept[0]

    async def call_late() -> None:
        assert await receive() == {"type": "http.disconnect"}
        for message in ({"type": "http.response.body", "body": b"x"}, {"type": "x"}):
            with pytest.raises(RuntimeError, match="send was called after the request"):
                await send(message)

    asyncio.run(call_late())


def test_ended_websocket_receive_reports_the_disconnect() -> None:
    """A WebSocket's ``receive`` kept past the end reports its disconnect."""
    kept: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kept.append(receive)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.close", "code": 1000})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    receive = scripted_receive([{"type": "websocket.connect"}])
    middleware = RequestIdMiddleware(app)
    asyncio.run(middleware(websocket_scope(), receive, send))
    assert [m["type"] for m in sent] == ["websocket.close"]

    async def receive_late() -> Message:
        return await kept[0]()

    # 1005, "no status code received": the spec's default when none is known.
    assert asyncio.run(receive_late()) == {"type": "websocket.disconnect", "code": 1005}


def test_thread_outliving_request_reads_none_after() -> None:
    """Executor work in a copied context sees the id, and None after the response."""
    seen: list[str | None] = []
    recorded = threading.Event()
    release = threading.Event()

    def blocking() -> None:
        seen.append(get_request_id())
        recorded.set()
        assert release.wait(TIMEOUT)
        seen.append(get_request_id())

    async def main() -> None:
        futures: list[asyncio.Future[None]] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            loop = asyncio.get_running_loop()
            ctx = contextvars.copy_context()
            futures.append(loop.run_in_executor(None, ctx.run, blocking))
            await asyncio.wait_for(asyncio.to_thread(recorded.wait, TIMEOUT), TIMEOUT)
            await respond(send)

        await RequestIdMiddleware(app)(
            http_scope([(b"x-request-id", b"abc")]), receive_empty_body, Recorder()
        )
        release.set()
        await asyncio.wait_for(futures[0], TIMEOUT)

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert seen == ["abc", None]


class ContextCapture:
    """An app that captures its context, optionally holding the response open."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.hold = hold
        self.captured = asyncio.Event()
        self.contexts: list[contextvars.Context] = []
        self.ids: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ids.append(get_request_id())
        self.contexts.append(contextvars.copy_context())
        self.captured.set()
        if self.hold is not None:
            await self.hold.wait()
        self.ids.append(get_request_id())
        await respond(send)


@pytest.mark.parametrize(
    ("b_headers", "b_expected"),
    [
        pytest.param([], "gen-2", id="no-header"),
        pytest.param([(b"x-request-id", b"bad value")], "gen-2", id="invalid-header"),
        pytest.param([(b"x-request-id", b"b-id")], "b-id", id="own-header"),
    ],
)
def test_next_request_in_copy_of_ended_request_context_gets_fresh_id(
    b_headers: Headers, b_expected: str
) -> None:
    """uvicorn #2167: B started in a copy of ended A's context gets its own id."""
    a_app = ContextCapture()
    b_app = Endpoint()
    config = Config(generator=counting_generator())
    a_sent = serve(RequestIdMiddleware(a_app, config=config), http_scope())
    ctx = a_app.contexts[0]

    def run_b() -> Recorder:
        return serve(RequestIdMiddleware(b_app, config=config), http_scope(b_headers))

    b_sent = ctx.run(run_b)

    assert a_app.ids == ["gen-1", "gen-1"]
    assert values_of(response_start(a_sent)["headers"], b"x-request-id") == [b"gen-1"]
    assert b_app.ids == [b_expected]
    assert b_app.scopes[0]["state"] == {"request_id": b_expected}
    start = response_start(b_sent)
    assert values_of(start["headers"], b"x-request-id") == [b_expected.encode()]
    assert ctx.run(get_request_id) is None


@pytest.mark.parametrize(
    "layers", [pytest.param(1, id="one"), pytest.param(2, id="stacked")]
)
@pytest.mark.parametrize(
    ("b_headers", "b_expected"),
    [
        pytest.param([], "gen-2", id="no-header"),
        pytest.param([(b"x-request-id", b"b-id")], "b-id", id="own-header"),
    ],
)
def test_next_request_in_copy_of_in_flight_request_context_gets_fresh_id(
    b_headers: Headers, b_expected: str, layers: int
) -> None:
    """B started in a copy of still-running A's context is not fooled by A's id."""
    config = Config(generator=counting_generator())
    b_app = Endpoint()
    b_middleware: ASGIApp = b_app
    for _ in range(layers):
        b_middleware = RequestIdMiddleware(b_middleware, config=config)

    async def main() -> tuple[ContextCapture, Recorder, Recorder, str | None]:
        a_app = ContextCapture(hold=asyncio.Event())
        assert a_app.hold is not None
        a_send, b_send = Recorder(), Recorder()
        a_task = asyncio.create_task(
            RequestIdMiddleware(a_app, config=config)(
                http_scope(), receive_empty_body, a_send
            )
        )
        await asyncio.wait_for(a_app.captured.wait(), TIMEOUT)
        ctx = a_app.contexts[0]

        async def request_b() -> None:
            await b_middleware(http_scope(b_headers), receive_empty_body, b_send)

        # Works on 3.10 too: create_task copies the *current* context, ctx.
        b_task: asyncio.Task[None] = ctx.run(asyncio.create_task, request_b())
        await asyncio.wait_for(b_task, TIMEOUT)
        in_ctx_while_a_runs = ctx.run(get_request_id)
        a_app.hold.set()
        await asyncio.wait_for(a_task, TIMEOUT)
        return a_app, a_send, b_send, in_ctx_while_a_runs

    a_app, a_send, b_send, in_ctx = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert a_app.ids == ["gen-1", "gen-1"]
    assert in_ctx == "gen-1"
    assert b_app.ids == [b_expected]
    assert b_app.scopes[0]["state"] == {"request_id": b_expected}
    b_start = response_start(b_send)
    assert values_of(b_start["headers"], b"x-request-id") == [b_expected.encode()]
    assert values_of(b_app.scopes[0]["headers"], b"x-request-id") == [
        b_expected.encode()
    ]
    a_start = response_start(a_send)
    assert values_of(a_start["headers"], b"x-request-id") == [b"gen-1"]
    assert set(b_send.ids_until_end()) == {b_expected}
    assert set(a_send.ids_until_end()) == {"gen-1"}
    assert b_send.ids_at_end() == a_send.ids_at_end() == [None]


@pytest.mark.parametrize(
    "last",
    [
        pytest.param({"type": "http.response.body", "body": b"ok"}, id="body"),
        pytest.param(
            {"type": "http.response.pathsend", "path": "/srv/file.txt"}, id="pathsend"
        ),
    ],
)
def test_id_is_hidden_from_the_server_only_while_the_response_ends(
    last: Message,
) -> None:
    """The server sees the id while the response starts, not in its last send.

    uvicorn (issue 2167) starts the next keep-alive request in a context it
    copies during that last send. The path send extension's message ends the
    response as a final body does. The app sees the id again afterwards.
    """
    after: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"o", "more_body": True})
        await send(last)
        after.append(get_request_id())

    scope = http_scope([(b"x-request-id", b"req-1")])
    scope["extensions"] = {"http.response.pathsend": {}}
    sent = serve(RequestIdMiddleware(app), scope)
    assert sent.ids == ["req-1", "req-1", None]
    assert sent.messages[-1] is last
    assert after == ["req-1"]


# --- stacked adapters -----------------------------------------------------


def copying_layer(app: ASGIApp) -> ASGIApp:
    """A middle layer that passes on a scope copy with an extra key."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "middle": True}, receive, send)

    return layer


def outer_config(**kwargs: Any) -> Config:
    """A Config for the outer adapter, generating ``outer-N`` ids."""
    return Config(generator=counting_generator("outer"), **kwargs)


def inner_config(**kwargs: Any) -> Config:
    """A Config for the inner adapter, generating ``inner-N`` ids."""
    return Config(generator=counting_generator("inner"), **kwargs)


STACKS = [
    pytest.param(outer_config, inner_config, id="same-config"),
    pytest.param(
        outer_config, lambda: inner_config(trust_incoming=False), id="inner-distrusts"
    ),
    pytest.param(
        outer_config,
        lambda: inner_config(validator=lambda v: v.startswith("inner-")),
        id="inner-strict-validator",
    ),
    pytest.param(
        lambda: outer_config(response_header=False), inner_config, id="outer-no-echo"
    ),
    pytest.param(
        outer_config, lambda: inner_config(response_header=False), id="inner-no-echo"
    ),
    pytest.param(
        lambda: outer_config(update_request_header=False),
        inner_config,
        id="outer-no-rewrite",
    ),
    pytest.param(
        outer_config,
        lambda: inner_config(header_name="X-Correlation-ID"),
        id="inner-other-header",
    ),
]


@pytest.mark.parametrize(
    "middle",
    [pytest.param(False, id="direct"), pytest.param(True, id="copying-middle")],
)
@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        pytest.param([(b"x-request-id", b"client-1")], "client-1", id="valid"),
        pytest.param([], "outer-1", id="absent"),
        pytest.param([(b"x-request-id", b"evil\r\nx: y")], "outer-1", id="hostile"),
        pytest.param([(b"x-request-id", b"evil" * 300)], "outer-1", id="too-long"),
    ],
)
@pytest.mark.parametrize(("make_outer", "make_inner"), STACKS)
def test_stacked_adapters_agree_on_one_id(
    make_outer: Callable[[], Config],
    make_inner: Callable[[], Config],
    request_headers: Headers,
    expected: str,
    middle: bool,
) -> None:
    """Two stacked adapters agree on the outer's id; the response echoes it once."""
    app = Endpoint()
    between: list[str | None] = []

    inner = RequestIdMiddleware(app, config=make_inner())

    async def observe(scope: Scope, receive: Receive, send: Send) -> None:
        between.append(get_request_id())
        await inner(scope, receive, send)

    stack: ASGIApp = copying_layer(observe) if middle else observe
    outer = RequestIdMiddleware(stack, config=make_outer())
    sent = serve(outer, http_scope(list(request_headers)))

    assert between == [expected]
    assert app.ids == [expected]
    scope = app.scopes[0]
    assert scope["state"] == {"request_id": expected}
    assert values_of(scope["headers"], b"x-request-id") == [expected.encode()]
    start = response_start(sent)
    assert values_of(start["headers"], b"x-request-id") == [expected.encode()]
    assert set(sent.ids_until_end()) == {expected}
    assert sent.ids_at_end() == [None]


def test_same_adapter_instance_config_stacked_twice() -> None:
    """The same Config used by two stacked adapters yields one id and one header."""
    config = Config(generator=counting_generator())
    app = Endpoint()
    sent = serve(
        RequestIdMiddleware(RequestIdMiddleware(app, config=config), config=config),
        http_scope([(b"x-request-id", b"a"), (b"x-request-id", b"b")]),
    )
    assert app.ids == ["gen-1"]
    start = response_start(sent)
    assert start["headers"] == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", b"gen-1"),
    ]


def test_stacked_inner_with_other_header_echoes_both_with_same_id() -> None:
    """With different header names, both response headers carry the one id."""
    app = Endpoint()
    inner = RequestIdMiddleware(app, config=Config(header_name="X-Correlation-ID"))
    sent = serve(RequestIdMiddleware(inner), http_scope([(b"x-request-id", b"abc")]))
    headers = response_start(sent)["headers"]
    assert values_of(headers, b"x-request-id") == [b"abc"]
    assert values_of(headers, b"x-correlation-id") == [b"abc"]
    assert values_of(app.scopes[0]["headers"], b"x-correlation-id") == [b"abc"]


# --- in-process requests of their own --------------------------------------

#: The in-process request's own header, and the id it must get.
OWN_HEADERS = [
    pytest.param({"X-Request-ID": "client-1"}, "client-1", id="valid-header"),
    pytest.param({}, "gen-1", id="no-header"),
    pytest.param({"X-Request-ID": "bad value"}, "gen-1", id="invalid-header"),
]


class CopyingEndpoint(Endpoint):
    """An ``Endpoint`` that also copies its context while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[contextvars.Context] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.contexts.append(contextvars.copy_context())
        await super().__call__(scope, receive, send)


async def get_in_process(app: ASGIApp, headers: dict[str, str]) -> list[str]:
    """GET / on *app* through httpx's ASGI transport, in this very task.

    Returns the response's id headers.
    """
    async with asgi_client(app) as client:
        with anyio.fail_after(TIMEOUT):
            response = await client.get("/", headers=headers)
    assert response.status_code == 200
    assert response.content == b"ok"
    return response.headers.get_list("X-Request-ID")


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
def test_request_inside_a_bound_request_id_block_is_a_request_of_its_own(
    request_headers: dict[str, str], expected: str
) -> None:
    """An in-process request in a bound_request_id block gets its own id.

    httpx's ASGI transport runs the adapter in the block's own task and
    context, and the adapter never adopts a block's id: the app sees the
    client's valid header or a generated id. Afterwards the block's id is
    current again, and contexts copied during the request read None.
    """
    app = CopyingEndpoint()
    middleware = RequestIdMiddleware(app, config=Config(generator=counting_generator()))

    async def main() -> tuple[list[str], str | None, str | None]:
        with bound_request_id("block-id"):
            echoed = await get_in_process(middleware, request_headers)
            after = get_request_id()
            copied_after = app.contexts[0].run(get_request_id)
        return echoed, after, copied_after

    echoed, after, copied_after = asyncio.run(main())
    assert app.ids == [expected]
    assert echoed == [expected]
    assert app.scopes[0]["state"] == {"request_id": expected}
    assert values_of(app.scopes[0]["headers"], b"x-request-id") == [expected.encode()]
    assert after == "block-id"
    assert copied_after is None


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
def test_request_made_inside_an_asgi_request_is_a_request_of_its_own(
    request_headers: dict[str, str], expected: str
) -> None:
    """A request an ASGI app makes in process to a wrapped app gets its own id.

    The inner scope is a new one, without the outer adapter's mark, so the
    inner adapter chooses the id; the outer request keeps its own throughout.
    """
    inner = CopyingEndpoint()
    inner_app = RequestIdMiddleware(
        inner, config=Config(generator=counting_generator())
    )
    outer_seen: list[str | None] = []

    async def outer_app(scope: Scope, receive: Receive, send: Send) -> None:
        outer_seen.append(get_request_id())
        echoed = await get_in_process(inner_app, request_headers)
        outer_seen.append(get_request_id())
        await receive()
        await respond(send, ",".join(echoed).encode("ascii"))

    outer_config = Config(generator=counting_generator("outer"))
    sent = serve(RequestIdMiddleware(outer_app, config=outer_config), http_scope())
    assert values_of(response_start(sent)["headers"], b"x-request-id") == [b"outer-1"]
    assert sent.messages[-1]["body"] == expected.encode("ascii")
    assert outer_seen == ["outer-1", "outer-1"]
    assert inner.ids == [expected]
    assert inner.scopes[0]["state"] == {"request_id": expected}
    assert inner.contexts[0].run(get_request_id) is None


@pytest.mark.parametrize(
    "app_header",
    [
        pytest.param(b"X-Request-ID", id="same-case"),
        pytest.param(b"x-request-id", id="lowercase"),
    ],
)
def test_stacked_adapters_keep_the_id_header_the_app_set(app_header: bytes) -> None:
    """Behind two adapters, an id header the app set itself is kept, alone."""
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(get_request_id())
        own = [(b"content-type", b"text/plain"), (app_header, b"app-own")]
        await send({"type": "http.response.start", "status": 200, "headers": own})
        await send({"type": "http.response.body", "body": b"ok"})

    stacked = RequestIdMiddleware(RequestIdMiddleware(app))
    sent = serve(stacked, http_scope([(b"x-request-id", b"abc")]))
    assert seen == ["abc"]
    assert response_start(sent)["headers"] == [
        (b"content-type", b"text/plain"),
        (app_header, b"app-own"),
    ]


#: What the scope's mark names, and the id the request must get: only the
#: live binding of an adapter, current where the request runs, is followed.
MARKS = [
    pytest.param("live-adapter-binding", "outer-id", id="live-adapter-binding"),
    pytest.param("ended-request", "gen-1", id="ended-request"),
    pytest.param("other-request-in-flight", "gen-1", id="other-request-in-flight"),
    pytest.param("unit-of-work", "gen-1", id="unit-of-work"),
]


@pytest.mark.parametrize(("marked", "expected"), MARKS)
def test_scope_mark_is_followed_only_for_the_live_adapter_binding(
    marked: str, expected: str
) -> None:
    """A mark naming an ended, foreign or non-adapter binding is not followed.

    The first row is what an outer adapter leaves: its live binding, current
    here, named by the mark. An ended request's mark (a scope kept and
    replayed), another request's binding, or a ``bound_request_id`` block's
    (which no adapter adopts) leave this request its own id.
    """
    context = contextvars.copy_context()
    current: _context.Binding | None = None
    if marked == "ended-request":
        earlier = Endpoint()
        serve(RequestIdMiddleware(earlier), http_scope())
        mark = earlier.scopes[0][_context.MARK_KEY]
    elif marked == "other-request-in-flight":
        other = contextvars.copy_context()
        mark = other.run(_context.begin, "other-id", "asgi")
        current = context.run(_context.begin, "outer-id", "asgi")
    else:
        protocol = "asgi" if marked == "live-adapter-binding" else None
        current = mark = context.run(_context.begin, "outer-id", protocol)
    try:
        app = Endpoint()
        middleware = RequestIdMiddleware(
            app, config=Config(generator=counting_generator())
        )
        scope = http_scope(**{_context.MARK_KEY: mark})
        sent = context.run(serve, middleware, scope)
        assert app.ids == [expected]
        assert app.scopes[0]["state"] == {"request_id": expected}
        assert values_of(app.scopes[0]["headers"], b"x-request-id") == [
            expected.encode()
        ]
        start = response_start(sent)
        assert values_of(start["headers"], b"x-request-id") == [expected.encode()]
        if current is not None:
            # Nothing bound over it, nothing ended: it is still current.
            assert context.run(get_request_id) == "outer-id"
            assert current.request_id == "outer-id"
        if marked == "other-request-in-flight":
            assert other.run(get_request_id) == "other-id"
    finally:
        if current is not None:
            context.run(_context.end, current)
        if marked == "other-request-in-flight":
            other.run(_context.end, mark)


# --- concurrency and threads ----------------------------------------------


def test_concurrent_requests_each_see_only_their_own_id() -> None:
    """200 interleaved requests each see their own id, streamed body included."""
    count = 200
    seen: dict[int, list[str | None]] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        index = int(dict(scope["headers"])[b"x-index"])
        log = seen.setdefault(index, [])
        log.append(get_request_id())
        for _ in range(5):
            await asyncio.sleep(0)
            log.append(get_request_id())
        await receive()
        log.append(get_request_id())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await asyncio.sleep(0)
            chunk = (get_request_id() or "-").encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            log.append(get_request_id())
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        log.append(get_request_id())

    middleware = RequestIdMiddleware(app)

    async def one(index: int) -> Recorder:
        headers: Headers = [(b"x-index", str(index).encode())]
        if index % 2 == 0:
            headers.append((b"x-request-id", f"client-{index}".encode()))
        send = Recorder()
        await middleware(http_scope(headers), receive_empty_body, send)
        assert get_request_id() is None
        return send

    async def main() -> list[Recorder]:
        return await asyncio.gather(*(one(i) for i in range(count)))

    results = asyncio.run(asyncio.wait_for(main(), TIMEOUT * 3))
    final_ids = set()
    for index, send in enumerate(results):
        start = response_start(send)
        (header,) = values_of(start["headers"], b"x-request-id")
        request_id = header.decode("ascii")
        if index % 2 == 0:
            assert request_id == f"client-{index}"
        else:
            assert HEX32.fullmatch(request_id)
        assert seen[index] == [request_id] * 11
        assert set(send.ids_until_end()) == {request_id}
        assert send.ids_at_end() == [None]
        bodies = [m["body"] for m in send.messages[1:]]
        assert bodies == [header, header, header, b""]
        final_ids.add(request_id)
    assert len(final_ids) == count


def test_sync_code_in_threads_sees_id() -> None:
    """to_thread, run_in_executor with a copied context, and sync_to_async see it."""
    seen: dict[str, str | None] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        seen["to_thread"] = await asyncio.wait_for(
            asyncio.to_thread(get_request_id), TIMEOUT
        )
        ctx = contextvars.copy_context()
        seen["run_in_executor"] = await asyncio.wait_for(
            loop.run_in_executor(None, ctx.run, get_request_id), TIMEOUT
        )
        seen["sync_to_async"] = await asyncio.wait_for(
            sync_to_async(get_request_id)(), TIMEOUT
        )
        seen["bare_executor"] = await asyncio.wait_for(
            loop.run_in_executor(None, get_request_id), TIMEOUT
        )
        await respond(send)

    serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc")]))
    assert seen == {
        "to_thread": "abc",
        "run_in_executor": "abc",
        "sync_to_async": "abc",
        # A thread without the request's context has no id: nothing leaks.
        "bare_executor": None,
    }


def test_thread_pool_thread_reused_after_request_sees_none() -> None:
    """A worker thread that served a request's context has no id afterwards."""
    seen: list[str | None] = []

    async def main() -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(await asyncio.to_thread(get_request_id))
            await respond(send)

        await RequestIdMiddleware(app)(
            http_scope([(b"x-request-id", b"abc")]), receive_empty_body, Recorder()
        )
        seen.append(await asyncio.to_thread(get_request_id))

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert seen == ["abc", None]


# --- user hooks failing at request time -----------------------------------


def raising_validator() -> Config:
    """A validator that passes the generator check, then raises."""
    hook = AfterConstruction(True, ValueError("evil-in-message"))
    return Config(validator=hook)


def raising_generator() -> Config:
    """A generator that works at construction, then raises."""
    return Config(generator=AfterConstruction("gen-0", RuntimeError("broken")))


def floor_failing_generator() -> Config:
    """A generator that works at construction, then returns values below the floor."""
    generator = sequence_generator("gen-0", "bad\r\nvalue", "", "x" * 2000)
    return Config(generator=generator, validator=lambda v: True)


@pytest.mark.parametrize(
    ("make_config", "request_headers", "header_kept"),
    [
        pytest.param(raising_validator, [], False, id="validator-raises-no-header"),
        pytest.param(
            raising_validator,
            [(b"x-request-id", b"evil-in-message")],
            False,
            id="validator-raises-on-header",
        ),
        pytest.param(raising_generator, [], False, id="generator-raises"),
        pytest.param(
            raising_generator,
            [(b"x-request-id", b"valid-1")],
            True,
            id="generator-raises-header-used",
        ),
        pytest.param(floor_failing_generator, [], False, id="generator-below-floor"),
        pytest.param(
            floor_failing_generator,
            [(b"x-request-id", b"a b")],
            False,
            id="generator-below-floor-bad-header",
        ),
    ],
)
def test_failing_hooks_never_turn_request_into_error(
    make_config: Callable[[], Config],
    request_headers: Headers,
    header_kept: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising validator or broken generator still gives 200 and a 32-hex id."""
    caplog.set_level("DEBUG", logger="correlation")
    app = Endpoint()
    middleware = RequestIdMiddleware(app, config=make_config())
    responses = [serve(middleware, http_scope(list(request_headers))) for _ in range(3)]

    for index, sent in enumerate(responses):
        start = response_start(sent)
        assert start["status"] == 200
        (header,) = values_of(start["headers"], b"x-request-id")
        request_id = header.decode("ascii")
        if header_kept:
            assert request_id == "valid-1"
        else:
            assert HEX32.fullmatch(request_id)
        assert app.ids[index] == request_id
        assert app.scopes[index]["state"] == {"request_id": request_id}
    # The rejected value is in no log record, not even via an exception's text.
    for record in caplog.records:
        assert "evil" not in caplog.handler.format(record)
