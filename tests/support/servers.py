"""Live servers for integration tests: real sockets on 127.0.0.1, bounded.

Not a test module. ``serve_uvicorn`` runs a uvicorn server in a background
thread for the length of a ``with`` block and yields its base URL. Start-up is
awaited by polling ``server.started`` against a deadline, and shutdown joins
the thread with a timeout and fails loudly when the server does not stop.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

__all__ = ["SERVER_THREAD_NAME", "UvicornHTTP", "http_implementations", "serve_uvicorn"]

UvicornHTTP = Literal["h11", "httptools"]

#: The name of the thread the server's event loop runs in, so a test can tell
#: the loop thread from the threads a framework runs sync code in.
SERVER_THREAD_NAME = "uvicorn-test-server"

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
) -> Iterator[str]:
    """Serve *app* with uvicorn on 127.0.0.1 and an OS-chosen port.

    Yields the base URL, e.g. ``"http://127.0.0.1:54321"``. On exit the server
    is asked to stop and its thread is joined: within *stop_timeout* seconds,
    or ``RuntimeError`` is raised. A server that fails to start within
    *start_timeout* seconds, or whose thread dies first, raises too.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=http,
        loop=loop,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        # Bounded shutdown: requests still running after this are cancelled.
        timeout_graceful_shutdown=max(int(stop_timeout / 2), 1),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=SERVER_THREAD_NAME, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn ({http}) exited before it started")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"uvicorn ({http}) did not start within {start_timeout} s"
                )
            time.sleep(_POLL_INTERVAL)
        sockets = [sock for srv in server.servers for sock in srv.sockets]
        host, port = sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(stop_timeout)
            raise RuntimeError(
                f"uvicorn ({http}) did not stop within {stop_timeout} s"
                + (" even when forced" if thread.is_alive() else "")
            )
