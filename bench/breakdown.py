"""Where our adapters spend their time: each part timed alone, and cProfile.

A hint for optimising, not a target: each component of the adapters' request
path is called in a tight loop (``timeit``, process time, best of several
repeats, minus the cost of calling an empty function), and four whole requests
are profiled with ``cProfile``. The components are reached through the
adapters' private names; one that has been renamed or removed is reported as
``n/a`` rather than failing the run.

    python bench/breakdown.py --out bench/results/breakdown.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import io
import os
import pstats
import sys
import time
import timeit
import typing
import uuid
from collections.abc import Callable
from pathlib import Path

import _apps
import _machine
import micro

from adapters import asgi, wsgi
from correlation import _config, _context, _ids

if typing.TYPE_CHECKING:
    from adapters._types import Message

HERE = Path(__file__).resolve().parent
VALUE = micro.HEADER_VALUE


def _ns(function: Callable[[], object], number: int, repeat: int) -> float:
    """Best of *repeat* runs of *number* calls, in ns per call.

    The best, not the median, as ``timeit`` advises: other processes can only
    make a tight loop slower, and these parts are timed for comparison only.
    """
    timer = timeit.Timer(function, timer=time.process_time)
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def _components() -> dict[str, Callable[[], object]]:
    """The parts of the request path, each as a zero-argument call."""
    config = _config.Config()
    raw = VALUE.encode()
    headers = [*micro._ASGI_HEADERS, (b"x-request-id", raw)]
    scope = {**micro._ASGI_SCOPE, "headers": headers, "state": {}}
    name = b"x-request-id"
    header = (name, raw)

    def scan_headers() -> object:
        # The shape of the ASGI adapter's loop: every header, the length
        # first, lowercased only when it matches and the bytes differ.
        found = None
        name_len = len(name)
        for item in headers:
            key = item[0]
            if len(key) == name_len and (key == name or key.lower() == name):
                found = item
        return found

    def bind_unbind() -> None:
        # As the ASGI adapter does it: _context.bind and unbind, inlined.
        request = asgi._Request()
        request.request_id = VALUE
        request._token = _context.set_binding(request)
        request.request_id = None
        _context.reset_binding(request._token)

    def hide_restore() -> None:
        _context.reset_binding(_context.set_binding(None))

    async def send(message: Message) -> None:
        return None

    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
    }
    last: Message = {"type": "http.response.body", "body": b"ok"}
    owner = asgi._Request()
    owner.send_ = send
    owner.header = header

    def send_start() -> None:
        owner.send(start).close()  # type: ignore[attr-defined]

    def send_last() -> None:
        # The final body: a coroutine that hides the id around the server's.
        coroutine = owner.send(last)
        with contextlib.suppress(StopIteration):
            coroutine.send(None)  # type: ignore[attr-defined]

    start_response = micro._start_response
    wsgi_request = wsgi._Request()
    wsgi_request.start_response_ = start_response
    wsgi_request.header = ("X-Request-ID", VALUE)
    wsgi_request.name_lower = "x-request-id"
    wsgi_headers = [("Content-Type", "text/plain"), ("Content-Length", "2")]
    environ = dict(micro._WSGI_ENVIRON)
    body = [b"ok"]

    def body_one_chunk() -> None:
        request = wsgi._Request()
        request.request_id = VALUE
        context = contextvars.copy_context()
        context.run(_context.set_binding, request)
        wrapped = wsgi._Body(body, iter(body), context, request)
        for _chunk in wrapped:
            pass
        wrapped.close()

    return {
        "ASGI: scan 6 request headers (the adapter's loop shape)": scan_headers,
        "ASGI: scope.copy()": scope.copy,
        "ASGI: default_accepts_bytes(raw value)": lambda: _ids.default_accepts_bytes(
            raw
        ),
        "ASGI: raw value .decode('ascii')": lambda: raw.decode("ascii"),
        "core: join_header_values([value])": lambda: _ids.join_header_values([VALUE]),
        "core: passes_floor(value)": lambda: _ids.passes_floor(VALUE),
        "core: default_validator(value)": lambda: _ids.default_validator(VALUE),
        "core: resolve_request_id(config, value), whole pipeline": lambda: (
            _ids.resolve_request_id(config, VALUE)
        ),
        "core: resolve_request_id(config, None), generates": lambda: (
            _ids.resolve_request_id(config, None)
        ),
        "core: generate_id() (batched os.urandom)": _ids.generate_id,
        "for comparison: os.urandom(16).hex()": lambda: os.urandom(16).hex(),
        "for comparison: uuid.uuid4().hex": lambda: uuid.uuid4().hex,
        "core: current_binding()": _context.current_binding,
        "ASGI: _Request() + bind + unbind": bind_unbind,
        "core: hide the id and restore it (set_binding/reset_binding)": hide_restore,
        "ASGI: _Request.send(start), header added": send_start,
        "ASGI: _Request.send(final body), id hidden": send_last,
        "WSGI: _Request.start_response, 2 headers": lambda: wsgi_request.start_response(
            "200 OK", wsgi_headers
        ),
        "WSGI: _is_file_wrapper(environ, body)": lambda: wsgi._is_file_wrapper(
            environ, body
        ),
        "WSGI: copy_context() + bind in it + _Body over 1 chunk, iterate, close": (
            body_one_chunk
        ),
    }


def _empty() -> None:
    return None


def components(number: int, repeat: int) -> dict[str, float | None]:
    """Time each component; ``None`` for one the adapters no longer have."""
    baseline = _ns(_empty, number, repeat)
    results: dict[str, float | None] = {}
    try:
        parts = _components()
    except (AttributeError, TypeError) as exc:
        print(f"  breakdown: private names changed ({exc}); components skipped")
        return results
    for name, function in parts.items():
        try:
            results[name] = max(0.0, _ns(function, number, repeat) - baseline)
        except Exception as exc:  # a renamed private helper, say
            print(f"  breakdown: {name}: {exc!r}")
            results[name] = None
    return results


def _profile(run: Callable[[int], None], loops: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    run(loops)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(14)
    text = out.getvalue()
    # Keep the table, drop pstats' preamble and make paths short.
    table = text[text.find("   ncalls") :].rstrip()
    for prefix in {str(Path(p).parent) + "/" for p in sys.path if p}:
        table = table.replace(prefix, "")
    return table


def profiles(loops: int) -> dict[str, str]:
    """cProfile of whole requests through our adapters over the bare apps."""
    loop = asyncio.new_event_loop()
    try:
        results = {}
        for header in (True, False):
            kind = "header" if header else "generated"
            driver = micro._AsgiDriver(
                loop, asgi.RequestIdMiddleware(_apps.asgi_bare), header=header
            )
            results[f"ASGI ours, {kind}"] = _profile(driver.run, loops)
        wsgi_driver = micro._WsgiDriver(
            wsgi.RequestIdMiddleware(_apps.wsgi_bare), header=True
        )
        results["WSGI ours, header, list body"] = _profile(wsgi_driver.run, loops)
        stream_driver = micro._WsgiDriver(
            wsgi.RequestIdMiddleware(_apps.make_wsgi_stream(1)), header=True
        )
        results[
            "WSGI ours, header, generator body of 1 chunk (Flask's and Django's path)"
        ] = _profile(stream_driver.run, loops)
        return results
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: time the components, profile, save, print."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile-loops", type=int, default=20000)
    parser.add_argument("--quiet", action="store_true", help="print no table")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "breakdown.json")
    args = parser.parse_args(argv)
    data = {
        "kind": "breakdown",
        "machine": _machine.describe(),
        "components": components(args.number, args.repeat),
        "profiles": profiles(args.profile_loops),
    }
    _machine.save(data, args.out, quiet=args.quiet, render="render_breakdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
