"""Instructions per request, counted by valgrind: a noise-free cross-check.

CPU time on a shared machine drifts and jitters by more than the overheads
being compared, most of all in the Flask and Django rows, where one request
costs a hundred microseconds and the middleware a few. Instruction counts do
not depend on what else the machine is doing: ``valgrind --tool=callgrind``
counts the instructions a process executes, the same count for the same
program and input (the approach CodSpeed's CPU simulation takes).

Each in-process row of ``micro.py`` (not the streaming ones) runs in a child
process under callgrind twice, serving a small and then a large number of
requests after the same set-up; the difference of the two totals divided by
the difference of the request counts is the row's instructions per request,
start-up and imports cancelled out. Overheads and their ratios follow as in
``micro.py``. The ``asgi`` and ``wsgi`` groups also count the rungs of the
floor ladder (``_floor.py``: the contract's duties inline, one by one, then
the same duties through the core's seams), and the ``units`` group counts
units of work outside requests (``_units.py``) per unit instead of per
request.

Instructions are not time: they leave out cache misses, which is where a
middleware inside a framework loses most (see the Performance page). The
targets are judged on CPU time; this step says whether a ratio's digits can
be trusted. It needs valgrind (``apt-get install valgrind``) and takes a few
minutes::

    python bench/instructions.py --out bench/results/instructions.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _apps
import _floor
import _machine
import _units
from _harness import Case

HERE = Path(__file__).resolve().parent
GROUPS = ("asgi", "wsgi", "flask", "django", "units")

#: Requests served in the two runs of a row, per group: the framework rows
#: cost ten times more per request, so they serve ten times fewer.
COUNTS = {"asgi": (2000, 12000), "wsgi": (2000, 12000), "units": (2000, 12000)}
FRAMEWORK_COUNTS = (200, 1200)

#: The groups that also count the rungs of ``_floor.py``, and their duties.
FLOORS = {"asgi": _floor.ASGI_DUTIES, "wsgi": _floor.WSGI_DUTIES}


def floor_cases(group: str, loop: asyncio.AbstractEventLoop) -> list[Case]:
    """The rungs of ``_floor.py`` as rows of the ``asgi`` or ``wsgi`` group."""
    import micro

    cases = []
    for variant, header in micro._variants():
        if group == "asgi":
            for candidate, _, duties in _floor.ladder(_floor.ASGI_DUTIES):
                app = _floor.FloorASGI(_apps.asgi_bare, duties)
                driver = micro._AsgiDriver(loop, app, header=header)
                cases.append(micro._case(group, candidate, variant, driver))
        else:
            for candidate, _, duties in _floor.ladder(_floor.WSGI_DUTIES):
                wsgi_app = _floor.FloorWSGI(_apps.wsgi_bare, duties)
                wsgi_driver = micro._WsgiDriver(wsgi_app, header=header)
                cases.append(micro._case(group, candidate, variant, wsgi_driver))
    return cases


def child(group: str, name: str, loops: int) -> None:
    """Build *group*'s rows as micro.py does, then serve *loops* of *name*."""
    import micro

    loop = asyncio.new_event_loop()
    builders = {
        "asgi": lambda: micro.build_asgi(loop) + floor_cases("asgi", loop),
        "wsgi": lambda: micro.build_wsgi() + floor_cases("wsgi", loop),
        "flask": micro.build_flask,
        "django": micro.build_django,
        "units": _units.build_units,
    }
    (case,) = [case for case in builders[group]() if case.name == name]
    if case.before is not None:
        case.before()
    case.run(50)  # warm up: the adaptive interpreter specialises here
    gc.collect()
    gc.freeze()
    case.run(loops)
    if case.after is not None:
        case.after()
    loop.close()


def _count(group: str, name: str, loops: int) -> int:
    """Instructions of one child process under callgrind."""
    return count_instructions(
        [__file__, "--child", group, name, str(loops)], what=name, timeout=600
    )


def count_instructions(arguments: list[str], *, what: str, timeout: float) -> int:
    """Instructions of ``python *arguments*`` run under callgrind."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, *arguments]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd=HERE,
        timeout=timeout,
        # A fixed hash seed: with random ones, dict probing differs between
        # the two runs of a row by up to a thousand instructions per request.
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run of {what} failed:\n{done.stderr[-2000:]}")
    return int(found[1])


def _row_names(group: str) -> list[str]:
    """The names of *group*'s rows that ``micro.py`` measures, streams left out."""
    import micro

    if group == "units":
        return [f"units/{name}/{_units.VARIANT}" for name in _units.ROWS]
    variants = [variant for variant, _ in micro._variants()]
    candidates = {
        "asgi": [
            "bare",
            "reference",
            "ours",
            micro.FALLBACKS_ROW,
            "asgi-correlation-id",
        ],
        "wsgi": ["bare", "reference", "ours", micro.FALLBACKS_ROW],
        "flask": ["bare", "reference", "ours", "flask-log-request-id"],
        "django": [
            "bare",
            "reference",
            "ours",
            micro.DJANGO_MIDDLEWARE_ROW,
            "django-guid",
            "django-log-request-id",
        ],
    }[group]
    if group in FLOORS:
        candidates += [name for name, _, _ in _floor.ladder(FLOORS[group])]
    return [f"{group}/{c}/{v}" for v in variants for c in candidates]


def run(groups: list[str], jobs: int) -> dict[str, object]:
    """Count every row of *groups*, *jobs* callgrind processes at a time."""
    tasks = []
    for group in groups:
        small, large = COUNTS.get(group, FRAMEWORK_COUNTS)
        tasks += [(group, name, small, large) for name in _row_names(group)]

    def measure(task: tuple[str, str, int, int]) -> dict[str, object]:
        group, name, small, large = task
        print(f"  instructions: {name}", flush=True)
        low, high = _count(group, name, small), _count(group, name, large)
        _, candidate, variant = name.split("/")
        return {
            "group": group,
            "candidate": candidate,
            "variant": variant,
            "requests": [small, large],
            "instructions": [low, high],
            "per_request": (high - low) / (large - small),
        }

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(measure, tasks))
    return {
        "kind": "instructions",
        "machine": _machine.describe(),
        "tool": "valgrind --tool=callgrind",
        "rows": {f"{r['group']}/{r['candidate']}/{r['variant']}": r for r in rows},
        # The rungs and what each adds, so that report.py (which runs without
        # the project installed) needs no import of _floor.
        "floors": {
            group: [[name, adds] for name, adds, _ in _floor.ladder(duties)]
            for group, duties in FLOORS.items()
            if group in groups
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: count, save, print."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--groups", type=lambda t: t.split(","), default=list(GROUPS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quiet", action="store_true", help="print no table")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "instructions.json"
    )
    parser.add_argument("--child", nargs=3, metavar=("GROUP", "ROW", "LOOPS"))
    args = parser.parse_args(argv)
    if args.child:
        group, name, loops = args.child
        child(group, name, int(loops))
        return 0
    if shutil.which("valgrind") is None:
        print("no valgrind, so no instruction counts (apt-get install valgrind)")
        args.out.unlink(missing_ok=True)  # no stale counts in the next report
        return 0
    data = run(args.groups, args.jobs)
    _machine.save(data, args.out, quiet=args.quiet, render="render_instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
