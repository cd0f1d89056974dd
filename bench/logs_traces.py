"""What the logging and tracing integrations add to their library's own cost.

One operation per library, each the least the library does for one event:

- **structlog**: ``log.info("bench event", user="alice")`` on a bound logger
  from ``make_filtering_bound_logger(INFO)``, rendered by ``JSONRenderer()``
  (the only other processor) and written by a ``WriteLogger`` to
  ``os.devnull``; ``add_request_id`` goes before the renderer;
- **loguru**: ``logger.info("bench event", user="alice")`` (the keyword is
  captured into ``extra``), one sink, ``os.devnull``, with the format
  ``"{level} {message} {extra}"``, so that every key of ``extra`` is
  rendered, the id too when there is one; ``patcher`` installed with
  ``logger.configure(patcher=...)``;
- **opentelemetry**: ``tracer.start_span("bench span").end()`` on an SDK
  ``TracerProvider`` with a ``SimpleSpanProcessor`` over an exporter whose
  ``export`` does nothing: the span's start and end and the export call, all
  in the calling thread (a ``BatchSpanProcessor`` hands spans to a thread,
  whose work would be counted or not depending on when it wakes). A provider
  with no processor at all would be cheaper, but no deployment runs one: a
  span nobody exports is not recorded for anyone. A span made current
  (``with tracer.start_as_current_span(...)``) costs a quarter more, which
  only makes the integration's share smaller;
- **sentry**: ``sentry_sdk.capture_message("bench message")`` after
  ``sentry_sdk.init()`` with a DSN and a ``Transport`` subclass whose
  ``capture_envelope`` does nothing. The default integrations are on but for
  ``ModulesIntegration``, and no auto-enabling ones: both would make the
  count depend on what the environment holds (the modules integration puts
  every installed distribution in every event: 15 of them cost 400k
  instructions per event here, a quarter of it; an application with hundreds
  pays more, which only makes the integration's share smaller).

Each runs five ways, each in its own process:

- **bare**: no integration, the operations inside a ``bound_request_id``
  block;
- **noop**: a processor (structlog), patcher (loguru), ``SpanProcessor``
  (OpenTelemetry) or global event processor (Sentry) that does nothing, at
  the integration's extension point, inside the block: what the library
  charges for having one;
- **floor**: the same, setting the key, attribute or tag to a constant: the
  least any integration at that point does, the key's rendering included;
- **unit**: with the integration, inside the block (the id is added);
- **outside**: with the integration, outside any unit of work (structlog,
  OpenTelemetry and Sentry add nothing, loguru adds ``"-"``).

The cost is counted in instructions (valgrind's callgrind): each row runs in
a child process twice, with a small and a large number of operations after
the same set-up and warm-up, and the difference of the two totals divided by
the difference of the counts is the row's instructions per operation,
start-up cancelled out. There is no CPU-time step: the differences judged
are a few per cent, within what CPU time jitters by on a shared machine
(``outbound.py`` found ±5 %). Issue 15's targets: the
integration adds at most 5 % of structlog's and loguru's own cost per event,
3 % of a span's start and end, 2 % of a captured Sentry event. It takes about
two and a half minutes on two CPUs::

    python bench/logs_traces.py --out bench/results/logs_traces.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LIBRARIES = ("structlog", "loguru", "opentelemetry", "sentry")
WAYS = ("bare", "noop", "floor", "unit", "outside")
#: The most each integration may add, as a share of its library's own cost.
LIMITS = {"structlog": 0.05, "loguru": 0.05, "opentelemetry": 0.03, "sentry": 0.02}
#: Operations in the two callgrind runs of a row: a Sentry event costs more
#: than ten times a log event or a span, so it runs ten times fewer.
COUNTS = {
    "structlog": (500, 3000),
    "loguru": (500, 3000),
    "opentelemetry": (500, 3000),
    "sentry": (50, 300),
}
#: What each library's row counts, for the table.
OPERATIONS = {
    "structlog": "an event, JSON to a null sink",
    "loguru": "a record to a null sink",
    "opentelemetry": "a span's start and end, no-op exporter",
    "sentry": "`capture_message`, null transport",
}
#: The distributions whose versions the results name.
PACKAGES = ("structlog", "loguru", "opentelemetry-sdk", "sentry-sdk")
REQUEST_ID = "bench-request-id"


def _structlog(way: str) -> Callable[[], None]:
    """One structlog event per call, *way*'s processor before the renderer."""
    import logging

    import structlog

    from adapters.structlog import add_request_id

    def noop(logger: Any, method_name: str, event_dict: Any) -> Any:
        return event_dict

    def floor(logger: Any, method_name: str, event_dict: Any) -> Any:
        event_dict["request_id"] = REQUEST_ID
        return event_dict

    extra = {"bare": [], "noop": [noop], "floor": [floor]}.get(way, [add_request_id])
    sink = open(os.devnull, "w")  # noqa: SIM115 - open for the process's life
    structlog.configure(
        processors=[*extra, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )
    # The bound logger itself, not the lazy proxy get_logger() returns, whose
    # every attribute lookup would add to the library's cost.
    log = structlog.get_logger().bind()

    def one() -> None:
        log.info("bench event", user="alice")

    return one


def _loguru(way: str) -> Callable[[], None]:
    """One loguru record per call, *way*'s patcher installed."""
    from loguru import logger

    from adapters.loguru import patcher

    def noop(record: Any) -> None:
        pass

    def floor(record: Any) -> None:
        record["extra"]["request_id"] = REQUEST_ID

    chosen = {"bare": None, "noop": noop, "floor": floor}.get(way, patcher)
    logger.remove()
    sink = open(os.devnull, "w")  # noqa: SIM115 - open for the process's life
    logger.add(sink, format="{level} {message} {extra}", colorize=False)
    logger.configure(patcher=chosen)

    def one() -> None:
        logger.info("bench event", user="alice")

    return one


def _opentelemetry(way: str) -> Callable[[], None]:
    """One SDK span started and ended per call, *way*'s processor added."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from adapters.opentelemetry import RequestIdSpanProcessor

    class NullExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class FloorProcessor(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            span.set_attribute("request_id", REQUEST_ID)

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    if way != "bare":
        # The SDK's SpanProcessor is itself a processor that does nothing.
        extra = {"noop": SpanProcessor, "floor": FloorProcessor}
        provider.add_span_processor(extra.get(way, RequestIdSpanProcessor)())
    tracer = provider.get_tracer("bench")

    def one() -> None:
        tracer.start_span("bench span").end()

    return one


def _sentry(way: str) -> Callable[[], None]:
    """One Sentry message captured per call, *way*'s event processor added."""
    import sentry_sdk
    from sentry_sdk.integrations.modules import ModulesIntegration
    from sentry_sdk.scope import add_global_event_processor
    from sentry_sdk.transport import Transport

    from adapters.sentry import install

    class NullTransport(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            pass

    def noop(event: Any, hint: Any) -> Any:
        return event

    def floor(event: Any, hint: Any) -> Any:
        event.setdefault("tags", {})["request_id"] = REQUEST_ID
        return event

    sentry_sdk.init(
        dsn="https://key@sentry.invalid/1",
        transport=NullTransport,
        auto_enabling_integrations=False,
        disabled_integrations=[ModulesIntegration()],
    )
    if way in ("noop", "floor"):
        add_global_event_processor(noop if way == "noop" else floor)
    elif way != "bare":
        install()

    def one() -> None:
        sentry_sdk.capture_message("bench message")

    return one


BUILDERS: dict[str, Callable[[str], Callable[[], None]]] = {
    "structlog": _structlog,
    "loguru": _loguru,
    "opentelemetry": _opentelemetry,
    "sentry": _sentry,
}


def runner(library: str, way: str) -> Callable[[int], None]:
    """A function doing *n* of *library*'s operations, set up *way*."""
    from correlation import bound_request_id

    one = BUILDERS[library](way)

    def run(n: int) -> None:
        unit: AbstractContextManager[object] = (
            nullcontext() if way == "outside" else bound_request_id(REQUEST_ID)
        )
        with unit:
            for _ in range(n):
                one()

    return run


def child(library: str, way: str, n: int) -> None:
    """Under callgrind: set up, warm up, then do *n* operations."""
    run = runner(library, way)
    run(200)  # warm up: the adaptive interpreter specialises, caches fill
    gc.collect()
    gc.freeze()
    run(n)


def _count(library: str, way: str, n: int, timeout: float) -> int:
    from instructions import count_instructions

    arguments = [__file__, "--child", library, way, str(n)]
    return count_instructions(arguments, what=f"{library}/{way} x{n}", timeout=timeout)


def instructions(libraries: list[str], jobs: int, timeout: float) -> dict[str, float]:
    """Instructions per operation of every row, *jobs* callgrind runs at a time."""
    tasks = [(library, way) for library in libraries for way in WAYS]

    def measure(task: tuple[str, str]) -> float:
        library, way = task
        small, large = COUNTS[library]
        few, many = (_count(library, way, n, timeout) for n in (small, large))
        per_operation = (many - few) / (large - small)
        print(f"  instructions: {library}/{way} {per_operation:,.0f}", flush=True)
        return per_operation

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        counted = pool.map(measure, tasks)
        return {f"{lib}/{way}": n for (lib, way), n in zip(tasks, counted, strict=True)}


def report(rows: dict[str, float], libraries: list[str]) -> list[str]:
    """Each library's own cost, then what each way adds, and the verdict."""
    lines = [
        "| library | bare (instructions) | noop | floor | ours | ours outside a unit"
        " | limit | ours over floor | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for library in libraries:
        bare = rows[f"{library}/bare"]

        def added(way: str, bare: float = bare, library: str = library) -> float:
            return (rows[f"{library}/{way}"] - bare) / bare

        def cell(way: str, bare: float = bare, library: str = library) -> str:
            return f"{rows[f'{library}/{way}'] - bare:+,.0f} ({added(way):+.2%})"

        limit = LIMITS[library]
        met = max(added("unit"), added("outside")) <= limit
        over = (rows[f"{library}/unit"] - rows[f"{library}/floor"]) / bare
        lines.append(
            f"| {library}: {OPERATIONS[library]} | {bare:,.0f} | {cell('noop')} |"
            f" {cell('floor')} | {cell('unit')} | {cell('outside')} |"
            f" ≤ {limit:.0%} | {over:+.2%} | {'met' if met else 'NOT met'} |"
        )
    return lines


def versions() -> dict[str, str]:
    """Python's and the measured libraries' versions."""
    from _machine import versions as installed

    python = {platform.python_implementation(): platform.python_version()}
    return {**python, **installed(PACKAGES)}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        library, way, n = argv[1:4]
        child(library, way, int(n))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--libraries", type=lambda text: text.split(","), default=list(LIBRARIES)
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "logs_traces.json"
    )
    args = parser.parse_args(argv)
    unknown = set(args.libraries) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries: {', '.join(sorted(unknown))}")
    if shutil.which("valgrind") is None:
        print("no valgrind, so no instruction counts (apt-get install valgrind)")
        return 1
    sys.path.insert(0, str(HERE))
    measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    started = time.monotonic()
    rows = instructions(args.libraries, args.jobs, args.timeout)
    data: dict[str, Any] = {
        "measured": measured,
        "seconds": round(time.monotonic() - started),
        "versions": versions(),
        "tool": "valgrind --tool=callgrind",
        "counts": {library: COUNTS[library] for library in args.libraries},
        "limits": {library: LIMITS[library] for library in args.libraries},
        "instructions": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    named = ", ".join(f"{name} {version}" for name, version in data["versions"].items())
    text = [
        "## Logs and traces: what each integration adds per operation",
        "",
        f"{measured}, {named}; {data['seconds']} s.",
        "",
        "Instructions per operation (callgrind), added over bare:",
        "",
        *report(rows, args.libraries),
    ]
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
