"""The demo: one request id through an ASGI service, a WSGI service and a Celery worker.

Two services run on free loopback ports, each wrapped by its adapter and each
logging with ``RequestIdFilter`` in its format, and a Celery worker runs in a
process of its own:

- ``orders``: a Starlette app under uvicorn (ASGI);
- ``inventory``: a Flask app under waitress (WSGI);
- ``worker``: ``celery worker`` running ``tasks.ship_order``.

For every order, ``orders`` calls ``inventory`` through an httpx client that
``adapters.httpx.propagate`` set up (the request id goes on in the
``X-Request-ID`` header), then publishes ``ship_order``: ``adapters.celery``
puts the id in the task message, the worker runs the task under it, and the
task calls ``orders`` back over HTTP with the id in its header. The demo
prints every process's log lines, so you can see one id cross all of them.
The last request carries a hostile header (terminal escape sequences, sent
over a raw socket because HTTP clients refuse it): it gets a fresh id, which
travels the same way, and the hostile bytes appear in no log line and no
response.

Run it with ``python dev.py demo``. The worker's broker is kombu's filesystem
transport in a temporary folder, so it needs no server; ``python dev.py demo
--broker redis://127.0.0.1:6379/0`` (or an ``amqp://`` URL) uses that broker
instead. It stops the servers and the worker and exits 0, or 1 if anything it
shows did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import flask
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from waitress.server import create_server

from adapters import asgi, wsgi
from adapters.httpx import propagate
from correlation import get_request_id
from correlation.logging import RequestIdFilter

orders_log = logging.getLogger("orders")
inventory_log = logging.getLogger("inventory")
lines: list[str] = []


class _Collect(logging.Handler):
    """Print each formatted line and keep it, so the demo can check them."""

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        lines.append(line)
        print(line, flush=True)


def configure_logging() -> None:
    handler = _Collect()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("    %(name)-9s request_id=%(request_id)-32s  %(message)s")
    )
    for logger in (orders_log, inventory_log):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("waitress").setLevel(logging.ERROR)


# -- inventory: Flask under waitress (WSGI) ---------------------------------


def build_inventory() -> flask.Flask:
    app = flask.Flask("inventory")

    @app.get("/stock/<item>")
    def stock(item: str) -> flask.Response:
        inventory_log.info("checking stock of %s", item)
        body = {"item": item, "in_stock": 3, "request_id": get_request_id()}
        response = flask.jsonify(body)
        response.call_on_close(lambda: inventory_log.info("response sent"))
        return response

    app.wsgi_app = wsgi.RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


# -- orders: Starlette under uvicorn (ASGI) ---------------------------------


def build_orders(
    inventory_url: str, ship_order: Any, orders_url: str
) -> asgi.RequestIdMiddleware:
    # One client for the service's lifetime; the hook adds each request's own
    # id to each call it makes, and only towards the inventory's host.
    inventory = propagate(
        httpx.AsyncClient(base_url=inventory_url, timeout=5), hosts=["127.0.0.1"]
    )

    async def order(request: Request) -> JSONResponse:
        number = request.path_params["number"]
        orders_log.info("order %s received", number)
        stock = (await inventory.get("/stock/widget")).json()
        orders_log.info("inventory answered under %s", stock["request_id"])
        # Publishing talks to the broker: off the event loop. to_thread runs
        # it in a copy of this context, so the id is current there too.
        callback = f"{orders_url}/orders/{number}/shipped"
        await asyncio.to_thread(ship_order.delay, number, callback)
        orders_log.info("shipping task published")
        return JSONResponse(
            {"order": number, "request_id": get_request_id(), "inventory": stock}
        )

    async def shipped(request: Request) -> JSONResponse:
        number = request.path_params["number"]
        orders_log.info("order %s shipped: the worker called back", number)
        return JSONResponse({"request_id": get_request_id()})

    async def receipt(request: Request) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for part in ("header", "items", "total"):
                orders_log.info("streaming receipt part %r", part)
                yield f"{part}: made under {get_request_id()}\n".encode()

        return StreamingResponse(body(), media_type="text/plain")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inventory:  # closed when the server stops
            yield

    routes = [
        Route("/orders/{number}", order),
        Route("/orders/{number}/shipped", shipped, methods=["POST"]),
        Route("/receipt", receipt),
    ]
    return asgi.RequestIdMiddleware(Starlette(routes=routes, lifespan=lifespan))


# -- running the servers ----------------------------------------------------


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)


def _loopback_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port, bound before the
    server starts so that its port is known without a race."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_inventory() -> Iterator[str]:
    sock = _loopback_socket()
    sock.listen()
    server = create_server(build_inventory(), sockets=[sock], threads=4)
    thread = threading.Thread(target=server.run, name="waitress")
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        # Workers first, then the sockets: the other order can leave a worker
        # writing to a closed socket (an EBADF traceback, seen on 3.10).
        server.task_dispatcher.shutdown(timeout=10)
        server.close()
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_orders(inventory_url: str, ship_order: Any) -> Iterator[int]:
    sock = _loopback_socket()
    port = sock.getsockname()[1]
    # h11, not httptools: h11 hands escape sequences in header values to the
    # app, which is the case step 4 shows the adapter handling.
    config = uvicorn.Config(
        build_orders(inventory_url, ship_order, f"http://127.0.0.1:{port}"),
        http="h11",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn"
    )
    thread.start()
    try:
        _wait_for(lambda: server.started or not thread.is_alive(), "uvicorn start")
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class Worker:
    """A ``celery worker`` process running ``tasks``, and its log lines."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.shown = 0  # log lines printed so far

    def lines(self) -> list[str]:
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def show_until(self, text: str) -> None:
        """Wait until the worker has logged *text*; print and keep its new lines."""
        _wait_for(lambda: any(text in line for line in self.lines()), text)
        new = self.lines()[self.shown :]
        self.shown += len(new)
        for line in new:
            lines.append(line)
            print(line, flush=True)


@contextmanager
def run_worker(data: Path) -> Iterator[Worker]:
    """Start a solo-pool worker on the demo's broker; stop it on exit."""
    worker = Worker(data / "worker.log")
    here = str(Path(__file__).resolve().parent)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([here, *sys.path])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "--app=tasks",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            f"--logfile={worker.log_path}",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ],
        cwd=here,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: (
                process.poll() is not None
                or any(line.endswith(" ready.") for line in worker.lines())
            ),
            "the worker's start",
            timeout=30,
        )
        if process.poll() is not None:
            raise RuntimeError("the worker exited:\n" + "\n".join(worker.lines()))
        worker.shown = len(worker.lines())  # its start-up banner is not shown
        yield worker
    finally:
        process.send_signal(signal.SIGTERM)  # a warm shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_get(port: int, path: str, header_value: bytes) -> bytes:
    """One request over a plain socket, so no client cleans the header."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n".encode()
            + b"X-Request-ID: "
            + header_value
            + b"\r\n\r\n"
        )
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def ids_logged_since(start: int) -> set[str]:
    """The ids of the lines logged since *start*, "-" (no id) left out.

    The worker logs that it received a task before the task starts, with no
    id: ``-`` there shows the previous task's id did not stay behind.
    """
    ids = {line.split("request_id=")[1].split()[0] for line in lines[start:]}
    return ids - {"-"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="The request-id demo.")
    parser.add_argument(
        "--broker",
        default="filesystem://",
        help="the Celery broker URL (default: kombu's filesystem transport)",
    )
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="correlation-demo-") as data:
        # tasks.py reads these when it is imported, here and in the worker.
        os.environ["DEMO_BROKER_URL"] = arguments.broker
        os.environ["DEMO_DATA"] = data
        os.environ["DEMO_QUEUE"] = f"correlation-demo-{secrets.token_hex(4)}"
        return run_demo(Path(data))


def run_demo(data: Path) -> int:
    from tasks import ship_order

    configure_logging()
    failures: list[str] = []
    with (
        run_worker(data) as worker,
        serve_inventory() as inventory_url,
        serve_orders(inventory_url, ship_order) as port,
    ):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            print("1. A client sends X-Request-ID: checkout-7f3a to orders (ASGI),")
            print("   which calls inventory (WSGI) and has a worker ship the order")
            start = len(lines)
            response = client.get(
                "/orders/1", headers={"X-Request-ID": "checkout-7f3a"}
            )
            worker.show_until("order 1 shipped, orders told")
            body = response.json()
            print(f"   -> response header: {response.headers['x-request-id']}")
            print(f"   -> inventory (WSGI) saw: {body['inventory']['request_id']}")
            print("   (the worker logs each task it receives before the task runs,")
            print("   with no id yet: '-'; every line under the task has the id)")
            if ids_logged_since(start) != {"checkout-7f3a"}:
                failures.append("step 1: the id changed between processes")

            print("\n2. A client sends no id: orders generates one, inventory keeps it")
            start = len(lines)
            response = client.get("/orders/2")
            worker.show_until("order 2 shipped, orders told")
            print(f"   -> response header: {response.headers['x-request-id']}")
            if ids_logged_since(start) != {response.headers["x-request-id"]}:
                failures.append("step 2: the generated id did not travel")

            print("\n3. A streamed body: every chunk is made under the same id")
            start = len(lines)
            response = client.get("/receipt", headers={"X-Request-ID": "receipt-42"})
            for text in response.text.splitlines():
                print(f"   -> body: {text}")
            if ids_logged_since(start) != {"receipt-42"}:
                failures.append("step 3: a chunk lost the id")

        print("\n4. A hostile header, sent raw: terminal escapes that would clear")
        print("   the screen and paint a fake error in red if they were logged")
        hostile = b"\x1b[2J\x1b[31mFATAL admin logged in"
        print(f"   X-Request-ID: {hostile!r}")
        start = len(lines)
        reply = raw_get(port, "/orders/3", hostile)
        worker.show_until("order 3 shipped, orders told")
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        echoed = [h for h in head.split("\r\n") if h.lower().startswith("x-request-id")]
        print(f"   -> {echoed[0] if echoed else 'no id header'} (a fresh id)")
        if b"FATAL" in reply or any("FATAL" in line for line in lines[start:]):
            failures.append("step 4: the hostile value was reflected or logged")
        if len(ids_logged_since(start)) != 1 or not echoed:
            failures.append("step 4: the fresh id did not travel")

    print()
    if failures:
        for failure in failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print("All stopped. Each request kept one id across both services and the worker.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
