"""End to end: throughput of real servers with and without the adapter.

Runs uvicorn (``_apps:asgi_bare`` and ``_apps:asgi_ours``), waitress and
gunicorn's threaded worker (``_apps:wsgi_bare`` and ``_apps:wsgi_ours``), one
server process per app, on 127.0.0.1, and drives them with a bounded load
generator: ``wrk`` with one thread and a fixed number of keep-alive
connections for a fixed time when it is installed (``apt-get install wrk``),
otherwise a Python client with two processes. For each server, the bare app's,
our app's and the reference middleware's servers run side by side, and short
loads alternate between them, the order reversed every other round (bare,
ours, reference, reference, ours, bare, ...), ``--reps`` loads each, with the
``X-Request-ID`` header and without it, so the machine's drift falls on all
alike. The report gives the ratio of median throughputs, adapter over bare,
and the reference's for scale: the least a request-id middleware costs there.

    python bench/e2e.py --out bench/results/e2e.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _machine
from _apps import HEADER_VALUE

HERE = Path(__file__).resolve().parent
VARIANTS = ("header", "generated")
APPS = ("bare", "ours", "reference")
SERVERS = ("uvicorn", "waitress", "gunicorn")


# waitress-serve, minus the "Task queue depth" warning it logs for each request
# that waits for a thread: under a load generator that is most of them.
_WAITRESS = (
    "import logging, sys, waitress.runner;"
    " logging.getLogger('waitress.queue').setLevel(logging.ERROR);"
    " waitress.runner.run(argv=sys.argv)"
)


def _pinning() -> tuple[list[str], list[str]]:
    """``taskset`` prefixes that put the server and the load generator apart.

    With two CPUs or more and ``taskset`` installed, every server runs on the
    first CPU this process may use and ``wrk`` on the second, so the two do not
    take turns on one core and the throughput is the server's own. Otherwise
    both prefixes are empty.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


SERVER_PIN, CLIENT_PIN = _pinning()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(server: str, app: str, port: int) -> list[str]:
    """The command line that serves ``_apps:<protocol>_<app>`` on *port*."""
    python = sys.executable
    if server == "uvicorn":
        return [
            python, "-m", "uvicorn", f"_apps:asgi_{app}",
            "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning", "--lifespan", "off",
        ]  # fmt: skip
    if server == "waitress":
        return [
            python, "-c", _WAITRESS, f"--listen=127.0.0.1:{port}",
            "--threads=4", f"_apps:wsgi_{app}",
        ]  # fmt: skip
    if server == "gunicorn":
        return [
            python, "-m", "gunicorn", f"_apps:wsgi_{app}",
            "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--worker-class", "gthread", "--threads", "4",
            "--log-level", "warning",
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}")


def _get(port: int, header: bool) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"X-Request-ID": HEADER_VALUE} if header else {}
    connection.request("GET", "/", headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


class Server:
    """A server subprocess, started and stopped by this benchmark only."""

    def __init__(self, server: str, app: str, prefix: list[str] | None = None) -> None:
        """Start it; *prefix* goes before the command (default: the CPU pin)."""
        self.port = _free_port()
        env = dict(os.environ, PYTHONPATH=str(HERE))
        # A file, not a pipe: a server that logs more than a pipe holds while
        # nobody reads it would block.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [
                *(SERVER_PIN if prefix is None else prefix),
                *server_command(server, app, self.port),
            ],
            env=env,
            cwd=HERE,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.app = app

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until it answers, and check the adapter is (not) in front."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self._log.seek(0)
                stderr = self._log.read().decode(errors="replace")
                raise RuntimeError(f"server exited:\n{stderr}")
            try:
                response = _get(self.port, header=True)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        echoed = response.getheader("X-Request-ID")
        if response.status != 200 or (echoed == HEADER_VALUE) != (self.app != "bare"):
            raise RuntimeError(f"unexpected answer: {response.status}, {echoed!r}")

    def stop(self) -> None:
        """Ask the server to stop (SIGINT, as Ctrl-C); kill it if it will not."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


# --- load generators ---------------------------------------------------------


def _wrk(
    port: int, header: bool, duration: float, connections: int
) -> tuple[float, int]:
    command = [
        *CLIENT_PIN,
        # wrk takes whole seconds only ("1.5s" is a usage error).
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--timeout", "5s",
    ]  # fmt: skip
    if header:
        command += ["-H", f"X-Request-ID: {HEADER_VALUE}"]
    command.append(f"http://127.0.0.1:{port}/")
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", done.stdout)
    if errors:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    count = re.search(r"(\d+) requests in", done.stdout)
    if rate is None or count is None:
        raise RuntimeError(f"cannot read wrk's output:\n{done.stdout}")
    return float(rate[1]), int(count[1])


def client(
    port: int,
    header: bool,
    deadline: float,
    requests: int | None = None,
    timeout: float = 5.0,
) -> int:
    """One keep-alive connection, requests back to back until *deadline*.

    With *requests*, it stops after that many (e2e_instructions.py's counts).
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"X-Request-ID": HEADER_VALUE} if header else {}
    count = 0
    while count != requests and time.monotonic() < deadline:
        connection.request("GET", "/", headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        count += 1
    connection.close()
    return count


def _python_load(
    port: int, header: bool, duration: float, connections: int
) -> tuple[float, int]:
    with multiprocessing.Pool(connections) as pool:
        deadline = time.monotonic() + duration
        counts = pool.starmap(client, [(port, header, deadline)] * connections)
    return sum(counts) / duration, sum(counts)


def processes() -> dict[int, tuple[int, float]]:
    """Every process: its parent, and the CPU seconds it used (Linux only)."""
    found: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        found[int(entry.name)] = (int(fields[1]), cpu)
    return found


def family(pid: int, processes: dict[int, tuple[int, float]]) -> set[int]:
    """*pid* and its descendants among *processes* (a server and its workers)."""
    members = {pid}
    grew = True
    while grew:
        grew = False
        for child, (parent, _) in processes.items():
            if parent in members and child not in members:
                members.add(child)
                grew = True
    return members


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by *pid* and its descendants (Linux only).

    Throughput on a shared machine mostly measures what the other processes
    left over; the server's own CPU time per request does not, so the report
    gives both.
    """
    try:
        found = processes()
    except (OSError, ValueError, AttributeError):
        return math.nan
    return sum(found.get(m, (0, 0.0))[1] for m in family(pid, found))


# --- the run -----------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, object]:
    """Serve and load every server and app in ABBA order; collect req/s."""
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    if use_wrk:
        connections = args.connections
        client = f"wrk, 1 thread, {connections} keep-alive connections"
        if CLIENT_PIN:
            client += (
                f"; servers pinned to CPU {SERVER_PIN[-1]} and wrk to CPU"
                f" {CLIENT_PIN[-1]} (taskset)"
            )

        def load(port: int, header: bool, duration: float) -> tuple[float, int]:
            return _wrk(port, header, duration, connections)

    else:
        connections = min(args.connections, 2)
        client = (
            f"Python http.client, {connections} processes with one keep-alive"
            " connection each (wrk not found: less sensitive, the client is slow)"
        )

        def load(port: int, header: bool, duration: float) -> tuple[float, int]:
            return _python_load(port, header, duration, connections)

    machine = _machine.describe()
    runs: list[dict[str, object]] = []
    for server in args.servers:
        print(f"  e2e: {server}")
        sys.stdout.flush()
        # The apps are served at once, each by its own server process; only
        # the one under load uses CPU. Alternating short loads between them
        # (ABBA) puts the machine's drift on all alike.
        servers = {app: Server(server, app) for app in APPS}
        try:
            for process in servers.values():
                process.wait_ready()
            for process in servers.values():
                load(process.port, True, args.warmup)
            for rep in range(args.reps):
                order = APPS if rep % 2 == 0 else APPS[::-1]
                for variant in VARIANTS:
                    for app in order:
                        pid = servers[app].process.pid
                        cpu0 = _tree_cpu_s(pid)
                        rps, count = load(
                            servers[app].port, variant == "header", args.duration
                        )
                        cpu_us = (_tree_cpu_s(pid) - cpu0) * 1e6 / max(count, 1)
                        runs.append(
                            {
                                "server": server,
                                "app": app,
                                "variant": variant,
                                "rep": rep,
                                "rps": rps,
                                "server_cpu_us": cpu_us,
                            }
                        )
        finally:
            for process in servers.values():
                process.stop()
    return {
        "kind": "e2e",
        "machine": machine,
        "load_after": _machine.load_average(),
        "client": client,
        "servers": list(args.servers),
        "variants": list(VARIANTS),
        "reps": args.reps,
        "duration_s": args.duration,
        "runs": runs,
    }


def add_servers_option(parser: argparse.ArgumentParser) -> None:
    """``--servers``: which of SERVERS to run (this step's and e2e_instructions')."""
    parser.add_argument(
        "--servers",
        type=lambda text: text.split(","),
        default=list(SERVERS),
        help=f"comma-separated subset of {','.join(SERVERS)}",
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: run, save, print."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    add_servers_option(parser)
    parser.add_argument("--reps", type=int, default=6, help="ABBA: even is fairer")
    parser.add_argument(
        "--duration", type=float, default=2.0, help="seconds (whole ones with wrk)"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--python-client", action="store_true", help="skip wrk")
    parser.add_argument("--quiet", action="store_true", help="print no table")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "e2e.json")
    args = parser.parse_args(argv)
    data = run(args)
    _machine.save(data, args.out, quiet=args.quiet, render="render_e2e")
    return 0


if __name__ == "__main__":
    sys.exit(main())
