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
import contextvars
import cProfile
import io
import json
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
    headers = [*micro._ASGI_HEADERS, (b"x-request-id", VALUE.encode())]
    scope = {**micro._ASGI_SCOPE, "headers": headers, "state": {}}
    name = b"x-request-id"

    def scan_headers() -> object:
        # The shape of the ASGI adapter's loop: every header, lowercased.
        found = []
        kept = []
        for item in headers:
            if item[0].lower() == name:
                found.append(item[1])
            else:
                kept.append(item)
        return found

    def bind_unbind() -> None:
        _context.unbind(_context.bind_request_id(VALUE))

    async def send(message: Message) -> None:
        return None

    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
    }

    start_response = micro._start_response
    wrapped_start = wsgi._id_start_response(
        start_response, "X-Request-ID", "x-request-id", VALUE
    )
    wsgi_headers = [("Content-Type", "text/plain"), ("Content-Length", "2")]
    environ = dict(micro._WSGI_ENVIRON)
    context = contextvars.copy_context()
    body = [b"ok"]

    def body_one_chunk() -> None:
        # Bound inside the request's context, as the adapter does.
        binding = context.run(_context.bind_request_id, VALUE)
        wrapped = wsgi._Body(body, iter(body), context, binding)
        for _chunk in wrapped:
            pass
        wrapped.close()

    return {
        "ASGI: scan 6 request headers (the adapter's loop shape)": scan_headers,
        "ASGI: dict(scope) copy": lambda: dict(scope),
        "ASGI: bytes.decode('latin-1') of the value": lambda: VALUE.encode().decode(
            "latin-1"
        ),
        "core: join_header_values([value])": lambda: _ids.join_header_values([VALUE]),
        "core: passes_floor(value)": lambda: _ids.passes_floor(VALUE),
        "core: default_validator(value) (regex)": lambda: _ids.default_validator(VALUE),
        "core: resolve_request_id(config, value), whole pipeline": lambda: (
            _config.resolve_request_id(config, VALUE)
        ),
        "core: resolve_request_id(config, None), generates": lambda: (
            _config.resolve_request_id(config, None)
        ),
        "core: generate_id() (os.urandom(16).hex())": _ids.generate_id,
        "for comparison: uuid.uuid4().hex": lambda: uuid.uuid4().hex,
        "core: current_binding()": _context.current_binding,
        "core: bind_request_id + unbind": bind_unbind,
        "ASGI: _send_with_id(...) closure creation": lambda: asgi._send_with_id(
            send, name, b"x", True
        ),
        "ASGI: _receive_without_id(...) closure creation": lambda: (
            asgi._receive_without_id(send)  # type: ignore[arg-type]
        ),
        "ASGI: _with_header(start message)": lambda: asgi._with_header(
            start, name, VALUE.encode()
        ),
        "WSGI: contextvars.copy_context()": contextvars.copy_context,
        "WSGI: context.run(empty function)": lambda: context.run(_empty),
        "WSGI: _id_start_response(...) closure creation": lambda: (
            wsgi._id_start_response(
                start_response, "X-Request-ID", "x-request-id", VALUE
            )
        ),
        "WSGI: the wrapped start_response, 2 headers": lambda: wrapped_start(
            "200 OK", wsgi_headers
        ),
        "WSGI: _is_file_wrapper(environ, body)": lambda: wsgi._is_file_wrapper(
            environ, body
        ),
        "WSGI: bind + _Body over 1 chunk, iterate, close": body_one_chunk,
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1))
    if not args.quiet:
        import report

        print(report.render_breakdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
