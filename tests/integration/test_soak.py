"""Soak: many requests through one long-lived server process per adapter.

Each test starts one server as a separate process (uvicorn serving the ASGI
adapter, waitress serving the WSGI adapter; see ``soak_servers``) and sends
it ``CORRELATION_SOAK_REQUESTS`` requests (CI's reduced size by default)
from ``CONNECTIONS`` client threads, each with one keep-alive connection
(``http.client``: the lightest client, so the server, not the client, is
what the load measures) kept open for the whole run:

- every 5th request sends no header, the others a distinct 32-hex id;
- every 10th asks for a streamed body whose chunks each report the id;
- the rest alternate between an endpoint run on the loop or a plain list
  body, and one run in Starlette's thread pool or with a ``close()``.

Every response must carry exactly one ``X-Request-ID``, equal to the id the
body reports (in the context, the scope's state or environ, the request
header, every chunk), equal to the id sent if one was, and otherwise a new
32-hex id never seen before in the run and never sent. The server's own
``/_diag`` endpoint, outside the adapter, then shows that nothing is left
behind: no id in its context or in copies of request contexts kept past the
response, no live ``Binding``, no extra asyncio task (ASGI) or thread (WSGI),
nothing the cyclic garbage collector had to free during the load
(``GC_COLLECTED_LIMIT``); and its resident memory, read from
``/proc/<pid>/status``, grows by at most ``RSS_GROWTH_LIMIT_KIB`` between the
end of the warm-up (the first 10% of the requests) and the end.

The full size, for a release or a closing note (2 to 3 minutes for both on
a 2-core machine)::

    CORRELATION_SOAK_REQUESTS=100000 pytest tests/integration/test_soak.py -q -s
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgi_testing import HEX32
from servers import http_implementations
from soak_apps import DIAG_PATH, KEPT_COPIES, STREAM_CHUNKS
from soak_servers import (
    ServerKind,
    ServerProcess,
    cpu_seconds,
    rss_kib,
    serve_process,
)

HEADER = "X-Request-ID"
HOST = "127.0.0.1"

#: Requests per server. CI runs the default; the full soak is 100,000.
REQUESTS = int(os.environ.get("CORRELATION_SOAK_REQUESTS", "6000"))
#: The first tenth warms the server up (imports, pools, allocator arenas).
WARMUP = REQUESTS // 10
#: Client threads, each with one keep-alive connection: requests in flight.
CONNECTIONS = 16
WAITRESS_THREADS = 4
#: How far resident memory may grow from the end of the warm-up to the end.
#: An absolute bound, not one per request: with no leak the growth does not
#: depend on the request count. Measured growth, 2-core Linux: over three
#: full 100,000-request soaks (Python 3.11) uvicorn +112 to +300 KiB and
#: waitress +4 to +180 KiB; at CI size (Pythons 3.10, 3.11, 3.13) at most
#: +400 KiB, from the allocator and the thread pool starting another worker.
#: 4 MiB is ten times the worst of those. It fails on a leak of about 45
#: bytes per request at full size, or of a retained scope or environ (about
#: 1 KiB) per request at CI size.
#: (Retained bindings are counted exactly, not through memory.)
RSS_GROWTH_LIMIT_KIB = 4 * 1024
#: How many objects the cyclic garbage collector may free on its own while
#: the load runs (after the warm-up). A served request must be freed by
#: reference counting once the server drops it; a reference cycle per request
#: (the WSGI adapter's binding, marked in the environ, once held waitress's
#: start_response, a closure over the task holding that environ) leaves a
#: dozen or more objects per request to the collector, and memory growing
#: between its runs. Measured: 0 on both servers. One object per ten
#: requests is room for a server's rare cycle, not for one per request.
GC_COLLECTED_LIMIT = (REQUESTS - WARMUP) // 10
#: How many ended ``Binding`` objects may stay alive in the uvicorn process
#: with no request in flight. uvicorn schedules a connection's keep-alive
#: timer while the response is sent, so the timer's handle holds a copy of the
#: request's context, binding included (ended: it reads ``None``). The next
#: request cancels the timer, and asyncio keeps cancelled handles in its heap
#: until they come due or it purges them, which it does once over 100 timers
#: are scheduled and more than half of them are cancelled. So about 100 plus
#: one live timer per connection; the rest is slack (seen: 17 to 93). One
#: binding kept per request would exceed it at CI size already.
ASGI_ENDED_BINDINGS_LIMIT = 100 + 3 * CONNECTIONS
#: The slowest throughput the deadlines allow for (requests per second); a
#: loaded 2-core CI machine does several hundred.
SLOWEST_RATE = 100
LOAD_TIMEOUT = 30.0 + REQUESTS / SLOWEST_RATE
#: How long the server may take to settle after the load (last tasks ending).
SETTLE_TIMEOUT = 10.0
#: Socket timeout of every client request.
CLIENT_TIMEOUT = 30.0
#: How often the server's RSS is sampled during the load, in requests.
SAMPLE_EVERY = max(REQUESTS // 10, 1)

pytestmark = pytest.mark.timeout(LOAD_TIMEOUT * 2 + 120)


# --- the client -----------------------------------------------------------------


def plan(index: int, paths: tuple[str, str], run_tag: str) -> tuple[str, str | None]:
    """Return the path and the id to send (``None``: no header) for a request."""
    # 16 hex digits of run tag and 16 of index: 32-hex like a generated id, so
    # a sent id handed to a request that sent none would pass for generated.
    sent = None if index % 5 == 4 else f"{run_tag}{index:016x}"
    # Every 10th is streamed: alternately one with and one without a header.
    if index % 10 == (4 if index // 10 % 2 else 7):
        return "/stream", sent
    return paths[index % 2], sent


@dataclass
class Tally:
    """What one client thread saw."""

    checked: int = 0
    mismatch_count: int = 0
    mismatches: list[str] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)
    generated: list[str] = field(default_factory=list)

    def mismatch(self, index: int, path: str, message: str) -> None:
        self.mismatch_count += 1
        if len(self.mismatches) < 20:
            self.mismatches.append(f"request {index} {path}: {message}")

    def add(self, other: Tally) -> None:
        self.checked += other.checked
        self.mismatch_count += other.mismatch_count
        self.mismatches.extend(other.mismatches[: 20 - len(self.mismatches)])
        self.sent |= other.sent
        self.generated.extend(other.generated)


def check(
    tally: Tally,
    index: int,
    path: str,
    sent: str | None,
    response: http.client.HTTPResponse,
    body: bytes,
) -> None:
    """Check one response against the contract; record what does not hold."""
    tally.checked += 1
    if response.status != 200:
        tally.mismatch(index, path, f"status {response.status}")
        return
    values = response.headers.get_all(HEADER) or []
    if len(values) != 1:
        tally.mismatch(index, path, f"{HEADER} headers {values!r}")
        return
    (request_id,) = values
    if sent is not None:
        tally.sent.add(sent)
        if request_id != sent:
            tally.mismatch(index, path, f"sent {sent!r}, got {request_id!r}")
    else:
        # Uniqueness across the run is checked once all threads are done.
        tally.generated.append(request_id)
        if HEX32.fullmatch(request_id) is None:
            tally.mismatch(index, path, f"generated {request_id!r} is not 32-hex")
    reports = [json.loads(line) for line in body.splitlines()]
    if path == "/stream":
        expected: list[dict[str, Any]] = [
            {"chunk": chunk, "id": request_id} for chunk in range(STREAM_CHUNKS)
        ]
    else:
        expected = [{"id": request_id, "state": request_id, "header": [request_id]}]
    if reports != expected:
        tally.mismatch(index, path, f"{HEADER} {request_id!r} but body {reports!r}")


def drive(
    connections: list[http.client.HTTPConnection],
    indices: range,
    paths: tuple[str, str],
    run_tag: str,
    on_index: Callable[[int], None] = lambda index: None,
) -> tuple[Tally, float]:
    """Send the requests *indices*, one thread per connection.

    Returns what the threads saw and the seconds it took. Every thread stops
    by itself: when the indices run out, when any thread fails, or at
    LOAD_TIMEOUT (each request is bounded by CLIENT_TIMEOUT).
    """
    pending = iter(indices)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    tallies = [Tally() for _ in connections]

    def next_index() -> int | None:
        with lock:
            return None if stop.is_set() else next(pending, None)

    def work(connection: http.client.HTTPConnection, tally: Tally) -> None:
        try:
            while (index := next_index()) is not None:
                on_index(index)
                path, sent = plan(index, paths, run_tag)
                connection.request("GET", path, headers={HEADER: sent} if sent else {})
                with connection.getresponse() as response:
                    check(tally, index, path, sent, response, response.read())
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=work, args=pair, name=f"soak-client-{n}", daemon=True)
        for n, pair in enumerate(zip(connections, tallies, strict=True))
    ]
    started = time.perf_counter()
    deadline = time.monotonic() + LOAD_TIMEOUT
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    seconds = time.perf_counter() - started
    if any(thread.is_alive() for thread in threads):
        stop.set()
        for thread in threads:
            thread.join(CLIENT_TIMEOUT + 5.0)
        raise TimeoutError(f"{len(indices)} requests took over {LOAD_TIMEOUT} s")
    if errors:
        raise errors[0]
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total, seconds


def diagnostics(port: int) -> dict[str, Any]:
    """The server's own report, from outside the adapter, on a new connection."""
    with closing(http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT)) as c:
        c.request("GET", DIAG_PATH)
        with c.getresponse() as response:
            assert response.status == 200
            report: dict[str, Any] = json.loads(response.read())
    return report


def settled(port: int, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the diagnostics until *done* holds or SETTLE_TIMEOUT passes.

    Returns the last report either way, so the assertions show real numbers.
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        report = diagnostics(port)
        if done(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


# --- the soak -------------------------------------------------------------------


@dataclass
class Run:
    """The numbers one soak produced, and the server's diagnostics."""

    kind: ServerKind
    tally: Tally = field(default_factory=Tally)
    diag_start: dict[str, Any] = field(default_factory=dict)
    diag_warm: dict[str, Any] = field(default_factory=dict)
    diag_end: dict[str, Any] = field(default_factory=dict)
    rss_start: int = 0
    rss_warm: int = 0
    rss_end: int = 0
    rss_samples: list[tuple[int, int]] = field(default_factory=list)
    warmup_seconds: float = 0.0
    load_seconds: float = 0.0
    load_cpu_seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the test output (``-s``, or on failure)."""
        load = REQUESTS - WARMUP
        rate = load / self.load_seconds if self.load_seconds else 0.0
        growth = self.rss_end - self.rss_warm
        peak = max((kib for _, kib in self.rss_samples), default=0)
        diag = {k: v for k, v in self.diag_end.items() if k != "violations"}
        tag = f"[soak {self.kind}]"
        return (
            f"\n{tag} {REQUESTS} requests, {CONNECTIONS} connections: warm-up"
            f" {WARMUP} in {self.warmup_seconds:.1f} s, then {load} in"
            f" {self.load_seconds:.1f} s ({rate:.0f} req/s; server CPU"
            f" {self.load_cpu_seconds:.1f} s); mismatches {self.tally.mismatch_count}"
            f"\n{tag} RSS KiB: start {self.rss_start}, after warm-up {self.rss_warm},"
            f" end {self.rss_end} (growth {growth:+d}, limit {RSS_GROWTH_LIMIT_KIB}),"
            f" peak sample {peak}"
            f"\n{tag} RSS samples (request, KiB): {self.rss_samples}"
            f"\n{tag} diagnostics at start: {self.diag_start}"
            f"\n{tag} diagnostics after warm-up: {self.diag_warm}"
            f"\n{tag} diagnostics at the end: {diag}"
        )


def soak(server: ServerProcess, paths: tuple[str, str]) -> Run:
    """Warm up, sample, load, sample; the server and connections stay up."""
    run = Run(server.kind)
    pid, port = server.pid, server.port
    run_tag = secrets.token_hex(8)
    with ExitStack() as stack:
        connections = [
            stack.enter_context(
                closing(http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT))
            )
            for _ in range(CONNECTIONS)
        ]
        run.diag_start = diagnostics(port)
        run.rss_start = rss_kib(pid)

        warm, run.warmup_seconds = drive(connections, range(WARMUP), paths, run_tag)
        run.tally.add(warm)
        run.diag_warm = settled(
            port, lambda d: d["served"] == WARMUP and d["bindings_in_flight"] == 0
        )
        run.rss_warm = rss_kib(pid)

        def sample(index: int) -> None:
            if index % SAMPLE_EVERY == 0:
                run.rss_samples.append((index, rss_kib(pid)))

        cpu_before = cpu_seconds(pid)
        load, run.load_seconds = drive(
            connections, range(WARMUP, REQUESTS), paths, run_tag, sample
        )
        run.load_cpu_seconds = cpu_seconds(pid) - cpu_before
        run.tally.add(load)
        run.diag_end = settled(port, lambda d: settled_at_end(run, d))
        run.rss_end = rss_kib(pid)
    return run


def settled_at_end(run: Run, report: dict[str, Any]) -> bool:
    """Whether the server is back at rest: all served, nothing in flight."""
    if report["served"] != REQUESTS or report["bindings_in_flight"] != 0:
        return False
    if run.kind == "uvicorn":
        return bool(report["tasks"] <= run.diag_start["tasks"])
    # A worker thread may still hold its last request's body (and so an
    # ended binding) for a moment after the response: wait for it to let go.
    return bool(
        report["threads"] == run.diag_warm["threads"] and report["bindings"] == 0
    )


def run_soak(server: ServerProcess, paths: tuple[str, str]) -> Run:
    """Run the soak, print its numbers, and check what both adapters share."""
    run = soak(server, paths)
    print(run.summary())
    tally, end = run.tally, run.diag_end

    assert tally.mismatch_count == 0, tally.mismatches
    assert tally.checked == REQUESTS
    headerless = sum(plan(i, paths, "")[1] is None for i in range(REQUESTS))
    generated = set(tally.generated)
    assert len(tally.generated) == len(generated) == headerless
    assert not generated & tally.sent
    assert len(tally.sent) == REQUESTS - headerless

    # The server saw every request once, and nothing wrong in its own context.
    assert end["pid"] == server.pid
    assert end["served"] == REQUESTS
    assert end["violation_count"] == 0, end["violations"]
    assert end["request_id"] is None
    assert end["bindings_in_flight"] == 0
    # An id never outlives its request, also in copies of its context.
    assert end["copies_checked"] == run.diag_warm["copies_checked"] == KEPT_COPIES
    assert end["copies_with_id"] == run.diag_warm["copies_with_id"] == 0
    # The connections were kept alive: the server saw no other clients.
    assert end["clients"] == CONNECTIONS

    assert run.rss_end - run.rss_warm <= RSS_GROWTH_LIMIT_KIB, run.summary()
    # Every request was freed by reference counting (see GC_COLLECTED_LIMIT).
    collected = end["gc_collected"] - run.diag_warm["gc_collected"]
    assert collected <= GC_COLLECTED_LIMIT, run.summary()
    return run


def test_uvicorn_process_soak() -> None:
    """A long-lived uvicorn process keeps every id straight and leaves nothing."""
    http = http_implementations()[-1]
    with serve_process("uvicorn", http=http) as server:
        run = run_soak(server, ("/id", "/sync"))
        end = run.diag_end
        # Ended ones only, and not one per request: see ASGI_ENDED_BINDINGS_LIMIT.
        assert end["bindings"] <= ASGI_ENDED_BINDINGS_LIMIT, run.summary()
        assert end["tasks"] <= run.diag_start["tasks"], run.summary()
    assert "Traceback" not in server.log(), server.log()


def test_waitress_process_soak() -> None:
    """A long-lived waitress process keeps every id straight and leaves nothing."""
    with serve_process("waitress", threads=WAITRESS_THREADS) as server:
        run = run_soak(server, ("/id", "/closing"))
        end = run.diag_end
        # The adapter never touches a worker thread's own context.
        assert end["binding_in_context"] is False
        assert end["bindings"] == 0
        assert end["threads"] == run.diag_warm["threads"] == WAITRESS_THREADS + 1
    assert "Traceback" not in server.log(), server.log()
