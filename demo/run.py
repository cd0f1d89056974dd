"""The demo: one request id, chosen once, seen everywhere the request goes.

It starts a Starlette service under uvicorn on a free loopback port, wrapped
by ``adapters.asgi.RequestIdMiddleware``, with ``RequestIdFilter`` in its log
format. Then it sends a few requests and prints the service's log lines next
to what the client received:

1. a request carrying a valid ``X-Request-ID``: every log line, the streamed
   body and the response header carry that id;
2. a request without one: a fresh id is generated;
3. a hostile header sent over a raw socket, made to forge a log line: it is
   replaced by a fresh id and never reaches the log.

Run it with ``python dev.py demo``; it stops the server and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from correlation import get_request_id
from correlation.logging import RequestIdFilter

log = logging.getLogger("demo.orders")


async def order(request: Request) -> JSONResponse:
    """Log before and after an await, and once more in a background task."""
    number = request.path_params["number"]
    log.info("looking up order %s", number)
    await asyncio.sleep(0)
    log.info("order %s found", number)
    task = BackgroundTask(log.info, "sending receipt for order %s", number)
    return JSONResponse(
        {"order": number, "request_id": get_request_id()}, background=task
    )


async def report(request: Request) -> StreamingResponse:
    """Stream a body whose chunks are produced after the handler returned."""

    async def lines() -> AsyncIterator[bytes]:
        for part in range(3):
            log.info("streaming part %d", part)
            yield f"part {part} made under {get_request_id()}\n".encode()

    return StreamingResponse(lines(), media_type="text/plain")


def build_app() -> RequestIdMiddleware:
    """The service: a Starlette app with the adapter outermost."""
    routes = [Route("/orders/{number}", order), Route("/report", report)]
    return RequestIdMiddleware(Starlette(routes=routes))


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("    [service] request_id=%(request_id)s  %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def raw_request(port: int, header_value: bytes) -> bytes:
    """Send one request over a plain socket, so no client cleans the header."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            b"GET /orders/3 HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n"
            b"X-Request-ID: " + header_value + b"\r\n\r\n"
        )
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def main() -> int:
    configure_logging()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                print("the server did not start", file=sys.stderr)
                return 1
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=5) as client:
            print("1. A client sends X-Request-ID: checkout-7f3a")
            response = client.get(
                "/orders/1", headers={"X-Request-ID": "checkout-7f3a"}
            )
            print(f"   -> response header {response.headers['x-request-id']}")

            print("\n2. A client sends no id: the service generates one")
            response = client.get("/orders/2")
            print(f"   -> response header {response.headers['x-request-id']}")

            print("\n3. A streamed body: every chunk runs under the same id")
            response = client.get("/report", headers={"X-Request-ID": "report-42"})
            for line in response.text.splitlines():
                print(f"   -> body: {line}")

        print("\n4. A hostile header, sent raw, that tries to forge a log line")
        forged = b"x  request_id=admin  order 1 refunded"
        print(f"   X-Request-ID: {forged.decode()}")
        reply = raw_request(port, forged)
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        echoed = [h for h in head.split("\r\n") if h.lower().startswith("x-request-id")]
        print(f"   -> {echoed[0]}  (a fresh id; the value was never logged)")
        if forged in reply:
            print("the hostile value was reflected", file=sys.stderr)
            return 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    if thread.is_alive():
        print("the server did not stop", file=sys.stderr)
        return 1
    print(
        "\nServer stopped. Every line above that belongs to one request shows one id."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
