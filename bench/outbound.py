"""What the outbound integrations add to a client's own cost per request.

A loopback GET through each client (httpx ``Client`` and ``AsyncClient``, a
requests ``Session``, an aiohttp ``ClientSession``) to a keep-alive server in
another process, so that only the client's work is counted. Each client runs
four ways, in the same run:

- **bare**: no integration, the request inside a ``bound_request_id`` block;
- **noop**: a hook (httpx), ``HTTPAdapter`` subclass (requests) or client
  middleware (aiohttp) at the integration's extension point that does
  nothing: what the client charges for having one;
- **floor**: the same, setting the header to a constant: the least any
  integration at that point does;
- **by-hand**: the bare client, passing ``headers={"X-Request-ID": get_request_id()}``
  to each call: the header's own cost in the client, which any way of
  sending the id pays;
- **unit**: with the integration, inside the block (the id is sent);
- **outside**: with the integration, outside any unit of work (nothing sent).

The cost is counted two ways. **Instructions** (valgrind's callgrind, the
client process only): each row runs in a child process twice, a small and a
large number of requests, and the difference divided by the difference of the
counts is the row's instructions per request, start-up cancelled out.
**CPU time** (``time.process_time`` of the client process): the ways
alternate in rounds, and each row's median is taken. Issue 13's targets: the
added cost is at most 2 % of the client's own for httpx and requests, 3 % for
aiohttp, and nothing measurable outside a unit of work.

    python bench/outbound.py --out bench/results/outbound.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLIENTS = ("httpx", "httpx-async", "requests", "aiohttp")
WAYS = ("bare", "noop", "floor", "by-hand", "unit", "outside")
#: The most each client's integration may add, as a share of its own cost.
LIMITS = {"httpx": 0.02, "httpx-async": 0.02, "requests": 0.02, "aiohttp": 0.03}
#: Requests in the two callgrind runs of a row.
COUNTS = (100, 600)

_SERVER = r"""
import asyncio, socket, sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)

async def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    server = await asyncio.get_running_loop().create_server(Answer, sock=sock)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@contextmanager
def serve() -> Iterator[str]:
    """A keep-alive HTTP server in another process; yields its base URL.

    It stops when its stdin closes, at the end of the block.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(sock.fileno())],
        stdin=subprocess.PIPE,
        pass_fds=[sock.fileno()],
    )
    sock.close()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


def runner(client: str, way: str, url: str) -> tuple[Callable[[int], None], Any]:
    """A function sending *n* GETs through *client* set up *way*, and a closer."""
    from correlation import bound_request_id, get_request_id

    unit = nullcontext() if way == "outside" else bound_request_id("bench-id")
    wired = way in ("unit", "outside")
    by_hand = way == "by-hand"
    floor = way == "floor"
    noop = way == "noop"

    def set_header(headers: Any) -> None:
        if floor:
            headers["X-Request-ID"] = "bench-id"

    def headers() -> dict[str, str] | None:
        request_id = get_request_id() if by_hand else None
        return None if request_id is None else {"X-Request-ID": request_id}

    if client == "httpx":
        import httpx

        from adapters.httpx import propagate

        sync_client = httpx.Client()
        if wired:
            propagate(sync_client)
        elif floor or noop:
            sync_client.event_hooks = {
                "request": [lambda request: set_header(request.headers)]
            }

        def send(n: int) -> None:
            with unit:
                for _ in range(n):
                    sync_client.get(url, headers=headers()).read()

        return send, sync_client.close
    if client == "requests":
        import requests
        from requests.adapters import HTTPAdapter

        from adapters.requests import propagate as propagate_session

        class FloorAdapter(HTTPAdapter):
            def add_headers(self, request: Any, **kwargs: Any) -> None:
                set_header(request.headers)

        session = requests.Session()
        session.trust_env = False
        if wired:
            propagate_session(session)
        elif floor or noop:
            session.mount("http://", FloorAdapter())

        def send_requests(n: int) -> None:
            with unit:
                for _ in range(n):
                    session.get(url, headers=headers()).content  # noqa: B018 - read it

        return send_requests, session.close
    loop = asyncio.new_event_loop()
    if client == "httpx-async":
        import httpx

        from adapters.httpx import RequestIdHook

        async def floor_hook(request: Any) -> None:
            set_header(request.headers)

        hooks: dict[str, list[Any]] = {"request": []}
        if wired:
            hooks["request"].append(RequestIdHook())
        elif floor or noop:
            hooks["request"].append(floor_hook)
        async_client = httpx.AsyncClient(event_hooks=hooks)

        async def many(n: int) -> None:
            with unit:
                for _ in range(n):
                    await (await async_client.get(url, headers=headers())).aread()

        close: Callable[[], Any] = async_client.aclose
    else:
        import aiohttp

        from adapters.aiohttp import RequestIdClientMiddleware

        async def floor_middleware(request: Any, handler: Any) -> Any:
            set_header(request.headers)
            return await handler(request)

        middlewares: tuple[Any, ...] = ()
        if wired:
            middlewares = (RequestIdClientMiddleware(),)
        elif floor or noop:
            middlewares = (floor_middleware,)

        async def make() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(middlewares=middlewares)

        aio_session = loop.run_until_complete(make())

        async def many(n: int) -> None:
            with unit:
                for _ in range(n):
                    async with aio_session.get(url, headers=headers()) as response:
                        await response.read()

        close = aio_session.close

    def send_async(n: int) -> None:
        loop.run_until_complete(many(n))

    def close_all() -> None:
        loop.run_until_complete(close())
        loop.close()

    return send_async, close_all


def child(client: str, way: str, url: str, n: int) -> None:
    """Under callgrind: warm up, then send *n* requests."""
    send, close = runner(client, way, url)
    send(50)
    gc.collect()
    gc.freeze()
    send(n)
    close()


def _count(client: str, way: str, url: str, n: int) -> int:
    from instructions import count_instructions

    arguments = [__file__, "--child", client, way, url, str(n)]
    return count_instructions(arguments, what=f"{client}/{way}", timeout=900)


def instructions(url: str) -> dict[str, float]:
    """Instructions per request of every row."""
    small, large = COUNTS
    rows = {}
    for client in CLIENTS:
        for way in WAYS:
            few, many = (_count(client, way, url, n) for n in (small, large))
            rows[f"{client}/{way}"] = (many - few) / (large - small)
            print(f"  instructions: {client}/{way} {rows[f'{client}/{way}']:,.0f}")
    return rows


def cpu_time(url: str, rounds: int, per_round: int) -> dict[str, float]:
    """Median CPU µs per request of every row, the ways alternating in rounds."""
    rows: dict[str, float] = {}
    for client in CLIENTS:
        runners = {way: runner(client, way, url) for way in WAYS}
        for send, _ in runners.values():
            send(50)
        samples: dict[str, list[float]] = {way: [] for way in WAYS}
        for round_number in range(rounds):
            order = WAYS if round_number % 2 == 0 else WAYS[::-1]
            for way in order:
                send = runners[way][0]
                start = time.process_time()
                send(per_round)
                samples[way].append((time.process_time() - start) / per_round * 1e6)
        for way in WAYS:
            runners[way][1]()
            rows[f"{client}/{way}"] = statistics.median(samples[way])
        print(f"  cpu time: {client} done")
    return rows


def report(rows: dict[str, float], unit: str) -> list[str]:
    """Each client's own cost, then what each way adds, in its unit and in %."""
    lines = [
        f"| client | bare ({unit}) | noop | floor | by hand | ours | limit"
        " | ours over floor | ours outside a unit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for client in CLIENTS:
        bare = rows[f"{client}/bare"]

        def added(way: str, bare: float = bare, client: str = client) -> str:
            extra = rows[f"{client}/{way}"] - bare
            return f"{extra:,.0f} ({extra / bare:.2%})"

        over = (rows[f"{client}/unit"] - rows[f"{client}/floor"]) / bare
        lines.append(
            f"| {client} | {bare:,.0f} | {added('noop')} | {added('floor')} |"
            f" {added('by-hand')} | {added('unit')} | ≤ {LIMITS[client]:.0%} |"
            f" {over:.2%} | {added('outside')} |"
        )
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        client, way, url, n = argv[1:5]
        child(client, way, url, int(n))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument(
        "--instructions-only", action="store_true", help="no CPU-time step"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "outbound.json")
    args = parser.parse_args(argv)
    measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data: dict[str, Any] = {"measured": measured}
    text = ["## Outbound calls: what each integration adds per request", ""]
    with serve() as url:
        if not args.instructions_only:
            data["cpu_us"] = cpu_time(url, args.rounds, args.per_round)
            text += ["CPU time, µs per request (median):", ""]
            text += [*report(data["cpu_us"], "µs"), ""]
        if shutil.which("valgrind"):
            data["instructions"] = instructions(url)
            text += ["Instructions per request (callgrind, client process):", ""]
            text += [*report(data["instructions"], "instructions"), ""]
        else:
            text += ["(no valgrind: no instruction counts)", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
