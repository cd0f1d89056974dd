"""Live ASGI servers for the server-matrix tests: real sockets on 127.0.0.1.

Not a test module. Each ``serve_*`` function is a context manager that runs
one server for the length of a ``with`` block and yields the suite's one
server handle, ``servers.Running``, with its address and a way to read its log:

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
import logging
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

import hypercorn.asyncio
import hypercorn.config
from log_testing import LogCapture
from servers import (
    HOST,
    IDLE_TIMEOUT,
    Running,
    await_serving,
    free_port,
    handed_socket,
    listening_socket,
    start_in_session,
    stop_process_group,
    subprocess_environment,
    uvicorn_in_thread,
)

__all__ = [
    "HOST",
    "Running",
    "serve_daphne",
    "serve_granian",
    "serve_gunicorn_uvicorn",
    "serve_hypercorn",
    "serve_uvicorn_thread",
]

_SUPPORT_DIR = Path(__file__).resolve().parent
_PROJECT_ROOT = _SUPPORT_DIR.parents[1]
#: Granian's start is retried this often when its port was taken meanwhile.
_GRANIAN_ATTEMPTS = 3
#: Seconds daphne lets an application run on after its response.
DAPHNE_CLOSE_TIMEOUT = 10


def _log_details(log: Callable[[], str]) -> Callable[[], str]:
    """What a failure message appends: the server's log."""
    return lambda: f"; its log:\n{log()}"


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
) -> Iterator[Running]:
    """Serve *app* with uvicorn (asyncio loop) in a thread of this process.

    uvicorn's error log (``uvicorn.error``, where it reports an exception
    that escaped the app) is captured for ``Running.log``; uvicorn is not
    asked to configure logging (``log_config=None``).
    """
    capture = LogCapture()
    error_logger = logging.getLogger("uvicorn.error")
    error_logger.addHandler(capture)
    name = f"uvicorn-{http}" + ("-wsgi" if interface == "wsgi" else "")
    try:
        with uvicorn_in_thread(
            app,
            name=name,
            thread_name=name,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            details=lambda: f": {capture.text()}",
            http=http,
            loop="asyncio",
            interface=interface,
            lifespan=lifespan,
            log_config=None,
        ) as (port, alive):
            await_serving(name, port, probe_path, start_timeout, alive)
            yield Running(name, f"http://{HOST}:{port}", capture.text, in_process=True)
    finally:
        error_logger.removeHandler(capture)


@contextmanager
def serve_hypercorn(
    app: Any,
    *,
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve the ASGI *app* with hypercorn's asyncio server in a thread.

    This process binds the listening socket and hands its descriptor over
    (``fd://N``); hypercorn owns and closes it. Its error log, where it
    reports an exception that escaped the app, goes to a logger of its own
    that is captured for ``Running.log``.
    """
    capture = LogCapture()
    error_logger = logging.getLogger("asgi_servers.hypercorn.error")
    error_logger.addHandler(capture)
    listener = listening_socket()
    port = int(listener.getsockname()[1])
    config = hypercorn.config.Config()
    config.bind = [f"fd://{listener.detach()}"]
    config.errorlog = error_logger
    config.accesslog = None
    config.graceful_timeout = max(stop_timeout / 2, 1.0)
    config.keep_alive_timeout = IDLE_TIMEOUT
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
        await_serving(
            "hypercorn",
            port,
            probe_path,
            start_timeout,
            thread.is_alive,
            _log_details(capture.text),
        )
        yield Running(
            "hypercorn", f"http://{HOST}:{port}", capture.text, in_process=True
        )
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
) -> Iterator[Running]:
    def read_log() -> str:
        return log_path.read_bytes().decode("utf-8", "replace")

    details = _log_details(read_log)
    environment = subprocess_environment(
        [str(_SUPPORT_DIR), str(_PROJECT_ROOT)], {"PYTHONUNBUFFERED": "1"}
    )
    # O_APPEND: the server's writes always land at the end, whatever is read.
    with open(log_path, "ab") as output:
        process = start_in_session(
            command, output, env=environment, cwd=_PROJECT_ROOT, pass_fds=pass_fds
        )
    try:
        await_serving(
            name,
            port,
            probe_path,
            start_timeout,
            lambda: process.poll() is None,
            details,
        )
        yield Running(name, f"http://{HOST}:{port}", read_log, in_process=False)
    finally:
        stop_process_group(process, name, stop_timeout, details, clean_exits=None)


@contextmanager
def _subprocess_on_handed_socket(
    name: str,
    command_for: Callable[[int], Sequence[str]],
    *,
    probe_path: str,
    start_timeout: float,
    stop_timeout: float,
) -> Iterator[Running]:
    """Run ``command_for(fd)`` on a listening socket this process hands over."""
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        with handed_socket() as (fd, port):
            live = stack.enter_context(
                _subprocess(
                    name,
                    command_for(fd),
                    port,
                    Path(folder, f"{name}.log"),
                    pass_fds=[fd],
                    probe_path=probe_path,
                    start_timeout=start_timeout,
                    stop_timeout=stop_timeout,
                )
            )
        # The server holds its own copy of the listening socket now.
        yield live


@contextmanager
def serve_daphne(
    target: str,
    *,
    probe_path: str = "/",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve *target* (``module:attribute``) with daphne in a subprocess."""

    def command(fd: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daphne",
            "--fd",
            str(fd),
            "-v",
            "0",
            # daphne cancels an application this long after its response
            # (checked once a second): longer than asgi_probe's /linger wait.
            "--application-close-timeout",
            str(DAPHNE_CLOSE_TIMEOUT),
            target,
        ]

    with _subprocess_on_handed_socket(
        "daphne",
        command,
        probe_path=probe_path,
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
    ) as live:
        yield live


@contextmanager
def serve_gunicorn_uvicorn(
    app_spec: str,
    *,
    probe_path: str = "/",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve *app_spec* with gunicorn and one uvicorn worker in a subprocess."""
    graceful = max(int(stop_timeout / 3), 1)

    def command(fd: int) -> list[str]:
        return [
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
            str(IDLE_TIMEOUT),
            "--log-level",
            "warning",
            "--error-logfile",
            "-",
            "--no-control-socket",
            app_spec,
        ]

    with _subprocess_on_handed_socket(
        "gunicorn-uvicorn",
        command,
        probe_path=probe_path,
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
    ) as live:
        yield live


@contextmanager
def serve_granian(
    target: str,
    *,
    probe_path: str = "/",
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve the ASGI factory *target* (``module:function``) with granian.

    One worker, the asyncio loop. granian binds the port itself: a free one
    is picked, and if another process takes it first, the start is retried.
    """
    with tempfile.TemporaryDirectory() as folder:
        for attempt in range(1, _GRANIAN_ATTEMPTS + 1):
            log_path = Path(folder, f"granian-{attempt}.log")
            port = free_port()
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
