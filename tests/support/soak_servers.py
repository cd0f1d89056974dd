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

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from servers import (
    HOST,
    ProcessOutput,
    Running,
    await_serving,
    handed_socket,
    start_in_session,
    stop_process_group,
    subprocess_environment,
)

import correlation

__all__ = ["ServerKind", "ServerProcess", "cpu_seconds", "rss_kib", "serve_process"]

ServerKind = Literal["uvicorn", "waitress"]

_SUPPORT_DIR = Path(__file__).resolve().parent
#: Where this process imports ``correlation`` and ``adapters`` from (the
#: checkout, or an installed wheel): the server must run the same code.
_CODE_ROOT = Path(correlation.__file__).resolve().parents[1]
_PROBE_PATH = "/_diag"


@dataclass(frozen=True, kw_only=True)
class ServerProcess(Running):
    """The suite's server handle (``servers.Running``), and the server's process.

    Its ``log`` is everything the server wrote to stdout and stderr, also
    after it stopped.
    """

    kind: ServerKind
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The server's process id (no reloader, no workers: it serves)."""
        return self.process.pid


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
    environment = subprocess_environment(
        [str(_SUPPORT_DIR), str(_CODE_ROOT)],
        {
            # As in the test process (filterwarnings = error).
            "PYTHONWARNINGS": "error",
            "PYTHONUNBUFFERED": "1",
        },
    )
    with ProcessOutput(prefix=f"soak-{kind}-") as output:
        with handed_socket(backlog=1024) as (fd, port):
            process = start_in_session(
                _command(kind, fd, threads, http),
                output.file,
                env=environment,
                # ``python -m`` puts the working directory first on sys.path:
                # this folder, never the checkout's root.
                cwd=_SUPPORT_DIR,
                pass_fds=(fd,),
            )
        # The server holds its own copy of the listening socket now.
        server = ServerProcess(
            name=kind,
            url=f"http://{HOST}:{port}",
            log=output.read,
            in_process=False,
            kind=kind,
            process=process,
        )

        try:
            await_serving(
                kind,
                port,
                _PROBE_PATH,
                start_timeout,
                lambda: process.poll() is None,
                output.details,
                need_body=True,
            )
            yield server
        finally:
            # uvicorn re-raises the SIGTERM after a graceful shutdown.
            clean = {0, -signal.SIGTERM} if kind == "uvicorn" else {0}
            stop_process_group(
                process, kind, stop_timeout, output.details, clean_exits=clean
            )
