"""Run the whole benchmark suite: ``python bench/run.py``.

Makes (once) a virtual environment under ``.venv/bench-<python>`` for the
Python that runs this script, installs the project (editable, so the checkout
is what gets measured) and ``bench/requirements.txt`` into it, reinstalling
when either file changes, and runs with that environment's Python:

1. ``micro.py``: in-process cost per request of every candidate, with and
   without the header, the cost per streamed chunk, and what units of work
   outside requests cost (``_units.py``: ``bound_request_id``, carried calls,
   the carrying executor);
2. ``instructions.py``: the same rows' instructions per request, counted by
   valgrind (skipped when valgrind is missing): the noise-free cross-check;
   also the floor ladder (``_floor.py``), what each duty of the contract costs
   written inline, and what calling the core's seams for them costs;
3. ``imports.py``: what ``import correlation, adapters.asgi`` costs and loads;
4. ``e2e.py``: throughput of uvicorn, waitress and gunicorn with and without
   the adapter, under ``wrk`` (or a Python client when wrk is missing);
5. ``e2e_instructions.py``: the same servers' instructions per request,
   counted by valgrind (skipped when valgrind is missing): end to end, free
   of the machine's noise;
6. ``breakdown.py``: the core's seams and the public units of work timed
   alone, whole requests through the adapters, and cProfile;

then writes ``bench/results/report.md`` (``report.py``) and prints it.
``--quick`` runs shorter versions of each; ``--skip e2e,breakdown`` leaves
steps out; ``--check`` exits 1 when a target fails. It is not part of the
tests: the numbers depend on the machine, and take minutes.
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

import _machine
import report

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TAG = f"py{sys.version_info.major}.{sys.version_info.minor}"
STEPS = ("micro", "instructions", "imports", "e2e", "e2e_instructions", "breakdown")

#: Per step: the arguments of a full run, and of a --quick one.
ARGUMENTS: dict[str, tuple[list[str], list[str]]] = {
    "micro": ([], ["--processes", "2", "--rounds", "20"]),
    "instructions": ([], ["--groups", "asgi,wsgi,units"]),
    "imports": ([], ["--repeat", "8"]),
    "e2e": ([], ["--reps", "2", "--duration", "1", "--servers", "uvicorn,waitress"]),
    "e2e_instructions": (
        [],
        ["--warmup", "50", "--requests", "200", "--servers", "uvicorn,waitress"],
    ),
    "breakdown": ([], ["--number", "5000", "--repeat", "3", "--profile-loops", "5000"]),
}


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def bench_python() -> Path:
    """Return the benchmark venv's Python, creating or updating it first."""
    path = ROOT / ".venv" / f"bench-{TAG}"
    python = path / ("Scripts" if os.name == "nt" else "bin") / "python"
    inputs = [BENCH / "requirements.txt", ROOT / "pyproject.toml"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs)).hexdigest()
    stamp = path / "bench-installed.sha256"
    if not python.exists():
        venv.EnvBuilder(clear=True, with_pip=True).create(path)
    if not stamp.exists() or stamp.read_text() != digest:
        _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(
            python, "-m", "pip", "install", "--quiet",
            "-r", BENCH / "requirements.txt", "-e", ROOT,
        )  # fmt: skip
        stamp.write_text(digest)
    return python


def main(argv: list[str]) -> int:
    """Command line: set up, run the steps, report."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument(
        "--skip",
        type=lambda text: text.split(","),
        default=[],
        help=f"comma-separated steps to leave out: {','.join(STEPS)}",
    )
    parser.add_argument(
        "--no-venv",
        action="store_true",
        help="use this Python as it is (it must have the requirements)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 on a FAIL")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)

    python = Path(sys.executable) if args.no_venv else bench_python()
    args.results.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    for step in STEPS:
        if step in args.skip:
            continue
        load = _machine.load_average()
        print(f"== {step} (load average {load}, {cpus} CPUs)", flush=True)
        if load and load[0] > cpus / 2:
            print("   the machine is busy: expect noisy numbers", flush=True)
        full, quick = ARGUMENTS[step]
        _run(
            python,
            BENCH / f"{step}.py",
            *(quick if args.quick else full),
            "--quiet",
            "--out",
            args.results / f"{step}.json",
        )
    text = report.render_all(args.results)
    (args.results / "report.md").write_text(text)
    print(text)
    print(f"Saved: {args.results / 'report.md'}")
    failed = [label for label, passed in report.all_targets(args.results) if not passed]
    if failed:
        print("Targets failing: " + "; ".join(failed))
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
