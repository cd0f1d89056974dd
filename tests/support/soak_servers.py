"""Long-lived server subprocesses for the soak test, and their memory.

Not a test module. ``serve_process`` runs one server as a separate process,
so its resident memory can be read from ``/proc/<pid>/status``
(``rss_kib``) without touching the test process:

- ``"uvicorn"``: ``python -m soak_apps uvicorn``, the ASGI app;
- ``"waitress"``: ``python -m soak_apps waitress``, the WSGI app.

The port is never guessed: this process binds 127.0.0.1 on an OS-chosen
port, listens and hands the descriptor over (``--fd N``), so requests queue
until the server accepts them. Readiness is polled against a deadline; on
exit the server gets SIGTERM, must exit within a timeout (or its process
group is killed and ``RuntimeError`` raised), and must have exited cleanly.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import correlation

__all__ = ["ServerKind", "ServerProcess", "cpu_seconds", "rss_kib", "serve_process"]

ServerKind = Literal["uvicorn", "waitress"]

_HOST = "127.0.0.1"
_SUPPORT_DIR = Path(__file__).resolve().parent
#: Where this process imports ``correlation`` and ``adapters`` from (the
#: checkout, or an installed wheel): the server must run the same code.
_CODE_ROOT = Path(correlation.__file__).resolve().parents[1]
_POLL_INTERVAL = 0.02
_PROBE_PATH = "/_diag"


@dataclass(frozen=True)
class ServerProcess:
    """A running server: its process, base URL and how to read its output."""

    kind: ServerKind
    process: subprocess.Popen[bytes]
    url: str
    output_path: str
    #: The server's whole output, filled in once it has stopped (the file
    #: behind *output_path* is gone by then).
    final_output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The server's process id (no reloader, no workers: it serves)."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The port the server listens on, on 127.0.0.1."""
        return int(self.url.rsplit(":", 1)[1])

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        if self.final_output:
            return self.final_output[0]
        with open(self.output_path, "rb") as file:
            return file.read().decode("utf-8", "replace")


def rss_kib(pid: int) -> int:
    """Return the resident set size of process *pid*, in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                value, unit = line.split()[1:3]
                if unit != "kB":
                    raise ValueError(f"unexpected VmRSS unit in {line!r}")
                return int(value)
    raise ValueError(f"no VmRSS line in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """Return the CPU time process *pid* has used so far (user + system)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The fields after the parenthesised command name; utime and stime
        # are the 14th and 15th fields of the whole line.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _command(kind: ServerKind, fd: int, threads: int, http: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "soak_apps",
        kind,
        "--fd",
        str(fd),
        "--threads",
        str(threads),
        "--http",
        http,
    ]


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection(_HOST, port, timeout=2.0)
    try:
        connection.request("GET", _PROBE_PATH)
        return connection.getresponse().read() != b""
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def serve_process(
    kind: ServerKind,
    *,
    threads: int = 4,
    http: str = "h11",
    start_timeout: float = 30.0,
    stop_timeout: float = 15.0,
) -> Iterator[ServerProcess]:
    """Run a *kind* server in a subprocess for the length of the block.

    *threads* is waitress's worker count; *http* uvicorn's HTTP protocol.
    Yields once ``GET /_diag`` is answered. On exit the server must stop
    within *stop_timeout* seconds of SIGTERM, its process group must be gone,
    and it must have exited with status 0 (waitress) or by the SIGTERM it
    re-raised after a graceful shutdown (uvicorn); otherwise ``RuntimeError``
    says why, with the server's output.
    """
    paths = [str(_SUPPORT_DIR), str(_CODE_ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        # As in the test process (filterwarnings = error).
        "PYTHONWARNINGS": "error",
        "PYTHONUNBUFFERED": "1",
    }
    with tempfile.NamedTemporaryFile(prefix=f"soak-{kind}-") as output:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind((_HOST, 0))
            listener.listen(1024)
            port = listener.getsockname()[1]
            fd = listener.fileno()
            process = subprocess.Popen(
                _command(kind, fd, threads, http),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
                env=environment,
                # ``python -m`` puts the working directory first on sys.path:
                # this folder, never the checkout's root.
                cwd=_SUPPORT_DIR,
                start_new_session=True,
            )
        # The server holds its own copy of the listening socket now.
        server = ServerProcess(kind, process, f"http://{_HOST}:{port}", output.name)
        try:
            deadline = time.monotonic() + start_timeout
            while not _answers(port):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{kind} exited ({process.returncode}) before it served;"
                        f" its output:\n{server.output()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{kind} did not answer within {start_timeout} s;"
                        f" its output:\n{server.output()}"
                    )
                time.sleep(_POLL_INTERVAL)
            yield server
        finally:
            try:
                _stop(server, stop_timeout)
            finally:
                server.final_output.append(server.output())


def _stop(server: ServerProcess, timeout: float) -> None:
    """SIGTERM the server and wait for it; kill its group on a timeout."""
    process = server.process
    # start_new_session: the server leads a process group, id == pid.
    group = process.pid
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        process.wait(timeout)
        raise RuntimeError(
            f"{server.kind} did not exit within {timeout} s of SIGTERM; killed;"
            f" its output:\n{server.output()}"
        ) from None
    if _group_alive(group):
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        raise RuntimeError(f"{server.kind} left processes behind; killed them")
    clean = {0, -signal.SIGTERM} if server.kind == "uvicorn" else {0}
    if process.returncode not in clean:
        raise RuntimeError(
            f"{server.kind} exited with status {process.returncode};"
            f" its output:\n{server.output()}"
        )
