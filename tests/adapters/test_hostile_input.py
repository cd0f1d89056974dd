"""Hostile id headers through both adapters: nothing reflected, nothing slow.

Hand-built ASGI scopes and WSGI environs carry CR/LF, bare CR, NUL, escape
sequences, DEL, 300 KB values and 10,000 duplicate headers (ASGI: one tuple
each; WSGI: one value joined with ``, ``, as servers do). The contract says a
rejected value is replaced by a generated id and held by nothing the adapter
writes, and that no request turns into an error.

Cost is checked without clocks (the project forbids timed tests): the work an
adapter does is counted as the Python and C function calls ``sys.setprofile``
reports, for an input of size *n* and of size *10n*; linear work grows at most
tenfold. A call count cannot see a quadratic loop hidden inside one C call, so
``bench/hostile_scaling.py`` times the same inputs for a person to read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
from asgi_testing import (
    Recorder,
    counting_generator,
    http_scope,
    receive_empty_body,
    response_start,
)
from asgi_testing import values_of as asgi_values
from hooks_testing import CONSTRUCTION_CALLS
from log_testing import correlation_logs
from wsgi_testing import (
    ServerStartResponse,
    environ_key,
    make_environ,
    run_wsgi,
    validated,
)

from adapters import asgi, wsgi
from correlation import Config, default_validator, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from adapters._types import Receive, Scope, Send

HEADER = "X-Request-ID"
WIRE = b"x-request-id"
ENVIRON_KEY = environ_key(HEADER)

#: In every hostile value; no legitimate output contains it.
MARKER = "EVIL"

#: What the counting generator gives the first request (``Config``'s
#: construction samples are all ``gen-0``).
GEN = "gen-1"

#: The work allowed beyond ten times the work for the smaller input.
SLACK = 50

HOSTILE = [
    pytest.param([b"EVIL\r\nSet-Cookie: session=stolen"], id="crlf-header-injection"),
    pytest.param([b"EVIL\r\n\r\n<html>"], id="crlf-body-injection"),
    pytest.param([b"EVIL\rX-Injected: 1"], id="bare-cr"),
    pytest.param([b"EVIL\nX-Injected: 1"], id="bare-lf"),
    pytest.param([b"EVIL\x00after-nul"], id="nul"),
    pytest.param([b"\x1b[31mEVIL\x1b[0m"], id="ansi-colour"),
    pytest.param([b"\x1b]0;EVIL\x07"], id="osc-window-title"),
    pytest.param([b"\x1b[2J\x1b[HEVIL"], id="ansi-clear-screen"),
    pytest.param([b"EVIL\x7f\x7f"], id="del"),
    pytest.param([b"EVIL" + b"x" * (300 * 1024 - 4)], id="300kb-value"),
    pytest.param([b"EVIL\r\n" * (300 * 1024 // 6)], id="300kb-of-crlf"),
    pytest.param([b"EVIL," * (300 * 1024 // 5)], id="300kb-of-commas"),
    pytest.param([b"EVIL"] * 10_000, id="10000-duplicates"),
    pytest.param([b"EVIL\r\nX: y"] * 10_000, id="10000-crlf-duplicates"),
    pytest.param([b"EVIL", b"\x00"] * 5_000, id="10000-mixed-duplicates"),
]

VALIDATORS = [
    pytest.param(default_validator, id="default-validator"),
    pytest.param(lambda value: True, id="permissive-validator"),
]

#: A value's characters that would let a log line or a header be forged.
_CONTROL = frozenset(chr(code) for code in [*range(0x20), 0x7F])


# --- logs (captured with log_testing.correlation_logs) ---------------------------


def assert_clean_logs(texts: list[str]) -> None:
    """No log text holds the marker or any control character."""
    assert texts, "the rejection was not logged at DEBUG"
    for text in texts:
        assert MARKER not in text, text[:200]
        assert not _CONTROL & set(text), text[:200]


# --- drivers --------------------------------------------------------------------


def run_to_completion(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits on anything, without an event loop.

    The apps here answer at once and the server side never blocks, so the
    whole request is one step; the profiler then sees only the request.
    """
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise AssertionError("the request waited on something")


@dataclass
class AsgiSeen:
    """What the app saw and the server got from one ASGI request."""

    seen_id: str | None
    app_headers: list[tuple[bytes, bytes]]
    state: dict[str, Any]
    sent: Recorder


def config_for(
    validator: Callable[[str], bool], *, update_request_header: bool = True
) -> Config:
    """A config with a counting generator, so the replacement id is known."""
    return Config(
        generator=counting_generator(),
        validator=validator,
        update_request_header=update_request_header,
    )


def serve_asgi(config: Config, occurrences: list[bytes]) -> AsgiSeen:
    """Serve one request whose scope holds *occurrences* as id header tuples."""
    seen: list[AsgiSeen] = []
    sent = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        state = dict(scope["state"])
        seen.append(AsgiSeen(get_request_id(), list(scope["headers"]), state, sent))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = http_scope([(b"host", b"testserver"), *((WIRE, v) for v in occurrences)])
    middleware = asgi.RequestIdMiddleware(app, config=config)
    run_to_completion(middleware(scope, receive_empty_body, sent))
    assert get_request_id() is None
    (result,) = seen
    return result


@dataclass
class WsgiSeen:
    """What the app saw and the server got from one WSGI request."""

    seen_id: str | None
    environ: dict[str, Any]
    server: ServerStartResponse
    body: bytes


def serve_wsgi(config: Config, occurrences: list[bytes]) -> WsgiSeen:
    """Serve one request whose environ holds *occurrences* joined with ", "."""
    joined = ", ".join(value.decode("latin-1") for value in occurrences)
    environ = make_environ([(HEADER, joined)])
    seen: list[tuple[str | None, dict[str, Any]]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        seen.append((get_request_id(), dict(environ)))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = wsgi.RequestIdMiddleware(validated(app), config=config)
    result = run_wsgi(validated(middleware), environ)
    assert get_request_id() is None
    ((seen_id, app_environ),) = seen
    return WsgiSeen(seen_id, app_environ, result.server, result.body)


def _texts(values: Iterable[object]) -> Iterator[str]:
    """Every value as text: bytes decoded latin-1, str as is, others by repr."""
    for value in values:
        if isinstance(value, bytes):
            yield value.decode("latin-1")
        elif isinstance(value, str):
            yield value
        else:
            yield repr(value)


# --- nothing reflected, nothing fails ---------------------------------------------


@pytest.mark.parametrize("validator", VALIDATORS)
@pytest.mark.parametrize("occurrences", HOSTILE)
def test_asgi_hostile_header_reflected_nowhere(
    occurrences: list[bytes], validator: Callable[[str], bool]
) -> None:
    """ASGI: a hostile header yields a new id; no header, state or log holds it."""
    with correlation_logs() as logs:
        seen = serve_asgi(config_for(validator), occurrences)
    assert seen.seen_id == GEN
    assert seen.state == {"request_id": GEN}
    assert asgi_values(seen.app_headers, WIRE) == [GEN.encode()]
    for text in _texts(v for pair in seen.app_headers for v in pair):
        assert MARKER not in text
    start = response_start(seen.sent)
    assert start["status"] == 200
    assert start["headers"] == [(WIRE, GEN.encode())]
    # The server sees the id until the final body, sent with the id hidden.
    assert seen.sent.ids == [GEN, None]
    assert_clean_logs(logs)


@pytest.mark.parametrize("validator", VALIDATORS)
@pytest.mark.parametrize("occurrences", HOSTILE)
def test_wsgi_hostile_header_reflected_nowhere(
    occurrences: list[bytes], validator: Callable[[str], bool]
) -> None:
    """WSGI: a hostile header yields a new id; no header, environ or log holds it."""
    with correlation_logs() as logs:
        seen = serve_wsgi(config_for(validator), occurrences)
    assert seen.seen_id == GEN
    assert seen.environ["correlation.request_id"] == GEN
    assert seen.environ[ENVIRON_KEY] == GEN
    for text in _texts(seen.environ.values()):
        assert MARKER not in text
    assert seen.server.status == "200 OK"
    assert seen.server.headers == [("Content-Type", "text/plain"), (HEADER, GEN)]
    assert [call.request_id for call in seen.server.calls] == [GEN]
    assert seen.body == b"ok"
    assert_clean_logs(logs)


@pytest.mark.parametrize("occurrences", HOSTILE)
def test_asgi_unchanged_request_header_keeps_hostile_value_out_of_the_rest(
    occurrences: list[bytes],
) -> None:
    """ASGI, update_request_header=False: the app's header is as sent, nothing else."""
    config = config_for(lambda value: True, update_request_header=False)
    with correlation_logs() as logs:
        seen = serve_asgi(config, occurrences)
    assert seen.seen_id == GEN
    assert seen.state == {"request_id": GEN}
    assert asgi_values(seen.app_headers, WIRE) == occurrences
    assert response_start(seen.sent)["headers"] == [(WIRE, GEN.encode())]
    assert_clean_logs(logs)


@pytest.mark.parametrize("occurrences", HOSTILE)
def test_wsgi_unchanged_request_header_keeps_hostile_value_out_of_the_rest(
    occurrences: list[bytes],
) -> None:
    """WSGI, update_request_header=False: the app's header is as sent, nothing else."""
    config = config_for(lambda value: True, update_request_header=False)
    with correlation_logs() as logs:
        seen = serve_wsgi(config, occurrences)
    joined = ", ".join(value.decode("latin-1") for value in occurrences)
    assert seen.seen_id == GEN
    assert seen.environ["correlation.request_id"] == GEN
    assert seen.environ[ENVIRON_KEY] == joined
    assert seen.server.headers == [("Content-Type", "text/plain"), (HEADER, GEN)]
    assert_clean_logs(logs)


# --- the floor before the validator -----------------------------------------------

OVER_THE_FLOOR = [
    pytest.param([b"x" * 1025], id="1025-chars"),
    pytest.param([b"x" * 2000], id="2000-chars"),
    pytest.param([b"x" * (300 * 1024)], id="300kb"),
    pytest.param([b"x"] * 10_000, id="10000-duplicates"),
    pytest.param([b"x" * 512, b"y" * 512], id="two-halves-joined-1025"),
]


def recording_validator(calls: list[str]) -> Callable[[str], bool]:
    """A permissive validator that records every value it is asked about."""

    def validator(value: str) -> bool:
        calls.append(value)
        return True

    return validator


@pytest.mark.parametrize(
    "serve",
    [pytest.param(serve_asgi, id="asgi"), pytest.param(serve_wsgi, id="wsgi")],
)
@pytest.mark.parametrize("occurrences", OVER_THE_FLOOR)
def test_values_over_1024_chars_never_reach_the_validator(
    serve: Callable[[Config, list[bytes]], AsgiSeen | WsgiSeen],
    occurrences: list[bytes],
) -> None:
    """A joined value over 1024 characters is rejected before the validator runs."""
    calls: list[str] = []
    config = config_for(recording_validator(calls))
    # Config asks the validator about each of the generator's samples.
    assert calls == ["gen-0"] * CONSTRUCTION_CALLS
    calls.clear()
    seen = serve(config, occurrences)
    assert calls == []
    assert seen.seen_id == GEN


@pytest.mark.parametrize(
    "serve",
    [pytest.param(serve_asgi, id="asgi"), pytest.param(serve_wsgi, id="wsgi")],
)
def test_value_of_exactly_1024_chars_reaches_the_validator(
    serve: Callable[[Config, list[bytes]], AsgiSeen | WsgiSeen],
) -> None:
    """At exactly 1024 characters the validator is asked, once, and may keep it."""
    calls: list[str] = []
    config = config_for(recording_validator(calls))
    calls.clear()
    seen = serve(config, [b"x" * 1024])
    assert calls == ["x" * 1024]
    assert seen.seen_id == "x" * 1024


# --- linear work, counted ---------------------------------------------------------


@contextmanager
def counting_calls() -> Iterator[list[int]]:
    """Count Python and C function calls in this thread while the block runs."""
    count = [0]

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event in ("call", "c_call"):
            count[0] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.setprofile(previous)


@dataclass
class Work:
    """The work one request cost: function calls and hook calls."""

    calls: int
    validator_calls: int
    generator_calls: int


def asgi_work(occurrences: list[bytes]) -> Work:
    """Count the calls the ASGI adapter makes to serve *occurrences*."""
    hooks = {"validator": 0, "generator": 0}

    def validator(value: str) -> bool:
        hooks["validator"] += 1
        return True

    def generator() -> str:
        hooks["generator"] += 1
        return "gen"

    config = Config(generator=generator, validator=validator)
    hooks.update(validator=0, generator=0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        return None

    middleware = asgi.RequestIdMiddleware(app, config=config)
    scope = http_scope([(WIRE, value) for value in occurrences])
    coroutine = middleware(scope, receive_empty_body, send)
    with counting_calls() as count:
        run_to_completion(coroutine)
    return Work(count[0], hooks["validator"], hooks["generator"])


def wsgi_work(occurrences: list[bytes]) -> Work:
    """Count the calls the WSGI adapter makes to serve *occurrences* joined."""
    hooks = {"validator": 0, "generator": 0}

    def validator(value: str) -> bool:
        hooks["validator"] += 1
        return True

    def generator() -> str:
        hooks["generator"] += 1
        return "gen"

    config = Config(generator=generator, validator=validator)
    hooks.update(validator=0, generator=0)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return [b""]

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Callable[[bytes], object]:
        return lambda data: None

    middleware = wsgi.RequestIdMiddleware(app, config=config)
    joined = ", ".join(value.decode("latin-1") for value in occurrences)
    environ = make_environ([(HEADER, joined)])
    with counting_calls() as count:
        body = middleware(environ, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return Work(count[0], hooks["validator"], hooks["generator"])


#: Hostile inputs of size *n*: (shape, n). Each is also measured at 10n.
SHAPES: dict[str, tuple[Callable[[int], list[bytes]], int]] = {
    "duplicates": (lambda n: [b"EVIL"] * n, 1_000),
    "crlf-duplicates": (lambda n: [b"EVIL\r\n"] * n, 1_000),
    "comma-dense-value": (lambda n: [b"EVIL," * n], 600),
    "long-value": (lambda n: [b"EVIL" + b"x" * n], 30_000),
    "long-crlf-value": (lambda n: [b"EVIL\r\n" * n], 5_000),
}

WORK = [
    pytest.param(asgi_work, id="asgi"),
    pytest.param(wsgi_work, id="wsgi"),
]


@pytest.mark.parametrize("measure", WORK)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_work_grows_at_most_linearly(
    measure: Callable[[list[bytes]], Work], shape: str
) -> None:
    """Ten times the hostile input costs at most ten times the calls, plus a little."""
    make, n = SHAPES[shape]
    measure(make(n))  # Warm up: first-call caches are not per-request work.
    small = measure(make(n))
    large = measure(make(10 * n))
    assert small.calls > 0
    assert large.calls <= 10 * small.calls + SLACK, (small, large)


@pytest.mark.parametrize("measure", WORK)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hooks_run_at_most_once_whatever_the_size(
    measure: Callable[[list[bytes]], Work], shape: str
) -> None:
    """However large the hostile input, the generator runs once, the validator never."""
    make, n = SHAPES[shape]
    for size in (n, 10 * n):
        work = measure(make(size))
        assert (work.validator_calls, work.generator_calls) == (0, 1), size
