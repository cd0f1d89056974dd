"""What the benchmark ran on (CPU, cores, load, versions), and saving a step."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

#: Distributions whose versions a report names.
PACKAGES = (
    "correlation-toolkit",
    "asgi-correlation-id",
    "flask-log-request-id",
    "django-guid",
    "django-log-request-id",
    "starlette",
    "flask",
    "werkzeug",
    "django",
    "asgiref",
    "uvicorn",
    "httptools",
    "uvloop",
    "waitress",
    "gunicorn",
    "pyperf",
)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """The installed version of each of *packages* (absent: none)."""
    found: dict[str, str] = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Run this thread, and the threads it starts meanwhile, on one CPU.

    A call handed to a worker thread and waited for took 17 µs of CPU time
    when both threads shared a core, and either that or twice that on two
    cores, depending on where the scheduler woke the worker (measured on a
    2-CPU machine): the difference of two such rows measured the scheduler,
    not the code. On one core the hand-off costs the same every time. Threads
    started inside stay on that CPU after it ends. Does nothing where the OS
    cannot pin threads (macOS, Windows).
    """
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def describe() -> dict[str, object]:
    """Everything a report says about the machine and the software."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "load_average": load_average(),
        "versions": versions(),
    }


def save(data: dict[str, object], out: Path, *, quiet: bool, render: str) -> None:
    """Write one step's results to *out* as JSON; print its section unless *quiet*.

    *render* names the ``report`` function that turns them into Markdown.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    if not quiet:
        report = importlib.import_module("report")
        print(getattr(report, render)(data))  # noqa: T201 (a benchmark reports)
