"""How the id pipeline's cost grows with hostile input: a benchmark, not a test.

    python bench/hostile_scaling.py [--min-time SECONDS] [--repeat N]

Times the core pipeline (``join_header_values`` then ``resolve``)
and both adapters, served in process, for hostile id headers of growing size:
many duplicate headers, and one long value (plain, comma-dense, CR/LF-dense).
For each series it prints the time per request relative to the smallest size
measured in the same run, next to the size ratio. Linear growth shows as a
"time / size" column near or below 1; anything growing with the size is
superlinear. No absolute times are printed: they say more about the machine
than about the code. ``tests/adapters/test_hostile_input.py`` checks the
same inputs deterministically, by counting calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults

from adapters import asgi, wsgi
from correlation import Config
from correlation._ids import join_header_values, resolve

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from adapters._types import Message, Receive, Scope, Send

HEADER = "X-Request-ID"
WIRE = HEADER.lower().encode("ascii")
ENVIRON_KEY = "HTTP_" + HEADER.upper().replace("-", "_")

#: Each series: how to build the header occurrences for a size, and the sizes.
SERIES: dict[str, tuple[Callable[[int], list[bytes]], tuple[int, ...]]] = {
    "duplicate headers": (
        lambda n: [b"EVIL"] * n,
        (1_000, 10_000, 100_000),
    ),
    "long value": (
        lambda n: [b"EVIL" + b"x" * (n - 4)],
        (3_000, 30_000, 300_000, 3_000_000),
    ),
    "comma-dense value": (
        lambda n: [b"EVIL," * (n // 5)],
        (3_000, 30_000, 300_000, 3_000_000),
    ),
    "CR/LF-dense value": (
        lambda n: [b"EVIL\r\n" * (n // 6)],
        (3_000, 30_000, 300_000, 3_000_000),
    ),
}

CONFIG = Config()


# --- one request through each pipeline ---------------------------------------


def core_request(occurrences: list[bytes]) -> Callable[[], object]:
    """Return a call that runs the core pipeline on *occurrences*."""
    values = [value.decode("latin-1") for value in occurrences]

    def run() -> object:
        return resolve(CONFIG, join_header_values(values))

    return run


def _run_to_completion(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits on anything, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("the request waited on something")


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def _asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def asgi_request(occurrences: list[bytes]) -> Callable[[], object]:
    """Return a call that serves one ASGI request with *occurrences*."""
    middleware = asgi.RequestIdMiddleware(_asgi_app, config=CONFIG)
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(WIRE, value) for value in occurrences],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    def run() -> object:
        # The middleware copies the scope, so the same one serves every call.
        _run_to_completion(middleware(scope, _receive, _send))
        return None

    return run


def _wsgi_app(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _start_response(
    status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
) -> Callable[[bytes], object]:
    return lambda data: None


def wsgi_request(occurrences: list[bytes]) -> Callable[[], object]:
    """Return a call that serves one WSGI request, occurrences joined by ", "."""
    middleware = wsgi.RequestIdMiddleware(_wsgi_app, config=CONFIG)
    base: WSGIEnvironment = {"QUERY_STRING": ""}
    setup_testing_defaults(base)
    base[ENVIRON_KEY] = ", ".join(value.decode("latin-1") for value in occurrences)

    def run() -> object:
        # The middleware rewrites the header in place: a fresh environ each
        # time (a shallow copy, the same for every size).
        body = middleware(dict(base), _start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
        return None

    return run


PIPELINES: dict[str, Callable[[list[bytes]], Callable[[], object]]] = {
    "core": core_request,
    "asgi": asgi_request,
    "wsgi": wsgi_request,
}


# --- timing ---------------------------------------------------------------------


def seconds_per_call(run: Callable[[], object], min_time: float, repeat: int) -> float:
    """The best of *repeat* measurements, each at least *min_time* long."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
        loops *= 2
    best = elapsed / loops
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def main(argv: list[str] | None = None) -> int:
    """Time every series through every pipeline and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--min-time",
        type=float,
        default=0.05,
        help="seconds each measurement runs at least (default 0.05)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements per size; the best is kept (default 3)",
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    out.write(
        "Time per request relative to the smallest size in this run.\n"
        "time / size near or below 1 is linear or better.\n"
    )
    for series, (make, sizes) in SERIES.items():
        for pipeline, prepare in PIPELINES.items():
            out.write(f"\n{series}, {pipeline}\n")
            out.write(f"{'size':>12} {'size ratio':>11} {'time ratio':>11}")
            out.write(f" {'time / size':>12}\n")
            baseline: float | None = None
            for size in sizes:
                per_call = seconds_per_call(
                    prepare(make(size)), args.min_time, args.repeat
                )
                baseline = per_call if baseline is None else baseline
                size_ratio = size / sizes[0]
                time_ratio = per_call / baseline
                out.write(
                    f"{size:>12,} {size_ratio:>11.0f} {time_ratio:>11.2f}"
                    f" {time_ratio / size_ratio:>12.3f}\n"
                )
                out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
