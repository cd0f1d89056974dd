"""Import cost of ``import correlation, adapters.asgi``, and what it loads.

Starts the interpreter ``--repeat`` times with nothing to do and as many times
with the imports, alternating, each with ``python -X importtime``. Reports the
medians of three measures: the sum of the top-level cumulative import times
that ``-X importtime`` prints (the target's measure), the CPU time of the whole
child process, and its wall time; and, as the least disturbed estimate on a
busy machine, the smallest difference between neighbouring starts. Lists every
module the imports add to a bare start, the costliest of them, and whether one
of them belongs to a web framework or server.

    python bench/imports.py --out bench/results/imports.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import _machine

try:
    import resource
except ImportError:  # Windows: no child CPU times; the report says n/a
    resource = None  # type: ignore[assignment]

HERE = Path(__file__).resolve().parent
STATEMENT = "import correlation, adapters.asgi"

#: Top-level packages of web frameworks and servers: none may be imported.
FRAMEWORKS = frozenset(
    {
        "aiohttp",
        "anyio",
        "bottle",
        "django",
        "falcon",
        "fastapi",
        "flask",
        "gunicorn",
        "hypercorn",
        "pyramid",
        "quart",
        "sanic",
        "starlette",
        "tornado",
        "uvicorn",
        "waitress",
        "werkzeug",
    }
)


def _child_cpu_s() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    if resource is None:
        return math.nan
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class _Start:
    """One interpreter start: its cost and what ``-X importtime`` printed."""

    wall_ms: float
    cpu_ms: float
    importtime_ms: float
    #: name -> (self µs, cumulative µs), in import order.
    modules: dict[str, tuple[int, int]]


def _start(code: str) -> _Start:
    """Run ``python -X importtime -c code`` once and parse what it prints."""
    command = [sys.executable, "-X", "importtime", "-c", code]
    cpu0 = _child_cpu_s()
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall_ms = (time.perf_counter() - began) * 1000
    cpu_ms = (_child_cpu_s() - cpu0) * 1000
    total_us = 0
    modules: dict[str, tuple[int, int]] = {}
    for line in done.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package", the name
        # indented two spaces per nesting level.
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|", 2)
        name = name[1:]
        if not name.startswith(" "):
            total_us += int(cumulative)
        modules[name.strip()] = (int(own), int(cumulative))
    return _Start(wall_ms, cpu_ms, total_us / 1000, modules)


def _median_of(starts: list[_Start], attribute: str) -> float:
    return float(statistics.median(getattr(start, attribute) for start in starts))


def measure(repeat: int) -> dict[str, object]:
    """Alternate bare and importing starts; return medians and modules."""
    _start("pass")  # warm the OS file cache before the first measured start
    bare: list[_Start] = []
    loaded: list[_Start] = []
    for _ in range(repeat):
        bare.append(_start("pass"))
        loaded.append(_start(STATEMENT))
    seen_bare = {name for start in bare for name in start.modules}
    added = [name for name in loaded[-1].modules if name not in seen_bare]
    frameworks = sorted({name.partition(".")[0] for name in added} & FRAMEWORKS)
    # The costliest added modules, by median cumulative time: where to look.
    heaviest = sorted(
        (
            (
                name,
                statistics.median(s.modules[name][0] for s in loaded) / 1000,
                statistics.median(s.modules[name][1] for s in loaded) / 1000,
            )
            for name in added
            if all(name in s.modules for s in loaded)
        ),
        key=lambda item: -item[2],
    )[:12]
    result: dict[str, object] = {
        "kind": "imports",
        "statement": STATEMENT,
        "repeat": repeat,
        "machine": _machine.describe(),
        "load_after": _machine.load_average(),
        "added_modules": added,
        "frameworks": frameworks,
        "heaviest": heaviest,
    }
    for key, attribute in (
        ("wall", "wall_ms"),
        ("cpu", "cpu_ms"),
        ("importtime", "importtime_ms"),
    ):
        result[f"bare_{key}_ms"] = _median_of(bare, attribute)
        result[f"import_{key}_ms"] = _median_of(loaded, attribute)
        result[f"{key}_delta_ms"] = _median_of(loaded, attribute) - _median_of(
            bare, attribute
        )
        # Interference only ever adds time: the smallest difference of a pair
        # of neighbouring starts is the least disturbed estimate.
        result[f"{key}_delta_min_ms"] = min(
            getattr(w, attribute) - getattr(b, attribute)
            for b, w in zip(bare, loaded, strict=True)
        )
    result["delta_ms"] = result["importtime_delta_ms"]
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, save, print; exit 1 when the target fails."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quiet", action="store_true", help="print no table")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "imports.json")
    args = parser.parse_args(argv)
    data = measure(args.repeat)
    _machine.save(data, args.out, quiet=args.quiet, render="render_imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
