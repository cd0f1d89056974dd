"""Hostile id headers through both adapters: nothing reflected, nothing slow.

Every row of the hostile table (``hostile.HOSTILE``: CR/LF, bare CR, NUL,
escape sequences, DEL, 300 KB values, 10,000 duplicate headers...) goes
through the driver pair (``drivers``: ASGI, one header tuple per occurrence;
WSGI, one value joined with ``, ``, as servers do). The contract says a
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
from asgi_testing import counting_generator, http_scope, receive_empty_body
from drivers import DRIVERS, Request, Served, run_to_completion, serve_asgi
from hooks_testing import CONSTRUCTION_CALLS
from hostile import HOSTILE, MARKER, Hostile, hostile_params, select
from log_testing import correlation_logs
from wsgi_testing import make_environ

from adapters import asgi, wsgi
from correlation import Config, default_validator

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from adapters._types import Receive, Scope, Send

HEADER = "X-Request-ID"
WIRE = b"x-request-id"

#: What the counting generator gives the first request (``Config``'s
#: construction samples are all ``gen-0``).
GEN = "gen-1"

#: The work allowed beyond ten times the work for the smaller input.
SLACK = 50

#: Every row under the default rule; the rows the hard floor rejects also
#: under a validator that accepts anything.
HOSTILE_UNDER_VALIDATORS = [
    *(
        pytest.param(row, default_validator, id=f"{row.name}-default-rule")
        for row in select()
    ),
    *(
        pytest.param(row, lambda value: True, id=f"{row.name}-permissive")
        for row in select(fails_floor=True)
    ),
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


def config_for(
    validator: Callable[[str], bool], *, update_request_header: bool = True
) -> Config:
    """A config with a counting generator, so the replacement id is known."""
    return Config(
        generator=counting_generator(),
        validator=validator,
        update_request_header=update_request_header,
    )


# --- nothing reflected, nothing fails ---------------------------------------------


@pytest.mark.parametrize("serve", DRIVERS)
@pytest.mark.parametrize(("row", "validator"), HOSTILE_UNDER_VALIDATORS)
def test_hostile_header_reflected_nowhere(
    serve: Callable[[Config, Request], Served],
    row: Hostile,
    validator: Callable[[str], bool],
) -> None:
    """A hostile header yields a new id; no header, environ, state or log holds it."""
    with correlation_logs() as logs:
        served = serve(config_for(validator), Request(row.occurrences))
    assert served.seen_id == served.stored == GEN
    assert served.request_header == served.response_header == (GEN,)
    for text in served.texts():
        assert MARKER not in text, text[:200]
    assert_clean_logs(logs)


def test_asgi_server_sees_the_id_until_the_final_body() -> None:
    """ASGI: the server sees the new id at the start, not at the final body.

    The adapter hides the id from the server while it sends the final body
    (uvicorn issue 2167), also when the id replaced a hostile value.
    """
    (crlf,) = (row for row in HOSTILE if row.name == "crlf")
    served = serve_asgi(config_for(default_validator), Request(crlf.occurrences))
    assert served.server_ids == (GEN, None)


@pytest.mark.parametrize("serve", DRIVERS)
@pytest.mark.parametrize("row", hostile_params(fails_floor=True))
def test_unchanged_request_header_keeps_hostile_value_out_of_the_rest(
    serve: Callable[[Config, Request], Served], row: Hostile
) -> None:
    """update_request_header=False: the app's header is as sent, nothing else."""
    config = config_for(lambda value: True, update_request_header=False)
    with correlation_logs() as logs:
        served = serve(config, Request(row.occurrences))
    assert served.seen_id == served.stored == GEN
    assert served.response_header == (GEN,)
    if serve is serve_asgi:  # one header tuple per occurrence
        assert served.request_header == tuple(
            v.decode("latin-1") for v in row.occurrences
        )
    else:  # the one value the server joined them into
        assert served.request_header == (row.joined(),)
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


@pytest.mark.parametrize("serve", DRIVERS)
@pytest.mark.parametrize("occurrences", OVER_THE_FLOOR)
def test_values_over_1024_chars_never_reach_the_validator(
    serve: Callable[[Config, Request], Served],
    occurrences: list[bytes],
) -> None:
    """A joined value over 1024 characters is rejected before the validator runs."""
    calls: list[str] = []
    config = config_for(recording_validator(calls))
    # Config asks the validator about each of the generator's samples.
    assert calls == ["gen-0"] * CONSTRUCTION_CALLS
    calls.clear()
    seen = serve(config, Request(occurrences))
    assert calls == []
    assert seen.seen_id == GEN


@pytest.mark.parametrize("serve", DRIVERS)
def test_value_of_exactly_1024_chars_reaches_the_validator(
    serve: Callable[[Config, Request], Served],
) -> None:
    """At exactly 1024 characters the validator is asked, once, and may keep it."""
    calls: list[str] = []
    config = config_for(recording_validator(calls))
    calls.clear()
    seen = serve(config, Request([b"x" * 1024]))
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
