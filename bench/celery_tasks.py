"""What the Celery integration adds to Celery's own cost per task.

Two paths, each run three ways in the same run:

- **worker**: a task published to kombu's in-memory broker, taken off the
  queue and run by the worker's own ``Request.execute`` (what the solo pool
  runs per task), all in one thread, so that the count is repeatable. A real
  worker adds its event loop and consumer on top, which only makes the
  integration's share smaller;
- **eager**: ``task.apply()``.

The ways: **bare** (``disconnect()``: no receivers; the task published or
applied inside a ``bound_request_id`` block), **noop** (receivers that do
nothing on the same three signals, inside the block: what Celery charges for
dispatching its signals to anyone, the floor of any signal-based
integration), **unit** (``connect()``, inside the block: the id travels and
is bound) and **outside** (``connect()``, outside any unit of work: the
worker generates an id).

The cost is counted two ways. **Instructions** (valgrind's callgrind): each
row runs in a child process twice, with a small and a large number of tasks,
and the difference divided by the difference of the counts is the row's
instructions per task, start-up cancelled out. **CPU time**
(``time.process_time``): the ways alternate in rounds and each row's median
is taken. Issue 14's targets: at most 2 % of Celery's own per-task cost for
the worker path, 3 % for eager calls.

    python bench/celery_tasks.py --out bench/results/celery.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PATHS = ("worker", "eager")
WAYS = ("bare", "noop", "unit", "outside")
#: The most the integration may add, as a share of Celery's own cost.
LIMITS = {"worker": 0.02, "eager": 0.03}
#: Tasks in the two callgrind runs of a row.
COUNTS = (100, 600)
QUEUE = "bench-celery"


def _runner(path: str, way: str) -> Callable[[int], None]:
    """A function that runs *n* tasks along *path*, the *way* given."""
    from celery import Celery
    from celery.worker.request import Request

    from correlation import bound_request_id, get_request_id

    app = Celery("bench", broker="memory://", set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )

    @app.task(shared=False, name="bench.task")
    def bench_task() -> str | None:
        return get_request_id()

    # The task object itself, as a worker finds it: the decorator returns a
    # proxy, whose every attribute lookup costs more than the integration.
    app.finalize()
    task = app.tasks[bench_task.name]

    _set_way(way)
    inside = way != "outside"
    connection = app.connection_for_write()
    channel: Any = connection.default_channel
    task.apply_async()  # declare the queue, warm up the producer pool
    channel.basic_get(QUEUE, no_ack=True)

    # Publish (worker path) or run (eager path) one task.
    send = task.apply_async if path == "worker" else task.apply

    def one() -> None:
        if inside:
            with bound_request_id("bench-request-id"):
                send()
        else:
            send()
        if path == "worker":
            message = channel.basic_get(QUEUE, no_ack=True)
            Request(message, app=app, task=task).execute()

    def run(n: int) -> None:
        for _ in range(n):
            one()

    run(50)  # warm: tracers built, caches filled
    return run


def _child(path: str, way: str, n: int) -> None:
    _runner(path, way)(n)


def instructions(path: str, way: str, timeout: float) -> float:
    """Instructions per task for one row, start-up cancelled out."""
    sys.path.insert(0, str(HERE))
    from instructions import count_instructions

    totals = [
        count_instructions(
            [__file__, "--child", path, way, str(n)],
            what=f"{path}/{way} x{n}",
            timeout=timeout,
        )
        for n in COUNTS
    ]
    return (totals[1] - totals[0]) / (COUNTS[1] - COUNTS[0])


def cpu_times(rounds: int, tasks: int) -> dict[str, dict[str, float]]:
    """Median CPU seconds per task of each row, the ways alternating."""
    runners = {(p, w): _runner(p, w) for p in PATHS for w in WAYS}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            # Each runner connected or disconnected when it was made; the
            # receivers are process-wide, so set them again for this row.
            _set_way(key[1])
            start = time.process_time()
            run(tasks)
            samples[key].append((time.process_time() - start) / tasks)
    return {
        path: {way: statistics.median(samples[path, way]) for way in WAYS}
        for path in PATHS
    }


def _nothing(**_: object) -> None:
    """A receiver that does nothing: the floor."""


def _set_way(way: str) -> None:
    """Connect the receivers *way* runs with; they are process-wide."""
    from celery import signals

    from adapters.celery import connect, disconnect

    floor = (signals.before_task_publish, signals.task_prerun, signals.task_postrun)
    for signal in floor:
        signal.disconnect(dispatch_uid="bench-noop")
    if way in ("bare", "noop"):
        disconnect()
    else:
        connect()
    if way == "noop":
        for signal in floor:
            signal.connect(_nothing, weak=False, dispatch_uid="bench-noop")


def report(table: dict[str, dict[str, float]], unit: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for path in PATHS:
        row = table[path]
        bare = row["bare"]
        added = {way: (row[way] - bare) / bare for way in WAYS[1:]}
        met = all(added[way] <= LIMITS[path] for way in ("unit", "outside"))
        results[path] = {"per_task": row, "added": added, "limit": LIMITS[path]}
        print(
            f"{path:7} bare {bare:12.1f} {unit}  noop {added['noop']:+7.2%}"
            f"  unit {added['unit']:+7.2%}  outside {added['outside']:+7.2%}"
            f"  limit {LIMITS[path]:.0%}  {'met' if met else 'NOT met'}"
        )
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        path, way, n = argv[1:4]
        _child(path, way, int(n))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--instructions-only", action="store_true")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    print("instructions per task (callgrind)")
    counted = {
        path: {way: instructions(path, way, args.timeout) for way in WAYS}
        for path in PATHS
    }
    results["instructions"] = report(counted, "instr")
    if not args.instructions_only:
        print(f"CPU time per task (median of {args.rounds} rounds)")
        timed = cpu_times(args.rounds, args.tasks)
        micro = {p: {w: s * 1e6 for w, s in row.items()} for p, row in timed.items()}
        results["cpu_time_us"] = report(micro, "us")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
