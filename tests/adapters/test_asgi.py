"""Protocol tests of the ASGI adapter with hand-built scopes and plain callables.

No web framework is involved: each test builds the scope dict the way a server
would, runs the middleware on a fresh event loop and inspects exactly what the
wrapped app received and what reached the server's ``send``.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import hostile
import pytest
from asgi_testing import (
    HEX32,
    TIMEOUT,
    Headers,
    Recorder,
    communicator,
    counting_generator,
    http_scope,
    response_start,
    serve,
    values_of,
)
from asgiref.sync import iscoroutinefunction
from hooks_testing import CONSTRUCTION_CALLS
from hostile import Hostile, hostile_params

from adapters._types import ASGIApp, Message, Receive, Scope, Send
from adapters.asgi import RequestIdMiddleware
from correlation import Config, default_validator, get_request_id

#: In every value below the default rule rejects (the hostile table has its own).
MARKER = "evil"


def log_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    """Return every record fully formatted, traceback and raw args included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [f"{formatter.format(r)} {r.args!r} {r.msg!r}" for r in records]


def assert_final_id(app: Endpoint, sent: Recorder, expected: str) -> None:
    """Check the app, its request headers and the response all hold *expected*."""
    assert app.request_id == expected
    echoed = values_of(response_start(sent)["headers"], b"x-request-id")
    assert echoed == [expected.encode()]
    assert values_of(app.seen_scope["headers"], b"x-request-id") == echoed


class Endpoint:
    """A plain ASGI HTTP app that records what it saw and answers 200 "ok"."""

    def __init__(
        self, response_headers: Headers | None = None, *, headers_key: bool = True
    ) -> None:
        self.response_headers: Headers = (
            [(b"content-type", b"text/plain")]
            if response_headers is None
            else response_headers
        )
        self.headers_key = headers_key
        self.scope: Scope | None = None
        self.request_id: str | None = None
        self.start: Message | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.request_id = get_request_id()
        message = await receive()
        assert message["type"] == "http.request"
        start: Message = {"type": "http.response.start", "status": 200}
        if self.headers_key:
            start["headers"] = self.response_headers
        self.start = start
        await send(start)
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    @property
    def seen_scope(self) -> Scope:
        """The scope the app was called with."""
        assert self.scope is not None
        return self.scope


# --- construction ---------------------------------------------------------


def test_config_none_means_defaults() -> None:
    """config=None behaves like Config(): X-Request-ID, echoed, 32-hex ids."""
    app = Endpoint()
    sent = serve(RequestIdMiddleware(app, config=None), http_scope())
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert response_start(sent)["headers"] == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", app.request_id.encode()),
    ]


# --- response headers -----------------------------------------------------


def test_valid_incoming_id_is_echoed_in_exact_response_headers() -> None:
    """A valid incoming id is the id, appended once after the app's headers."""
    app = Endpoint([(b"content-type", b"text/plain"), (b"content-length", b"2")])
    sent = serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc-123")]))
    assert app.request_id == "abc-123"
    assert sent.messages == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", b"2"),
                (b"x-request-id", b"abc-123"),
            ],
        },
        {"type": "http.response.body", "body": b"ok", "more_body": False},
    ]


def test_missing_header_gets_32_lowercase_hex_id() -> None:
    """Without an incoming header the default generator gives 32 lowercase hex."""
    app = Endpoint()
    sent = serve(RequestIdMiddleware(app), http_scope())
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert response_start(sent)["headers"] == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", app.request_id.encode("ascii")),
    ]


def test_generated_ids_differ_between_requests() -> None:
    """Each request without a header gets a new random id.

    200 requests span several batches of the built-in generator (64 ids per
    ``os.urandom`` call), so the adapter's path for a used-up batch runs too.
    """
    middleware = RequestIdMiddleware(Endpoint())
    ids = set()
    for _ in range(200):
        headers = response_start(serve(middleware, http_scope()))["headers"]
        (value,) = values_of(headers, b"x-request-id")
        assert HEX32.fullmatch(value.decode("ascii"))
        ids.add(value)
    assert len(ids) == 200


@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param([], id="absent"),
        pytest.param([(b"x-request-id", b"abc")], id="valid"),
        pytest.param([(b"x-request-id", b"a b")], id="invalid"),
        pytest.param([(b"x-request-id", b"a"), (b"x-request-id", b"b")], id="twice"),
        pytest.param([(b"X-Request-ID", b"a"), (b"x-request-id", b"a")], id="cased"),
    ],
)
def test_response_carries_exactly_one_id_header(request_headers: Headers) -> None:
    """Whatever the request holds, the response has exactly one id header."""
    app = Endpoint()
    sent = serve(
        RequestIdMiddleware(app, config=Config(generator=counting_generator())),
        http_scope(request_headers),
    )
    assert app.request_id is not None
    headers = response_start(sent)["headers"]
    assert values_of(headers, b"x-request-id") == [app.request_id.encode()]


@pytest.mark.parametrize(
    "app_header",
    [
        pytest.param(b"x-request-id", id="lowercase"),
        pytest.param(b"X-Request-ID", id="canonical"),
        pytest.param(b"X-REQUEST-ID", id="uppercase"),
    ],
)
def test_app_set_header_is_kept_and_not_duplicated(app_header: bytes) -> None:
    """An app that sets the id header itself keeps its value; none is added."""
    own: Headers = [(b"content-type", b"text/plain"), (app_header, b"app-chosen")]
    app = Endpoint(list(own))
    sent = serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc")]))
    assert app.request_id == "abc"
    assert response_start(sent)["headers"] == own


@pytest.mark.parametrize(
    "response_headers",
    [
        pytest.param([(b"content-type", b"text/plain")], id="own-headers"),
        pytest.param([(b"X-Request-ID", b"app-chosen")], id="own-id-header"),
        pytest.param([], id="empty-headers"),
    ],
)
def test_message_passed_to_send_is_not_mutated(response_headers: Headers) -> None:
    """The start message dict and its headers list stay as the app built them."""
    app = Endpoint(response_headers)
    serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc")]))
    assert app.start is not None
    assert app.start == {
        "type": "http.response.start",
        "status": 200,
        "headers": copy.deepcopy(response_headers),
    }
    assert app.start["headers"] is response_headers


def test_start_message_without_headers_key_gets_one_and_stays_unmutated() -> None:
    """A start message with no "headers" key gets the id; the app's dict does not."""
    app = Endpoint(headers_key=False)
    sent = serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc")]))
    assert response_start(sent)["headers"] == [(b"x-request-id", b"abc")]
    assert app.start == {"type": "http.response.start", "status": 200}


def test_response_header_false_adds_nothing() -> None:
    """response_header=False leaves the response headers exactly as the app sent."""
    app = Endpoint([(b"content-type", b"text/plain")])
    config = Config(response_header=False)
    sent = serve(
        RequestIdMiddleware(app, config=config),
        http_scope([(b"x-request-id", b"abc")]),
    )
    assert app.request_id == "abc"
    assert response_start(sent)["headers"] == [(b"content-type", b"text/plain")]
    assert app.seen_scope["state"] == {"request_id": "abc"}


def test_body_messages_pass_through_unchanged() -> None:
    """Only the start message is touched; body messages arrive as the app sent."""
    body: Message = {"type": "http.response.body", "body": b"x", "more_body": True}
    last: Message = {"type": "http.response.body", "body": b"", "more_body": False}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send(body)
        await send(last)

    sent = serve(RequestIdMiddleware(app), http_scope([(b"x-request-id", b"abc")]))
    assert sent.messages[1] is body
    assert sent.messages[2] is last
    assert body == {"type": "http.response.body", "body": b"x", "more_body": True}


@pytest.mark.parametrize("outer", [False, True], ids=["owner", "nested"])
def test_send_given_to_the_app_is_async_for_callers_that_check(outer: bool) -> None:
    """asgiref's and inspect's iscoroutinefunction accept the wrapped send.

    The adapter's send returns the server's own coroutine for the response
    start and streamed chunks; callers that check before calling (asgiref's
    AsyncToSync warns on a plain function) still see an async one.
    """
    checks: list[tuple[bool, bool]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        checks.append((iscoroutinefunction(send), inspect.iscoroutinefunction(send)))
        started = send({"type": "http.response.start", "status": 204, "headers": []})
        assert inspect.isawaitable(started)
        await started
        await send({"type": "http.response.body", "body": b""})

    wrapped: ASGIApp = RequestIdMiddleware(app)
    if outer:
        wrapped = RequestIdMiddleware(wrapped)
    sent = serve(wrapped, http_scope([(b"x-request-id", b"abc")]))
    assert values_of(response_start(sent)["headers"], b"x-request-id") == [b"abc"]
    # Owner or nested, the send is the same marked function: asgiref's check
    # reads the mark on every Python, inspect's own on 3.12+ only.
    assert checks == [(True, sys.version_info >= (3, 12))]


# --- request headers ------------------------------------------------------


@pytest.mark.parametrize(
    ("request_headers", "expected_id"),
    [
        pytest.param([(b"x-request-id", b"abc")], "abc", id="valid"),
        pytest.param([], "gen-1", id="absent"),
        pytest.param([(b"x-request-id", b"bad value")], "gen-1", id="invalid"),
        pytest.param(
            [(b"X-Request-ID", b"a"), (b"x-request-id", b"b")], "gen-1", id="twice"
        ),
    ],
)
def test_app_sees_exactly_one_request_header_with_final_id(
    request_headers: Headers, expected_id: str
) -> None:
    """The app's request headers hold the final id once; others keep order/case."""
    others: Headers = [
        (b"Host", b"example.org"),
        (b"accept", b"*/*"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"accept", b"text/html"),
    ]
    # Interleave the id headers between the others, as a client might.
    headers = [others[0], *request_headers[:1], *others[1:3], *request_headers[1:]]
    headers.append(others[3])
    app = Endpoint()
    config = Config(generator=counting_generator())
    serve(RequestIdMiddleware(app, config=config), http_scope(headers))
    assert app.request_id == expected_id
    seen = app.seen_scope["headers"]
    assert values_of(seen, b"x-request-id") == [expected_id.encode()]
    assert [h for h in seen if h[0].lower() != b"x-request-id"] == others


@pytest.mark.parametrize(
    ("request_headers", "expected_id"),
    [
        pytest.param([(b"X-Request-ID", b"abc")], "abc", id="valid"),
        pytest.param([], "gen-1", id="absent"),
        pytest.param(
            [(b"x-request-id", b"evil\r\nSet-Cookie: a=b")], "gen-1", id="hostile"
        ),
        pytest.param(
            [(b"x-request-id", b"a"), (b"X-REQUEST-ID", b" b ")],
            "gen-1",
            id="duplicates",
        ),
    ],
)
def test_update_request_header_false_leaves_headers_as_sent(
    request_headers: Headers, expected_id: str
) -> None:
    """With update_request_header=False the app sees the client's headers as sent."""
    headers: Headers = [(b"host", b"example.org"), *request_headers, (b"a", b"1")]
    before = copy.deepcopy(headers)
    app = Endpoint()
    config = Config(update_request_header=False, generator=counting_generator())
    sent = serve(RequestIdMiddleware(app, config=config), http_scope(headers))
    assert list(app.seen_scope["headers"]) == before
    assert app.request_id == expected_id
    assert app.seen_scope["state"] == {"request_id": expected_id}
    assert values_of(response_start(sent)["headers"], b"x-request-id") == [
        expected_id.encode()
    ]


@pytest.mark.parametrize("update_request_header", [True, False])
def test_headers_sent_as_a_one_shot_iterable_reach_the_app(
    update_request_header: bool,
) -> None:
    """ASGI allows any iterable of headers; the adapter reads it, the app still can."""
    sent_headers: Headers = [(b"host", b"example.org"), (b"x-request-id", b"abc")]
    scope = http_scope()
    scope["headers"] = iter(sent_headers)
    app = Endpoint()
    config = Config(update_request_header=update_request_header)
    serve(RequestIdMiddleware(app, config=config), scope)
    assert list(app.seen_scope["headers"]) == sent_headers
    assert app.request_id == "abc"


# --- the scope ------------------------------------------------------------


@pytest.mark.parametrize(
    "update_request_header",
    [pytest.param(True, id="rewrite"), pytest.param(False, id="keep")],
)
def test_caller_scope_is_not_mutated(update_request_header: bool) -> None:
    """The caller's scope and its headers list are untouched; the app gets a copy."""
    headers: Headers = [(b"host", b"example.org"), (b"x-request-id", b"abc")]
    scope = http_scope(headers, extensions={"http.response.trailers": {}})
    before = copy.deepcopy(scope)
    app = Endpoint()
    config = Config(update_request_header=update_request_header)
    serve(RequestIdMiddleware(app, config=config), scope)
    assert scope == before
    assert scope["headers"] is headers
    assert app.seen_scope is not scope
    assert "state" not in scope


def test_app_scope_copy_keeps_every_other_key() -> None:
    """The app's scope copy holds every key of the caller's scope, unchanged."""
    scope = http_scope([(b"x-request-id", b"abc")], path="/items", method="POST")
    before = copy.deepcopy(scope)
    app = Endpoint()
    serve(RequestIdMiddleware(app), scope)
    for key, value in before.items():
        if key != "headers":
            assert app.seen_scope[key] == value


def test_server_state_dict_gets_request_id_and_nothing_else_changes() -> None:
    """A server-sent state dict is the very dict that gains request_id, only that."""
    pool = object()
    state: dict[str, Any] = {"pool": pool, "counter": 1}
    scope = http_scope([(b"x-request-id", b"abc")], state=state)
    app = Endpoint()
    serve(RequestIdMiddleware(app), scope)
    assert app.seen_scope["state"] is state
    assert scope["state"] is state
    assert state == {"pool": pool, "counter": 1, "request_id": "abc"}
    assert state["pool"] is pool


def test_state_created_only_in_app_copy_when_server_sent_none() -> None:
    """Without a server state, a new dict appears only in the app's scope copy."""
    scope = http_scope([(b"x-request-id", b"abc")])
    app = Endpoint()
    serve(RequestIdMiddleware(app), scope)
    assert app.seen_scope["state"] == {"request_id": "abc"}
    assert "state" not in scope


def test_state_request_id_matches_generated_id() -> None:
    """scope["state"]["request_id"] is the final id, also when generated."""
    app = Endpoint()
    config = Config(generator=counting_generator())
    serve(RequestIdMiddleware(app, config=config), http_scope(state={}))
    assert app.request_id == "gen-1"
    assert app.seen_scope["state"] == {"request_id": "gen-1"}


# --- reading the header ---------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(b"x-request-id", id="lowercase"),
        pytest.param(b"X-REQUEST-ID", id="uppercase"),
        pytest.param(b"X-Request-Id", id="mixed"),
    ],
)
def test_header_name_matched_case_insensitively(name: bytes) -> None:
    """The incoming header is found whatever its casing in the scope."""
    app = Endpoint()
    sent = serve(RequestIdMiddleware(app), http_scope([(name, b"abc")]))
    assert_final_id(app, sent, "abc")


def test_custom_header_name_is_read_rewritten_and_echoed() -> None:
    """A custom header_name is the one read, rewritten and echoed; others untouched."""
    app = Endpoint()
    config = Config(header_name="X-Correlation-ID")
    headers: Headers = [(b"X-Correlation-ID", b"corr-1"), (b"x-request-id", b"other")]
    sent = serve(RequestIdMiddleware(app, config=config), http_scope(headers))
    assert app.request_id == "corr-1"
    response = response_start(sent)["headers"]
    assert values_of(response, b"x-correlation-id") == [b"corr-1"]
    assert values_of(response, b"x-request-id") == []
    seen = app.seen_scope["headers"]
    assert values_of(seen, b"x-correlation-id") == [b"corr-1"]
    assert values_of(seen, b"x-request-id") == [b"other"]


def test_trust_incoming_false_always_generates() -> None:
    """trust_incoming=False ignores a valid client id and generates one."""
    app = Endpoint()
    config = Config(trust_incoming=False, generator=counting_generator())
    sent = serve(
        RequestIdMiddleware(app, config=config), http_scope([(b"x-request-id", b"abc")])
    )
    assert_final_id(app, sent, "gen-1")


def test_trust_incoming_false_with_default_generator_gives_hex() -> None:
    """trust_incoming=False with the default generator gives a 32-hex id."""
    app = Endpoint()
    serve(
        RequestIdMiddleware(app, config=Config(trust_incoming=False)),
        http_scope([(b"x-request-id", b"0123456789abcdef0123456789abcdef")]),
    )
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert app.request_id != "0123456789abcdef0123456789abcdef"


def accept_all(value: str) -> bool:
    """A permissive validator: everything that passed the hard floor is fine."""
    return True


@pytest.mark.parametrize(
    ("values", "validator", "expected"),
    [
        pytest.param([b"a", b"b"], None, "gen-1", id="two-headers-default-rule"),
        pytest.param([b"a", b"b"], accept_all, "a,b", id="two-headers-permissive"),
        pytest.param([b"a, b"], accept_all, "a,b", id="one-header-comma-space"),
        pytest.param([b"a,\tb"], accept_all, "a,b", id="one-header-comma-tab"),
        pytest.param([b" a ", b"\tb\t"], accept_all, "a,b", id="padded-occurrences"),
        pytest.param([b"a, b", b"c"], accept_all, "a,b,c", id="mixed-three"),
        pytest.param([b"a", b"a"], None, "gen-1", id="same-twice-default-rule"),
        pytest.param([b"a", b"a"], accept_all, "a,a", id="same-twice-permissive"),
        pytest.param([b"  abc\t"], None, "abc", id="single-padded"),
        pytest.param([b" \t "], accept_all, "gen-1", id="blank-fails-floor"),
        pytest.param([b"abc,"], None, "gen-1", id="trailing-comma-default"),
        pytest.param([b"abc,"], accept_all, "abc,", id="trailing-comma-permissive"),
        pytest.param([b"a" * 128], None, "a" * 128, id="128-default-ok"),
        pytest.param([b"a" * 129], None, "gen-1", id="129-default-rejected"),
        pytest.param([b"a" * 1024], accept_all, "a" * 1024, id="1024-floor-ok"),
        pytest.param([b"a" * 1025], accept_all, "gen-1", id="1025-floor-rejected"),
    ],
)
def test_header_read_as_rfc9110_list(
    values: list[bytes], validator: Callable[[str], bool] | None, expected: str
) -> None:
    """Occurrences are split, stripped and joined with "," before checking."""
    config = Config(
        generator=counting_generator(), validator=validator or default_validator
    )
    app = Endpoint()
    headers: Headers = [(b"x-request-id", value) for value in values]
    sent = serve(RequestIdMiddleware(app, config=config), http_scope(headers))
    assert_final_id(app, sent, expected)


# --- hostile values -------------------------------------------------------


@pytest.mark.parametrize(
    "permissive",
    [pytest.param(False, id="default-rule"), pytest.param(True, id="accept-all")],
)
@pytest.mark.parametrize("row", hostile_params(fails_floor=True))
def test_hostile_value_is_nowhere(
    row: Hostile, permissive: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A value under the floor (even with a permissive validator) appears nowhere.

    The other request headers reach the app untouched and in order.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="correlation")
    checked: list[str] = []

    def validator(value: str) -> bool:
        checked.append(value)
        return True

    generator = counting_generator()
    config = (
        Config(generator=generator, validator=validator)
        if permissive
        else Config(generator=generator)
    )
    request_headers = [(b"x-request-id", value) for value in row.occurrences]
    headers: Headers = [(b"host", b"example.org"), *request_headers, (b"a", b"1")]
    app = Endpoint()
    sent = serve(RequestIdMiddleware(app, config=config), http_scope(headers))

    assert app.request_id == "gen-1"
    assert values_of(response_start(sent)["headers"], b"x-request-id") == [b"gen-1"]
    seen = app.seen_scope["headers"]
    assert values_of(seen, b"x-request-id") == [b"gen-1"]
    assert [h for h in seen if h[0] != b"x-request-id"] == [
        (b"host", b"example.org"),
        (b"a", b"1"),
    ]
    assert app.seen_scope["state"] == {"request_id": "gen-1"}
    # The validator only ever saw the generator's samples at construction.
    assert checked == (["gen-0"] * CONSTRUCTION_CALLS if permissive else [])
    for text in log_texts(caplog.records):
        assert hostile.MARKER not in text


def no_evil(value: str) -> bool:
    """A custom validator that rejects anything containing the marker."""
    return MARKER not in value


@pytest.mark.parametrize(
    ("value", "validator"),
    [
        pytest.param(b"evil,evil", None, id="list"),
        pytest.param(b"evil" * 40, None, id="160-chars"),
        pytest.param(b"evil#1", None, id="hash"),
        pytest.param(b"evil;drop", None, id="semicolon"),
        pytest.param(b'"evil"', None, id="quotes"),
        pytest.param(b"<evil>", None, id="angle-brackets"),
        pytest.param(b"evil-but-valid", no_evil, id="custom-validator"),
    ],
)
def test_rule_rejected_value_is_nowhere(
    value: bytes,
    validator: Callable[[str], bool] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A value past the floor but rejected by the validator appears nowhere."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="correlation")
    config = Config(
        generator=counting_generator(), validator=validator or default_validator
    )
    app = Endpoint()
    sent = serve(
        RequestIdMiddleware(app, config=config), http_scope([(b"x-request-id", value)])
    )
    assert_final_id(app, sent, "gen-1")
    assert app.seen_scope["state"] == {"request_id": "gen-1"}
    for text in log_texts(caplog.records):
        assert MARKER not in text


@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param([(b"x-request-id", b"z" * 300_000)], id="300-kb"),
        pytest.param([(b"x-request-id", b"abc")] * 10_000, id="10000-duplicates"),
        pytest.param(
            [(f"x-h{i}".encode(), b"v") for i in range(10_000)],
            id="10000-other-headers",
        ),
    ],
)
def test_huge_header_input_is_handled(request_headers: Headers) -> None:
    """Huge or numerous headers still get a normal 200 response with a fresh id."""
    app = Endpoint()
    sent = serve(RequestIdMiddleware(app), http_scope(list(request_headers)))
    start = response_start(sent)
    assert start["status"] == 200
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert values_of(start["headers"], b"x-request-id") == [app.request_id.encode()]


# --- through asgiref's ApplicationCommunicator ----------------------------


def through_communicator(app: ASGIApp, scope: Scope) -> tuple[Message, Message]:
    """Run one empty-bodied request through asgiref's ApplicationCommunicator.

    The app runs in a new task with an empty context, as a server runs it.
    Returns the response start and body messages.
    """

    async def main() -> tuple[Message, Message]:
        comm = communicator(app, scope)
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await comm.receive_output(TIMEOUT)
        body = await comm.receive_output(TIMEOUT)
        await comm.wait(TIMEOUT)
        return start, body

    return asyncio.run(main())


def test_communicator_http_request_sees_and_echoes_id() -> None:
    """Run in an empty context, the app sees the incoming id and it is echoed."""
    app = Endpoint()
    start, body = through_communicator(
        RequestIdMiddleware(app), http_scope([(b"x-request-id", b"comm-1")])
    )
    assert app.request_id == "comm-1"
    assert start["headers"] == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", b"comm-1"),
    ]
    assert body == {"type": "http.response.body", "body": b"ok", "more_body": False}


def test_communicator_generates_id_in_empty_context() -> None:
    """In an empty context without a header the app gets a 32-hex id, echoed."""
    app = Endpoint()
    start, _ = through_communicator(RequestIdMiddleware(app), http_scope())
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert values_of(start["headers"], b"x-request-id") == [app.request_id.encode()]


def test_communicator_hostile_header_replaced() -> None:
    """Through the communicator a CR/LF header is replaced by the generator's id."""
    app = Endpoint()
    config = Config(generator=counting_generator())
    start, _ = through_communicator(
        RequestIdMiddleware(app, config=config),
        http_scope([(b"x-request-id", b"evil\r\nx: y")]),
    )
    assert app.request_id == "gen-1"
    assert values_of(start["headers"], b"x-request-id") == [b"gen-1"]
    assert app.seen_scope["state"] == {"request_id": "gen-1"}
