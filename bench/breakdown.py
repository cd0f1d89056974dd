"""Where our adapters spend their time: each part timed alone, and cProfile.

A hint for optimising, not a target: each seam of the core that the adapters
call per request, each public unit of work (a ``bound_request_id`` block, a
carried call, a carrying executor) and whole requests through the public
middleware are called in a tight loop (``timeit``, process time, best of
several repeats, minus the cost of calling an empty function), after what
they replace or add to; four whole requests are profiled with ``cProfile``. Only the
seams and public names are reached, never an adapter's private helper, and a
component that fails fails the run.

    python bench/breakdown.py --out bench/results/breakdown.json
"""

# A benchmark reports to a person on stdout.

from __future__ import annotations

import argparse
import asyncio
import atexit
import concurrent.futures
import contextlib
import cProfile
import functools
import io
import os
import pstats
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path

import _apps
import _machine
import micro

from adapters import asgi, wsgi
from correlation import _config, _context, _ids, bound_request_id, threads

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
    """The parts of the request path and of units of work, each as one call.

    Only the core's seams (``correlation._context``, ``correlation._ids``) and
    public names are reached: the adapters' private helpers may change shape
    at any time, the seams are what every adapter and integration calls.
    """
    config = _config.Config()
    dashed = str(uuid.UUID(VALUE))

    def begin_end() -> None:
        _context.end(_context.begin(VALUE, "asgi"))

    def hide_restore() -> None:
        _context.restore(_context.hide())

    def block_with_value() -> None:
        with bound_request_id(VALUE):
            pass

    def block_generated() -> None:
        with bound_request_id():
            pass

    def empty_block() -> None:
        with contextlib.nullcontext():
            pass

    def plain() -> None:
        return None

    decorated = bound_request_id()(plain)
    with bound_request_id(VALUE):
        carried = threads.carry(plain)

    return {
        "core: resolve(config, 32-hex value), the fast path": lambda: _ids.resolve(
            config, VALUE
        ),
        "core: resolve(config, UUID with dashes)": lambda: _ids.resolve(config, dashed),
        "core: resolve(config, 'a b'), rejected, generates": lambda: _ids.resolve(
            config, "a b"
        ),
        "core: resolve(config, None), generates": lambda: _ids.resolve(config, None),
        "for comparison: uuid.uuid4().hex": lambda: uuid.uuid4().hex,
        "for comparison: os.urandom(16).hex()": lambda: os.urandom(16).hex(),
        "core: generate_id() (batched os.urandom)": _ids.generate_id,
        "core: begin + end": begin_end,
        "core: outer_binding(None, True), nothing bound": lambda: (
            _context.outer_binding(None, True)
        ),
        "core: hide + restore": hide_restore,
        "core: join_header_values([value])": lambda: _ids.join_header_values([VALUE]),
        "core: passes_floor(value)": lambda: _ids.passes_floor(VALUE),
        "core: default_validator(value)": lambda: _ids.default_validator(VALUE),
        "for comparison: an empty with block (contextlib.nullcontext)": empty_block,
        "public: with bound_request_id(value): pass": block_with_value,
        "public: with bound_request_id(): pass (generates)": block_generated,
        "for comparison: a plain call": plain,
        "public: a @bound_request_id() function's call": decorated,
        "public: a carried call (carry(fn)())": carried,
    }


def _executor_components() -> dict[str, Callable[[], object]]:
    """One warm worker each: a plain submit, and the toolkit's carrying one.

    Both in a ``bound_request_id`` block, so that the difference is what
    carrying adds per submit. Build and time them inside
    ``_machine.one_cpu()``: the workers start here, on the caller's CPU.
    """
    stock = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    ours = threads.ThreadPoolExecutor(max_workers=1)
    atexit.register(stock.shutdown)
    atexit.register(ours.shutdown)

    def plain() -> None:
        return None

    stock.submit(plain).result()
    ours.submit(plain).result()

    def stock_submit() -> None:
        with bound_request_id(VALUE):
            stock.submit(plain).result()

    def ours_submit() -> None:
        with bound_request_id(VALUE):
            ours.submit(plain).result()

    return {
        "for comparison: concurrent.futures submit(fn).result(), in a block": (
            stock_submit
        ),
        "public: threads.ThreadPoolExecutor submit(fn).result(), in a block": (
            ours_submit
        ),
    }


def _requests() -> dict[str, Callable[[], object]]:
    """Whole requests through the public middleware, bare apps, one each."""
    loop = asyncio.new_event_loop()
    atexit.register(loop.close)
    parts: dict[str, Callable[[], object]] = {}
    for header in (True, False):
        kind = "header" if header else "generated"
        bare = micro._AsgiDriver(loop, _apps.asgi_bare, header=header)
        ours = micro._AsgiDriver(
            loop, asgi.RequestIdMiddleware(_apps.asgi_bare), header=header
        )
        parts[f"for comparison: ASGI bare app, {kind}"] = functools.partial(bare.run, 1)
        parts[f"ASGI: a request through the middleware, {kind}"] = functools.partial(
            ours.run, 1
        )
        wsgi_bare = micro._WsgiDriver(_apps.wsgi_bare, header=header)
        wsgi_ours = micro._WsgiDriver(
            wsgi.RequestIdMiddleware(_apps.wsgi_bare), header=header
        )
        parts[f"for comparison: WSGI bare app, {kind}"] = functools.partial(
            wsgi_bare.run, 1
        )
        parts[f"WSGI: a request through the middleware, {kind}"] = functools.partial(
            wsgi_ours.run, 1
        )
    return parts


def _empty() -> None:
    return None


def components(number: int, repeat: int) -> dict[str, float]:
    """Time each component, in ns per call less an empty call's.

    A component that fails makes the step fail: a renamed seam must be
    noticed, not reported as missing.
    """
    baseline = _ns(_empty, number, repeat)

    def timed(parts: dict[str, Callable[[], object]]) -> dict[str, float]:
        return {
            name: max(0.0, _ns(function, number, repeat) - baseline)
            for name, function in parts.items()
        }

    times = timed(_components())
    # A submit hands the call to a worker thread: see _machine.one_cpu.
    with _machine.one_cpu():
        times.update(timed(_executor_components()))
    times.update(timed(_requests()))
    return times


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
    # Longest first: a parent directory would leave its child's name behind.
    prefixes = {str(Path(p).parent) + "/" for p in sys.path if p}
    for prefix in sorted(prefixes, key=len, reverse=True):
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
    data: dict[str, object] = {
        "kind": "breakdown",
        "machine": _machine.describe(),
        "components": components(args.number, args.repeat),
        "profiles": profiles(args.profile_loops),
    }
    _machine.save(data, args.out, quiet=args.quiet, render="render_breakdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
