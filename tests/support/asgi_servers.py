"""Live ASGI servers for the server-matrix tests: real sockets on 127.0.0.1.

Not a test module. Each ``serve_*`` function is a context manager that runs
one server for the length of a ``with`` block and yields a ``Live`` with its
address and a way to read its log:

- ``serve_uvicorn_thread``: uvicorn in a background thread of this process,
  with the asyncio loop and either HTTP parser, as ASGI or as WSGI host
  (``interface="wsgi"``: uvicorn wraps the app with a2wsgi);
- ``serve_hypercorn``: hypercorn's asyncio server in a background thread;
- ``serve_daphne``: daphne in a subprocess, on a socket handed over
  (``--fd N``);
- ``serve_gunicorn_uvicorn``: gunicorn with one ``uvicorn_worker.UvicornWorker``
  in a subprocess, on a socket handed over (``--bind fd://N``);
- ``serve_granian``: granian in a subprocess. Its command line cannot take a
  socket, so a free port is picked and the start retried on a conflict.

Start-up is awaited by polling an HTTP request against a deadline, never with
a fixed sleep. On exit every server is stopped within a bounded time: a thread
must end (else ``RuntimeError``); a subprocess gets SIGTERM, and its whole
process group is killed if it or any child outlives the timeout (then
``RuntimeError`` too), so no server outlives the ``with`` block unnoticed.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import hypercorn.asyncio
import hypercorn.config
import uvicorn

__all__ = [
    "HOST",
    "Live",
    "serve_daphne",
    "serve_granian",
    "serve_gunicorn_uvicorn",
    "serve_hypercorn",
    "serve_uvicorn_thread",
]

HOST = "127.0.0.1"
_SUPPORT_DIR = Path(__file__).resolve().parent
_PROJECT_ROOT = _SUPPORT_DIR.parents[1]
_POLL_INTERVAL = 0.01
#: How long one start-up probe may wait for its response.
_PROBE_TIMEOUT = 2.0
#: Granian's start is retried this often when its port was taken meanwhile.
_GRANIAN_ATTEMPTS = 3


@dataclass(frozen=True)
class Live:
    """A running server: where it listens and what it has logged so far."""

    name: str
    port: int
    read_log: Callable[[], str]
    #: The process serving requests is this test process.
    in_process: bool

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) pair to connect a raw socket to."""
        return HOST, self.port


def _deadline_poll(
    condition: Callable[[], bool], timeout: float, failure: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise RuntimeError(failure())
        time.sleep(_POLL_INTERVAL)


def _answers_http(port: int, path: str) -> bool:
    """Return whether ``GET path`` on *port* gets any HTTP response."""
    connection = http.client.HTTPConnection(HOST, port, timeout=_PROBE_TIMEOUT)
    try:
        connection.request("GET", path)
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def _await_serving(
    name: str,
    port: int,
    probe_path: str,
    timeout: float,
    alive: Callable[[], bool],
    log: Callable[[], str],
) -> None:
    """Probe until the server answers; fail fast if it died, or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"{name} exited before it served; its log:\n{log()}")
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{name} did not answer GET {probe_path} within {timeout} s;"
                f" its log:\n{log()}"
            )
        if _answers_http(port, probe_path):
            return
        time.sleep(_POLL_INTERVAL)


class _LogCapture(logging.Handler):
    """Keeps formatted records, tracebacks (and exception notes) included."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def text(self) -> str:
        return "\n".join(self.lines)


# --- in-process servers --------------------------------------------------------


@contextmanager
def serve_uvicorn_thread(
    app: Any,
    *,
    http: Literal["h11", "httptools"],
    interface: Literal["asgi3", "wsgi"] = "asgi3",
    lifespan: Literal["on", "off"] = "on",
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[Live]:
    """Serve *app* with uvicorn (asyncio loop) in a thread of this process.

    uvicorn's error log (``uvicorn.error``, where it reports an exception
    that escaped the app) is captured for ``Live.read_log``; uvicorn is not
    asked to configure logging (``log_config=None``).
    """
    capture = _LogCapture()
    error_logger = logging.getLogger("uvicorn.error")
    error_logger.addHandler(capture)
    config = uvicorn.Config(
        app,
        host=HOST,
        port=0,
        http=http,
        loop="asyncio",
        interface=interface,
        lifespan=lifespan,
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(int(stop_timeout / 2), 1),
    )
    server = uvicorn.Server(config)
    name = f"uvicorn-{http}" + ("-wsgi" if interface == "wsgi" else "")
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        _deadline_poll(
            lambda: server.started or not thread.is_alive(),
            start_timeout,
            lambda: f"{name} did not start within {start_timeout} s",
        )
        if not thread.is_alive():
            raise RuntimeError(f"{name} exited before it started: {capture.text()}")
        sockets = [sock for srv in server.servers for sock in srv.sockets]
        port = int(sockets[0].getsockname()[1])
        _await_serving(name, port, probe_path, start_timeout, thread.is_alive, str)
        yield Live(name, port, capture.text, in_process=True)
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        error_logger.removeHandler(capture)
        if thread.is_alive():
            server.force_exit = True
            thread.join(stop_timeout)
            raise RuntimeError(f"{name} did not stop within {stop_timeout} s")


@contextmanager
def serve_hypercorn(
    app: Any,
    *,
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[Live]:
    """Serve the ASGI *app* with hypercorn's asyncio server in a thread.

    This process binds the listening socket and hands its descriptor over
    (``fd://N``); hypercorn owns and closes it. Its error log, where it
    reports an exception that escaped the app, goes to a logger of its own
    that is captured for ``Live.read_log``.
    """
    capture = _LogCapture()
    error_logger = logging.getLogger("asgi_servers.hypercorn.error")
    error_logger.addHandler(capture)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(128)
    port = int(listener.getsockname()[1])
    config = hypercorn.config.Config()
    config.bind = [f"fd://{listener.detach()}"]
    config.errorlog = error_logger
    config.accesslog = None
    config.graceful_timeout = max(stop_timeout / 2, 1.0)
    ready = threading.Event()
    control: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        control.append((asyncio.get_running_loop(), stop))
        ready.set()
        await hypercorn.asyncio.serve(
            app, config, shutdown_trigger=stop.wait, mode="asgi"
        )

    thread = threading.Thread(
        target=asyncio.run, args=(main(),), name="hypercorn-test-server", daemon=True
    )
    thread.start()
    try:
        if not ready.wait(start_timeout):
            raise RuntimeError("hypercorn's loop did not start")
        _await_serving(
            "hypercorn", port, probe_path, start_timeout, thread.is_alive, capture.text
        )
        yield Live("hypercorn", port, capture.text, in_process=True)
    finally:
        if control:
            loop, stop = control[0]
            with suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop.set)
        thread.join(stop_timeout)
        error_logger.removeHandler(capture)
        if thread.is_alive():
            raise RuntimeError(f"hypercorn did not stop within {stop_timeout} s")


# --- subprocess servers ----------------------------------------------------------


def _environment() -> dict[str, str]:
    paths = [str(_SUPPORT_DIR), str(_PROJECT_ROOT)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONUNBUFFERED": "1",
    }


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(group: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    """SIGTERM *process*, then wait for it and its group; kill all on a timeout."""
    # start_new_session: the process leads a group of its own, id == pid.
    group = process.pid
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    problem = None
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        problem = f"{name} did not exit within {timeout} s of SIGTERM"
    deadline = time.monotonic() + timeout
    while _group_alive(group) and problem is None:
        if time.monotonic() >= deadline:
            problem = f"{name} left processes running after it exited"
        time.sleep(_POLL_INTERVAL)
    if problem is not None:
        _kill_group(group)
        process.wait(timeout)
        raise RuntimeError(f"{problem}; its process group was killed")


@contextmanager
def _subprocess(
    name: str,
    command: Sequence[str],
    port: int,
    log_path: Path,
    *,
    pass_fds: Sequence[int] = (),
    probe_path: str,
    start_timeout: float,
    stop_timeout: float,
) -> Iterator[Live]:
    def read_log() -> str:
        return log_path.read_bytes().decode("utf-8", "replace")

    # O_APPEND: the server's writes always land at the end, whatever is read.
    with open(log_path, "ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=tuple(pass_fds),
            env=_environment(),
            cwd=_PROJECT_ROOT,
            start_new_session=True,
        )
    try:
        _await_serving(
            name,
            port,
            probe_path,
            start_timeout,
            lambda: process.poll() is None,
            read_log,
        )
        yield Live(name, port, read_log, in_process=False)
    finally:
        _stop(process, name, stop_timeout)


@contextmanager
def _handed_socket() -> Iterator[tuple[int, int]]:
    """A listening socket on 127.0.0.1: yields (fd, port) to hand to a server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(128)
        yield listener.fileno(), int(listener.getsockname()[1])


@contextmanager
def serve_daphne(
    target: str,
    *,
    probe_path: str = "/",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Live]:
    """Serve *target* (``module:attribute``) with daphne in a subprocess."""
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        log_path = Path(folder, "daphne.log")
        with _handed_socket() as (fd, port):
            command = [
                sys.executable,
                "-m",
                "daphne",
                "--fd",
                str(fd),
                "-v",
                "0",
                "--application-close-timeout",
                "3",
                target,
            ]
            live = stack.enter_context(
                _subprocess(
                    "daphne",
                    command,
                    port,
                    log_path,
                    pass_fds=[fd],
                    probe_path=probe_path,
                    start_timeout=start_timeout,
                    stop_timeout=stop_timeout,
                )
            )
        # daphne holds its own copy of the listening socket now.
        yield live


@contextmanager
def serve_gunicorn_uvicorn(
    app_spec: str,
    *,
    probe_path: str = "/",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Live]:
    """Serve *app_spec* with gunicorn and one uvicorn worker in a subprocess."""
    graceful = max(int(stop_timeout / 3), 1)
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        log_path = Path(folder, "gunicorn.log")
        with _handed_socket() as (fd, port):
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                "uvicorn_worker.UvicornWorker",
                "--workers",
                "1",
                "--bind",
                f"fd://{fd}",
                "--graceful-timeout",
                str(graceful),
                "--keep-alive",
                "5",
                "--log-level",
                "warning",
                "--error-logfile",
                "-",
                "--no-control-socket",
                app_spec,
            ]
            live = stack.enter_context(
                _subprocess(
                    "gunicorn-uvicorn",
                    command,
                    port,
                    log_path,
                    pass_fds=[fd],
                    probe_path=probe_path,
                    start_timeout=start_timeout,
                    stop_timeout=stop_timeout,
                )
            )
        yield live


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_granian(
    target: str,
    *,
    probe_path: str = "/",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Live]:
    """Serve the ASGI factory *target* (``module:function``) with granian.

    One worker, the asyncio loop. granian binds the port itself: a free one
    is picked, and if another process takes it first, the start is retried.
    """
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(1, _GRANIAN_ATTEMPTS + 1):
            log_path = Path(folder, f"granian-{attempt}.log")
            port = _free_port()
            command = [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                "1",
                "--loop",
                "asyncio",
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers-kill-timeout",
                str(max(int(stop_timeout / 3), 1)),
                "--factory",
                target,
            ]
            stack = ExitStack()
            try:
                live = stack.enter_context(
                    _subprocess(
                        "granian",
                        command,
                        port,
                        log_path,
                        probe_path=probe_path,
                        start_timeout=start_timeout,
                        stop_timeout=stop_timeout,
                    )
                )
            except RuntimeError:
                log = log_path.read_text("utf-8", "replace")
                if "in use" in log and attempt < _GRANIAN_ATTEMPTS:
                    continue
                raise
            with stack:
                yield live
            return
