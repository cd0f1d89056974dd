"""Live servers for integration tests: real sockets on 127.0.0.1, bounded.

Not a test module. Each ``serve_*`` function is a context manager that runs
a real server for the length of a ``with`` block:

- ``serve_uvicorn``: uvicorn (ASGI) in a background thread;
- ``serve_waitress``: waitress in a background thread, with its own pool of
  worker threads;
- ``serve_gunicorn``: gunicorn with one ``sync`` or ``gthread`` worker, as a
  subprocess in a session of its own, on a socket this process binds and
  hands over;
- ``serve_werkzeug``: werkzeug's development server (``make_server(...,
  threaded=True)``) in a background thread, one thread per connection;
- ``serve_wsgiref``: the standard library's single-threaded ``wsgiref``
  server in a background thread.
- ``serve_in_thread``: a socketserver a test builds itself (a stand-in for
  a service, e.g. ``sentry_host``) in a background thread.

Each yields a ``Running``, the suite's one handle on a running server (the
ASGI matrix's ``asgi_servers`` and the soak's ``soak_servers`` yield it too):
its name, base URL and address, and a reader of the server's own log, where
its tracebacks go.

Start-up is awaited against a deadline (for the WSGI servers: until an HTTP
request to *probe_path* gets any response), never with a fixed sleep. On exit
every server is stopped and waited for with a timeout; one that does not stop
raises ``RuntimeError`` (a gunicorn process group is killed first), so no
server outlives the ``with`` block unnoticed.
"""

from __future__ import annotations

import http.client
import importlib
import importlib.util
import io
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TextIO, TypeVar
from wsgiref.simple_server import WSGIRequestHandler as _WsgirefHandler
from wsgiref.simple_server import WSGIServer as _WsgirefServer

import httpx
import uvicorn
from log_testing import capture_logs
from werkzeug.serving import WSGIRequestHandler as _WerkzeugHandler
from werkzeug.serving import make_server as _make_werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "HOST",
    "IDLE_TIMEOUT",
    "PROBE_TIMEOUT",
    "SERVER_THREAD_NAME",
    "GunicornWorker",
    "ProcessOutput",
    "Running",
    "UvicornHTTP",
    "answers_http",
    "await_serving",
    "free_port",
    "gunicorn_options",
    "handed_socket",
    "http_implementations",
    "kept_alive",
    "listening_socket",
    "serve_gunicorn",
    "serve_in_thread",
    "serve_uvicorn",
    "serve_waitress",
    "serve_werkzeug",
    "serve_wsgiref",
    "start_in_session",
    "stop_process_group",
    "subprocess_environment",
    "uvicorn_in_thread",
    "wait_until",
]

UvicornHTTP = Literal["h11", "httptools"]

#: The name of the thread the server's event loop runs in, so a test can tell
#: the loop thread from the threads a framework runs sync code in.
SERVER_THREAD_NAME = "uvicorn-test-server"
#: Seconds a test's server keeps an idle keep-alive connection open: longer
#: than any test. Tests that check connections were reused count the client
#: ports the app saw. uvicorn, hypercorn and gunicorn close a connection idle
#: for a few seconds by default, and on a loaded machine a connection can sit
#: idle that long; the client then replaces it, on a new port. Shutdown still
#: closes idle connections at once.
IDLE_TIMEOUT = 60

_POLL_INTERVAL = 0.005


def http_implementations() -> list[UvicornHTTP]:
    """Return the uvicorn HTTP protocol implementations installed here.

    ``h11`` always (uvicorn depends on it); ``httptools`` when it is importable
    (``uvicorn[standard]`` installs it).
    """
    found: list[UvicornHTTP] = ["h11"]
    if importlib.util.find_spec("httptools") is not None:
        found.append("httptools")
    return found


@contextmanager
def serve_uvicorn(
    app: Any,
    *,
    http: UvicornHTTP = "h11",
    loop: Literal["asyncio"] = "asyncio",
    lifespan: Literal["on", "off"] = "on",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve *app* with uvicorn on 127.0.0.1 and an OS-chosen port.

    Its log is what ``uvicorn.error`` records once it runs (uvicorn sets up
    its loggers when it starts, dropping handlers added before). On exit the server
    is asked to stop and its thread is joined: within *stop_timeout* seconds,
    or ``RuntimeError`` is raised. A server that fails to start within
    *start_timeout* seconds, or whose thread dies first, raises too.
    """
    with (
        uvicorn_in_thread(
            app,
            name=f"uvicorn ({http})",
            thread_name=SERVER_THREAD_NAME,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            http=http,
            loop=loop,
            lifespan=lifespan,
        ) as (port, _alive),
        capture_logs("uvicorn.error") as log,
    ):
        yield Running(f"uvicorn-{http}", f"http://{HOST}:{port}", log.text)


@contextmanager
def uvicorn_in_thread(
    app: Any,
    *,
    name: str,
    thread_name: str,
    start_timeout: float,
    stop_timeout: float,
    details: Callable[[], str] = lambda: "",
    **options: Any,
) -> Iterator[tuple[int, Callable[[], bool]]]:
    """Run uvicorn on 127.0.0.1 and an OS-chosen port in a thread named *thread_name*.

    *options* go to ``uvicorn.Config``. Yields the port and a function that
    tells whether the server's thread still runs. On exit the server is asked
    to stop and its thread is joined: within *stop_timeout* seconds, or
    ``RuntimeError`` is raised. A server that fails to start within
    *start_timeout* seconds, or whose thread dies first, raises too (with
    *details* appended).
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        access_log=False,
        # Bounded shutdown: requests still running after this are cancelled.
        timeout_graceful_shutdown=max(int(stop_timeout / 2), 1),
        timeout_keep_alive=IDLE_TIMEOUT,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=thread_name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{name} exited before it started{details()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within {start_timeout} s")
            time.sleep(_POLL_INTERVAL)
        sockets = [sock for srv in server.servers for sock in srv.sockets]
        yield int(sockets[0].getsockname()[1]), thread.is_alive
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(stop_timeout)
            raise RuntimeError(
                f"{name} did not stop within {stop_timeout} s"
                + (" even when forced" if thread.is_alive() else "")
            )


# --- WSGI servers ---------------------------------------------------------------

_T = TypeVar("_T")
HOST = "127.0.0.1"
_SUPPORT_DIR = Path(__file__).resolve().parent
_PROJECT_ROOT = _SUPPORT_DIR.parents[1]
#: How long one start-up probe may wait for its response.
PROBE_TIMEOUT = 2.0
#: How often a socketserver-based loop checks whether it should stop.
_LOOP_TICK = 0.05

#: gunicorn's worker classes these helpers run.
GunicornWorker = Literal["sync", "gthread"]


@dataclass(frozen=True)
class Running:
    """A running server: the one handle every ``serve_*`` helper yields.

    *log* returns everything the server logged so far (its error log with
    tracebacks; no access log): a subprocess's output, or the records of the
    server's logger for one in this process. It still answers after the
    server stopped.
    """

    #: Which server, e.g. ``waitress`` or ``uvicorn-h11``.
    name: str
    #: The base URL, e.g. ``http://127.0.0.1:54321``.
    url: str
    log: Callable[[], str]
    #: The process serving requests is this test process.
    in_process: bool = True

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) to connect a raw socket to."""
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        return host, int(port)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.address[1]


def wait_until(
    condition: Callable[[], _T],
    *,
    timeout: float = 10.0,
    what: str = "the condition",
) -> _T:
    """Call *condition* until it returns something truthy, and return that.

    Polls every few milliseconds; raises ``TimeoutError`` naming *what* once
    *timeout* seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(_POLL_INTERVAL)


def await_started(
    what: str,
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    timeout: float,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Poll until *ready()*; fail fast if the process died, or at the deadline.

    For a process that says it is ready in its output (a worker's log line)
    rather than by answering HTTP (``await_serving``). *details* is appended to
    the ``RuntimeError`` message, e.g. the process's output.
    """
    try:
        wait_until(
            lambda: not alive() or ready(), timeout=timeout, what=f"the start of {what}"
        )
    except TimeoutError as error:
        raise RuntimeError(f"{error}{details()}") from None
    if not alive():
        raise RuntimeError(f"{what} exited at start{details()}")


def answers_http(
    port: int,
    path: str,
    timeout: float = PROBE_TIMEOUT,
    *,
    need_body: bool = False,
    host: str = HOST,
) -> bool:
    """Return whether ``GET path`` on *host*:*port* gets any HTTP response.

    With *need_body*, the response must also have a non-empty body.
    """
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        body = connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return body != b"" or not need_body


def await_serving(
    name: str,
    port: int,
    probe_path: str,
    timeout: float,
    alive: Callable[[], bool],
    details: Callable[[], str] = lambda: "",
    *,
    need_body: bool = False,
    host: str = HOST,
) -> None:
    """Probe the server until it answers; fail fast if it died, or at the deadline.

    *details* is appended to the ``RuntimeError`` message, e.g. the server's
    output.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"{name} exited before it served a request{details()}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(
                f"{name} did not answer GET {probe_path} within {timeout} s{details()}"
            )
        if answers_http(
            port,
            probe_path,
            min(remaining, PROBE_TIMEOUT),
            need_body=need_body,
            host=host,
        ):
            return
        time.sleep(_POLL_INTERVAL)


@contextmanager
def serve_waitress(
    app: WSGIApplication,
    *,
    threads: int = 3,
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
    **adjustments: Any,
) -> Iterator[Running]:
    """Serve *app* with waitress on 127.0.0.1 and an OS-chosen port.

    waitress's socket loop runs in a background thread (``server.run()``) and
    hands requests to its own pool of *threads* worker threads. *adjustments*
    go to ``waitress.create_server``. The server's log is what the
    ``waitress`` logger records meanwhile. On exit the workers finish the
    request in hand and stop, then the loop closes every socket from its own
    thread (through the server's trigger) and ends; both within
    *stop_timeout* seconds, or ``RuntimeError`` is raised.
    """
    # Imported here: waitress is a test dependency only, and ships no types.
    waitress = importlib.import_module("waitress")
    wasyncore = importlib.import_module("waitress.wasyncore")
    with capture_logs("waitress") as log:
        server = waitress.create_server(
            app, host=HOST, port=0, threads=threads, **adjustments
        )
        port = int(server.effective_port)
        thread = threading.Thread(
            target=server.run, name="waitress-test-loop", daemon=True
        )
        thread.start()
        try:
            await_serving("waitress", port, probe_path, start_timeout, thread.is_alive)
            yield Running("waitress", f"http://{HOST}:{port}", log.text)
        finally:
            dispatcher = server.task_dispatcher
            # Workers finish the task in hand, then exit; queued tasks are
            # cancelled. The loop still runs meanwhile, so a worker waiting
            # for its output to drain can finish.
            dispatcher.shutdown(cancel_pending=True, timeout=stop_timeout)
            socket_map = server._map

            def close_all() -> None:
                wasyncore.close_all(socket_map)

            if thread.is_alive():
                # The loop owns the sockets: close them all from its own
                # thread. With its socket map empty, the loop returns.
                server.trigger.pull_trigger(close_all)
                thread.join(stop_timeout)
            else:
                close_all()
            problems = []
            if thread.is_alive():
                problems.append("its socket loop is still running")
            if dispatcher.threads:
                problems.append(f"{len(dispatcher.threads)} worker thread(s) still run")
            if problems:
                raise RuntimeError(
                    f"waitress did not stop within {stop_timeout} s:"
                    f" {'; '.join(problems)}"
                )


def gunicorn_options() -> list[str]:
    """The options every gunicorn a test starts needs, for the version installed.

    ``--no-control-socket`` from gunicorn 25.1 on: otherwise each server
    creates ``~/.gunicorn/gunicorn.ctl``.
    """
    gunicorn = importlib.import_module("gunicorn")
    return ["--no-control-socket"] if tuple(gunicorn.version_info) >= (25, 1) else []


@contextmanager
def serve_gunicorn(
    app_spec: str,
    *,
    worker: GunicornWorker = "gthread",
    threads: int = 2,
    probe_path: str = "/",
    start_timeout: float = 20.0,
    stop_timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Running]:
    """Serve *app_spec* with one gunicorn worker in a subprocess.

    *app_spec* is what gunicorn imports, e.g. ``"wsgi_probe:build_site()"``;
    this folder and the project root are put on the subprocess's
    ``PYTHONPATH``, and *env* is added to its environment. *worker* is the
    worker class: ``gthread`` runs *threads* threads and keeps connections
    alive; ``sync`` serves one request at a time in the worker's main thread
    and closes every connection after its response.

    The port is never guessed: this process binds a socket on 127.0.0.1 and an
    OS-chosen port, listens, and hands the file descriptor over
    (``--bind fd://N``), so requests queue there until the worker accepts
    them. gunicorn runs in a session of its own; its output (the error log,
    warnings, anything the app prints) goes to a temporary file, which is
    the server's log. On exit the server gets SIGTERM (a graceful stop) and
    must exit within *stop_timeout* seconds with its whole process group;
    otherwise the group is killed and ``RuntimeError`` raised.
    """
    graceful = max(int(stop_timeout / 3), 1)
    options = [
        "--worker-class",
        worker,
        "--workers",
        "1",
        "--graceful-timeout",
        str(graceful),
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
    ]
    if worker == "gthread":
        options += ["--threads", str(threads), "--keep-alive", str(IDLE_TIMEOUT)]
    options += gunicorn_options()
    environment = subprocess_environment([str(_SUPPORT_DIR), str(_PROJECT_ROOT)], env)
    name = f"gunicorn ({worker})"

    with ProcessOutput(prefix="gunicorn-") as output:
        with handed_socket() as (fd, port):
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                *options,
                "--bind",
                f"fd://{fd}",
                app_spec,
            ]
            process = start_in_session(
                command,
                output.file,
                env=environment,
                cwd=_PROJECT_ROOT,
                pass_fds=(fd,),
            )
        # gunicorn holds its own copy of the listening socket now.
        try:
            await_serving(
                name,
                port,
                probe_path,
                start_timeout,
                lambda: process.poll() is None,
                output.details,
            )
            yield Running(name, f"http://{HOST}:{port}", output.read, False)
        finally:
            stop_process_group(process, name, stop_timeout, output.details)


def subprocess_environment(
    paths: Sequence[str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment plus *extra*, with *paths* first on PYTHONPATH."""
    search = list(paths)
    if os.environ.get("PYTHONPATH"):
        search.append(os.environ["PYTHONPATH"])
    return {**os.environ, **(extra or {}), "PYTHONPATH": os.pathsep.join(search)}


def listening_socket(backlog: int = 128) -> socket.socket:
    """A TCP socket bound to 127.0.0.1 and an OS-chosen port, listening."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((HOST, 0))
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return listener


@contextmanager
def handed_socket(backlog: int = 128) -> Iterator[tuple[int, int]]:
    """A listening socket on 127.0.0.1: yields (fd, port) to hand to a server.

    The socket is closed when the block ends; a server started inside the
    block with the descriptor in ``pass_fds`` keeps its own copy.
    """
    with listening_socket(backlog) as listener:
        yield listener.fileno(), int(listener.getsockname()[1])


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for servers that bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class ProcessOutput:
    """A server subprocess's stdout and stderr, in a temporary file.

    Pass ``file`` to ``start_in_session``. ``read()`` opens the file anew each
    time rather than seeking the handle the process writes through: both
    share one file offset, so a seek back to read would move where the
    process writes next, and its next lines would overwrite earlier ones.
    Once closed (at the end of the ``with`` block), ``read()`` returns the
    last contents, so a ``Running.log`` still works after its server stopped.
    """

    def __init__(self, prefix: str) -> None:
        self.file = tempfile.NamedTemporaryFile(prefix=prefix)  # noqa: SIM115
        self._final: str | None = None

    def read(self) -> str:
        """Everything the process wrote so far (all of it, once closed)."""
        if self._final is not None:
            return self._final
        with open(self.file.name, "rb") as file:
            return file.read().decode("utf-8", "replace")

    def details(self) -> str:
        """The output, to append to an error message."""
        return f"; its output:\n{self.read()}"

    def __enter__(self) -> ProcessOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._final = self.read()
        self.file.close()


def start_in_session(
    command: Sequence[str],
    output: IO[bytes],
    *,
    env: Mapping[str, str],
    cwd: str | Path,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start *command* in a session (and process group) of its own.

    Its stdout and stderr both go to *output*; stdin is empty.
    """
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        pass_fds=tuple(pass_fds),
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(group: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def stop_process_group(
    process: subprocess.Popen[bytes],
    name: str,
    timeout: float,
    details: Callable[[], str] = lambda: "",
    *,
    clean_exits: Collection[int] | None = (0,),
) -> None:
    """SIGTERM *process*, wait for it and its group; kill all on a timeout.

    The process must have been started with ``start_new_session``. Raises
    ``RuntimeError`` (with *details* appended) if it does not exit within
    *timeout* seconds, leaves processes in its group for longer, or exits
    with a status not in *clean_exits* (unless that is ``None``).
    """
    # start_new_session: the process leads a group of its own, id == pid.
    group = process.pid
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(group)
        process.wait(timeout)
        raise RuntimeError(
            f"{name} did not exit within {timeout} s of SIGTERM; killed{details()}"
        ) from None
    try:
        # The master reaps its workers before it exits; wait for stragglers.
        wait_until(
            lambda: not _group_alive(group),
            timeout=timeout,
            what=f"the exit of {name}'s workers",
        )
    except TimeoutError:
        _kill_group(group)
        raise RuntimeError(
            f"{name} left processes running after it exited; killed{details()}"
        ) from None
    if clean_exits is not None and process.returncode not in clean_exits:
        raise RuntimeError(f"{name} exited with status {process.returncode}{details()}")


def _serve_in_thread(
    name: str,
    server: socketserver.BaseServer,
    port: int,
    *,
    probe_path: str,
    start_timeout: float,
    stop_timeout: float,
    log: Callable[[], str],
    request_threads: Callable[[], list[threading.Thread]],
    host: str = HOST,
) -> Iterator[Running]:
    """Run a socketserver-based *server* in a thread; the shared stop logic.

    The loop calls ``handle_request()`` with a short timeout until told to
    stop, rather than ``serve_forever()``, whose ``shutdown()`` waits without
    a timeout. On exit the loop and every thread in *request_threads* must
    end within *stop_timeout* seconds, or ``RuntimeError`` is raised.
    """
    server.timeout = _LOOP_TICK
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.handle_request()

    thread = threading.Thread(target=loop, name=f"{name}-test-server", daemon=True)
    try:
        thread.start()
        await_serving(name, port, probe_path, start_timeout, thread.is_alive, host=host)
        yield Running(name, f"http://{host}:{port}", log)
    finally:
        stop.set()
        thread.join(stop_timeout)
        server.server_close()
        if thread.is_alive():
            raise RuntimeError(f"{name} did not stop within {stop_timeout} s")
        try:
            wait_until(
                lambda: not any(t.is_alive() for t in request_threads()),
                timeout=stop_timeout,
                what=f"the end of {name}'s request threads",
            )
        except TimeoutError:
            raise RuntimeError(
                f"{name}'s request threads still run {stop_timeout} s after it stopped"
            ) from None


@contextmanager
def serve_in_thread(
    name: str,
    server: socketserver.TCPServer,
    *,
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
    log: Callable[[], str] = lambda: "",
) -> Iterator[Running]:
    """Serve with *server*, a socketserver bound to a port, in a thread of its own.

    For a small HTTP server a test writes (an ``http.server.HTTPServer`` with
    its own handler class) to stand in for a service. Yields once ``GET
    probe_path`` gets any answer; on exit the server must stop within
    *stop_timeout* seconds, or ``RuntimeError`` is raised.
    """
    host, port = server.socket.getsockname()[:2]
    yield from _serve_in_thread(
        name,
        server,
        int(port),
        probe_path=probe_path,
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
        log=log,
        request_threads=list,
        host=str(host),
    )


class _QuietWsgirefHandler(_WsgirefHandler):
    """wsgiref's request handler: no access log; errors go to the server's log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing per request."""

    def log_message(self, format: str, *args: Any) -> None:
        """Write the server's messages (a refused request) to its log."""
        self.get_stderr().write(f"{self.address_string()} - {format % args}\n")

    def get_stderr(self) -> TextIO:
        """The server's own error stream (tracebacks of failed requests)."""
        server = self.server
        assert isinstance(server, _WsgirefTestServer)
        return server.errors


class _WsgirefTestServer(_WsgirefServer):
    """wsgiref's server with room for many queued connections.

    It serves one connection at a time and closes each after one response
    (HTTP/1.0), so concurrent clients queue in the listen backlog.
    """

    request_queue_size = 128

    def __init__(self) -> None:
        super().__init__((HOST, 0), _QuietWsgirefHandler)
        self.errors = _LockedText()


class _LockedText(io.StringIO):
    """A text stream that several threads may write to and read at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)

    def text(self) -> str:
        with self._lock:
            return self.getvalue()


@contextmanager
def serve_wsgiref(
    app: WSGIApplication,
    *,
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve *app* with ``wsgiref.simple_server`` on 127.0.0.1.

    One thread, ``wsgiref-test-server``, accepts and serves every request in
    turn, one connection per request. The server's log is what wsgiref writes
    to its error stream (the traceback of a failed request). On exit it must
    end within *stop_timeout* seconds, or ``RuntimeError`` is raised.
    """
    server = _WsgirefTestServer()
    server.set_app(app)
    yield from _serve_in_thread(
        "wsgiref",
        server,
        int(server.server_address[1]),
        probe_path=probe_path,
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
        log=server.errors.text,
        request_threads=list,
    )


@contextmanager
def serve_werkzeug(
    app: WSGIApplication,
    *,
    probe_path: str = "/",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[Running]:
    """Serve *app* with werkzeug's development server, threaded, on 127.0.0.1.

    ``werkzeug.serving.make_server(..., threaded=True)``: the loop thread
    ``werkzeug-test-server`` accepts connections and starts a new thread for
    each. The server speaks HTTP/1.1 but closes every connection after its
    response (``Connection: close``), so every request gets a thread of its
    own. The server's log is what the ``werkzeug`` logger records (the access
    log is left out). On exit the loop and every request thread must end
    within *stop_timeout* seconds, or ``RuntimeError`` is raised.
    """
    started: list[threading.Thread] = []
    lock = threading.Lock()

    class Handler(_WerkzeugHandler):
        """Records its thread, so the stop can wait for it; no access log."""

        def handle(self) -> None:
            with lock:
                started.append(threading.current_thread())
            super().handle()

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Log nothing per request."""

    def request_threads() -> list[threading.Thread]:
        with lock:
            return list(started)

    with capture_logs("werkzeug") as log:
        server = _make_werkzeug_server(
            HOST, 0, app, threaded=True, request_handler=Handler
        )
        yield from _serve_in_thread(
            "werkzeug",
            server,
            server.port,
            probe_path=probe_path,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
            log=log.text,
            request_threads=request_threads,
        )


def kept_alive(connections: int) -> httpx.Limits:
    """Pool limits for a client whose *connections* are reused for a whole test.

    httpx drops a pooled connection idle for 5 s by default, and its pool
    hands each request the first idle connection in its list, so on a loaded
    machine the last ones can idle that long. Their replacements would show up
    as extra client ports where a test checks that connections were reused
    (seen in CI: 37 ports for 32 connections; a 0.02 s expiry reproduces it
    on every run). So idle connections never expire here.
    """
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=None,
    )
