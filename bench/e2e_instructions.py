"""End to end, counted: each server's instructions per request, by valgrind.

``e2e.py`` measures throughput, and on a shared machine its loads differ by
more than the few per cent the target allows. This step counts instead: each
server runs under ``valgrind --tool=callgrind`` (its worker processes too), is
warmed up, has its counters zeroed (``callgrind_control -z``), serves
``--requests`` requests over one keep-alive connection, and has them dumped
(``callgrind_control -d``). The total over its processes, divided by the
requests, is what one request costs the server, the same number on every run.
For a server that is CPU-bound, throughput is the inverse, so bare ÷ ours is
the throughput ratio the target speaks of, free of the machine's noise (it
leaves out cache misses and system calls, as ``instructions.py`` does).

Apps: ``bare``, ``ours`` and ``reference`` as in ``e2e.py``, and ``echo``:
the bare app adding a constant ``X-Request-ID`` response header itself, which
prices what the server charges for the one header every request-id
middleware echoes. Needs valgrind (``apt-get install valgrind``)::

    python bench/e2e_instructions.py --out bench/results/e2e_instructions.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _machine
import e2e

HERE = Path(__file__).resolve().parent
APPS = ("bare", "echo", "ours", "reference")


def _control(option: str, pids: set[int]) -> None:
    """Run ``callgrind_control`` *option* on every process in *pids*."""
    for pid in sorted(pids):
        subprocess.run(
            ["callgrind_control", option, str(pid)],
            check=True,
            capture_output=True,
            timeout=120,
        )


def _summary(path: Path) -> int:
    """The instruction count callgrind wrote into a dump file."""
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def count(server: str, app: str, header: bool, warmup: int, requests: int) -> float:
    """Instructions per request of *server* serving *app*, all its processes."""
    with tempfile.TemporaryDirectory() as folder:
        prefix = [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={folder}/cg.%p",
        ]
        process = e2e.Server(server, app, prefix)
        try:
            process.wait_ready(timeout=300)
            # Under valgrind a server answers tens of times slower.
            e2e.client(process.port, header, math.inf, warmup, timeout=120)
            pids = e2e.family(process.process.pid, e2e.processes())
            _control("-z", pids)
            e2e.client(process.port, header, math.inf, requests, timeout=120)
            _control("-d", pids)
        finally:
            process.stop()
        dumps = [Path(folder, f"cg.{pid}.1") for pid in pids]
        return sum(_summary(path) for path in dumps if path.exists()) / requests


def run(args: argparse.Namespace) -> dict[str, object]:
    """Count every server, app and request kind."""
    rows = []
    for server in args.servers:
        for variant in e2e.VARIANTS:
            for app in APPS:
                print(f"  e2e instructions: {server}, {app}, {variant}", flush=True)
                per_request = count(
                    server, app, variant == "header", args.warmup, args.requests
                )
                rows.append(
                    {
                        "server": server,
                        "app": app,
                        "variant": variant,
                        "instructions": per_request,
                    }
                )
    return {
        "kind": "e2e_instructions",
        "machine": _machine.describe(),
        "tool": "valgrind --tool=callgrind, callgrind_control -z / -d",
        "servers": list(args.servers),
        "variants": list(e2e.VARIANTS),
        "apps": list(APPS),
        "warmup": args.warmup,
        "requests": args.requests,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: run, save, print."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    e2e.add_servers_option(parser)
    parser.add_argument("--warmup", type=int, default=200, help="requests")
    parser.add_argument("--requests", type=int, default=1000, help="counted")
    parser.add_argument("--quiet", action="store_true", help="print no table")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "e2e_instructions.json"
    )
    args = parser.parse_args(argv)
    missing = [t for t in ("valgrind", "callgrind_control") if not shutil.which(t)]
    if missing:
        print(f"skipped: {', '.join(missing)} not found (apt-get install valgrind)")
        return 0
    os.environ["PYTHONHASHSEED"] = "0"  # the servers inherit it: same dict layouts
    data = run(args)
    _machine.save(data, args.out, quiet=args.quiet, render="render_e2e_instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
