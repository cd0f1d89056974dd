"""The WSGI adapter behind real threaded WSGI servers, over real sockets.

Each test starts a server on 127.0.0.1 with a small, fixed set of request
threads and sends it far more requests than it has threads, so every thread
serves many requests in turn:

- waitress, in this process: a socket loop thread and 3 worker threads;
- gunicorn with one ``gthread`` worker of 2 threads, in a subprocess (its
  output must hold no traceback, and warnings are errors there too);
- ``wsgiref.simple_server``, in this process: one thread serves everything.

The app is ``wsgi_probe.build_app()``: plain WSGI endpoints behind
``RequestIdMiddleware`` behind a WSGI checker (wsgiref's ``validator``, or
werkzeug's ``LintMiddleware`` under gunicorn), behind a recording layer that
checks the server's own context never holds an id. The endpoints report what
they see in the response body; ``close()`` callbacks report to the server-side
records, which the tests read over HTTP (``/_records``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_testing import HEX32
from servers import serve_gunicorn, serve_waitress, serve_wsgiref, wait_until
from wsgi_probe import LINE_SIZE, LONG_LIMIT_SECONDS, RECORDS_PATH, STREAM_CHUNKS
from wsgi_probe import build_app as build_probe_app

HEADER = "X-Request-ID"
REQUEST_COUNT = 300
CLIENT_THREADS = 8
CLIENT_TIMEOUT = httpx.Timeout(20.0)
SOCKET_TIMEOUT = 10.0
WAITRESS_THREADS = 3
GUNICORN_THREADS = 2
PATHS = ("/id", "/stream", "/closing")

pytestmark = pytest.mark.parametrize("server", ["waitress", "gunicorn", "wsgiref"])


# --- servers --------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    """A running server: its base URL and how many request threads it has."""

    name: str
    url: str
    threads: int

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        url = httpx.URL(self.url)
        assert url.port is not None
        return url.host, url.port


@contextmanager
def running(server: str) -> Iterator[Live]:
    """Start *server* with a new probe app; stop it on exit, whatever happens."""
    if server == "waitress":
        with serve_waitress(
            build_probe_app(), threads=WAITRESS_THREADS, probe_path=RECORDS_PATH
        ) as url:
            yield Live(server, url, WAITRESS_THREADS)
    elif server == "gunicorn":
        log: list[str] = []
        with serve_gunicorn(
            'wsgi_probe:build_app("werkzeug")',
            threads=GUNICORN_THREADS,
            probe_path=RECORDS_PATH,
            # Warnings are errors, as in this process; but gunicorn itself
            # leaks a socket object when it takes over an fd:// listener
            # (sock.create_sockets), which would fail every start.
            env={"PYTHONWARNINGS": "error,ignore::ResourceWarning"},
            log=log,
        ) as url:
            yield Live(server, url, GUNICORN_THREADS)
        # What no response shows: an error in the worker, or a body garbage
        # collected unclosed (the checker complains from __del__).
        assert "Traceback" not in log[0], log[0]
        assert "Exception ignored" not in log[0], log[0]
    else:
        assert server == "wsgiref"
        with serve_wsgiref(build_probe_app(), probe_path=RECORDS_PATH) as url:
            yield Live(server, url, 1)


def new_client(live: Live, connections: int = 1) -> httpx.Client:
    """A keep-alive client for *live* with at most *connections* connections."""
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections
    )
    return httpx.Client(base_url=live.url, limits=limits, timeout=CLIENT_TIMEOUT)


def settled_records(client: httpx.Client, calls: int | None = None) -> Any:
    """Return the server-side records once every body handed out was closed.

    A server may call ``close()`` after the client has read the whole body,
    so poll. With *calls*, also wait until that many requests reached the app.
    """

    def settled() -> Any:
        response = client.get(RECORDS_PATH)
        assert response.status_code == 200, response.text
        records = response.json()
        done = records["closed"] == records["calls"]
        if calls is not None:
            done = done and records["calls"] == calls
        return records if done else None

    return wait_until(settled, what="closing every response body")


# --- requests and replies -------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One response, with everything the app reported about its request."""

    path: str
    sent: str | None
    request_id: str
    ids: list[str | None]
    idents: frozenset[int]
    pids: frozenset[int]


def headers_for(request_id: str | None) -> dict[str, str]:
    """The request headers sending *request_id*, or none at all."""
    return {} if request_id is None else {HEADER: request_id}


def reports_in(body: bytes) -> list[dict[str, Any]]:
    """Parse a body of padded JSON report lines."""
    assert len(body) % LINE_SIZE == 0, body[:200]
    return [json.loads(line) for line in body.splitlines()]


def check_reply(response: httpx.Response, sent: str | None) -> Reply:
    """Check that every id in *response* is its one final id; return the facts.

    *sent* is the id the client sent, or ``None`` when it sent no header (the
    adapter must then have generated a 32-hex id).
    """
    path = response.request.url.path
    assert response.status_code == 200, (path, response.text)
    echoed = response.headers.get_list(HEADER)
    assert len(echoed) == 1, (path, echoed)
    request_id = echoed[0]
    if sent is None:
        assert HEX32.fullmatch(request_id), (path, request_id)
    else:
        assert request_id == sent, (path, request_id, sent)

    reports = reports_in(response.content)
    if path == "/stream":
        assert [r["chunk"] for r in reports] == list(range(STREAM_CHUNKS))
    else:
        assert len(reports) == 1, reports
    # In the handler and in every chunk made after it returned: the context,
    # the environ key and the rewritten request header all hold the one id.
    ids = [r[key] for r in reports for key in ("context_id", "environ_id", "header")]
    assert ids == [request_id] * len(ids), (path, request_id, reports)
    return Reply(
        path,
        sent,
        request_id,
        ids,
        frozenset(r["ident"] for r in reports),
        frozenset(r["pid"] for r in reports),
    )


def make_plan(prefix: str) -> list[tuple[str, str | None]]:
    """REQUEST_COUNT (path, id) pairs over every endpoint; every third has no id."""
    plan: list[tuple[str, str | None]] = []
    for n in range(REQUEST_COUNT):
        path = PATHS[(n // 3) % len(PATHS)]
        request_id = None if n % 3 == 0 else f"{prefix}-{n:03d}-{secrets.token_hex(4)}"
        plan.append((path, request_id))
    return plan


def check_all(
    live: Live,
    plan: Sequence[tuple[str, str | None]],
    replies: Sequence[Reply],
    records: Any,
) -> set[int]:
    """The checks every many-request test shares; returns the server threads used."""
    assert len(replies) == len(plan) == REQUEST_COUNT
    # No request saw another's id: every reply's ids are its own (check_reply),
    # and no two replies share one.
    assert len({r.request_id for r in replies}) == REQUEST_COUNT
    sent = {s for _, s in plan if s is not None}
    fresh = [r.request_id for r in replies if r.sent is None]
    assert len(fresh) == REQUEST_COUNT // 3
    assert sent.isdisjoint(fresh)

    # Thread reuse really happened: few threads, each serving many requests,
    # all in one process.
    idents = {i for r in replies for i in r.idents}
    assert len(idents) <= live.threads < REQUEST_COUNT, idents
    assert len({p for r in replies for p in r.pids}) == 1

    # Server side: every body closed, the server's context never held an id,
    # and each close() callback saw its own request's id.
    assert records["violations"] == []
    assert records["calls"] == records["closed"] == REQUEST_COUNT
    closing = {r.request_id for r in replies if r.path == "/closing"}
    closes = records["closes"]
    assert len(closes) == len(closing)
    for close in closes:
        assert close["path"] == "/closing"
        assert close["environ_id"] in closing, close
        assert close["context_id"] == close["environ_id"] == close["header"], close
    assert {c["environ_id"] for c in closes} == closing
    return idents


# --- raw sockets ------------------------------------------------------------------


def raw_exchange(live: Live, request: bytes) -> bytes:
    """Send *request* over a new socket; return all the server sends until EOF.

    The request should be HTTP/1.0, so the server closes after one response.
    Every socket operation is bounded by SOCKET_TIMEOUT.
    """
    received = bytearray()
    with socket.create_connection(live.address, timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            received += chunk
            assert len(received) < 1024 * 1024, "runaway response"
    return bytes(received)


def parse_response(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Split an HTTP/1.x response into status, header pairs and body."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    assert separator, raw[:500]
    status_line, *lines = head.split(b"\r\n")
    status = int(status_line.split(b" ")[1])
    headers = []
    for line in lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers, body


def values_of(headers: Sequence[tuple[bytes, bytes]], name: str) -> list[str]:
    """The values of every *name* header, decoded as latin-1."""
    key = name.lower().encode()
    return [value.decode("latin-1") for n, value in headers if n == key]


# --- tests ------------------------------------------------------------------------


def test_sequential_requests_on_few_threads(server: str) -> None:
    """300 requests in turn on reused threads each see only their own id."""
    plan = make_plan("seq")
    with running(server) as live, new_client(live) as client:
        replies = [
            check_reply(client.get(path, headers=headers_for(sent)), sent)
            for path, sent in plan
        ]
        records = settled_records(client, calls=REQUEST_COUNT)
    check_all(live, plan, replies, records)


def test_concurrent_requests_on_few_threads(server: str) -> None:
    """300 requests over 8 connections at once each see only their own id."""
    plan = make_plan("par")
    with running(server) as live, new_client(live, CLIENT_THREADS) as client:

        def send(step: tuple[str, str | None]) -> Reply:
            path, sent = step
            return check_reply(client.get(path, headers=headers_for(sent)), sent)

        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            replies = list(pool.map(send, plan))
        records = settled_records(client, calls=REQUEST_COUNT)
    idents = check_all(live, plan, replies, records)
    # Under load every request thread of the server took a share.
    assert len(idents) == live.threads


@dataclass(frozen=True)
class Hostile:
    """A request header no well-behaved HTTP client would send."""

    name: str
    #: Raw header lines, each ending in CRLF.
    lines: bytes
    #: Plain HTTP that every server must hand to the app (the others, with
    #: control characters or obsolete syntax, a server may refuse with a 4xx).
    valid_http: bool


def hostile_headers(marker: bytes) -> list[Hostile]:
    """Hostile X-Request-ID headers, each holding *marker* in its value."""

    def line(value: bytes, name: bytes = b"X-Request-ID") -> bytes:
        return name + b": " + value + b"\r\n"

    long_value = (b"long-" + marker) * (2000 // (len(marker) + 5) + 1)
    return [
        Hostile("2000 characters", line(long_value[:2000]), True),
        Hostile(
            "script with a space", line(b'<script>alert("' + marker + b'") x'), True
        ),
        Hostile("script", line(b"<script>" + marker + b"</script>"), True),
        Hostile("lower-case name", line(b"<" + marker + b">", b"x-request-id"), True),
        Hostile("list", line(b"a-" + marker + b", b-" + marker), True),
        Hostile("repeated", line(b"r1-" + marker) + line(b"r2-" + marker), True),
        Hostile("UTF-8", line(b"id-" + marker + "\u00e9".encode()), True),
        Hostile("escape", line(b"esc-" + marker + b"\x1b[31m"), False),
        Hostile("NUL", line(b"nul-" + marker + b"\x00x"), False),
        # Split at the CR or LF or not, every part holding the marker is bad.
        Hostile("bare CR", line(b"cr " + marker + b"\rInjected: " + marker), False),
        Hostile("bare LF", line(b"lf " + marker + b"\nInjected: " + marker), False),
        Hostile("DEL", line(b"del-" + marker + b"\x7f"), False),
        Hostile(
            "obs-fold", line(b"fold-" + marker) + b"  more-" + marker + b"\r\n", False
        ),
    ]


def test_hostile_headers_never_reach_the_response(server: str) -> None:
    """A hostile X-Request-ID never comes back; if the app runs, its id is fresh."""
    marker = secrets.token_hex(12).encode()
    cases = hostile_headers(marker)
    outcomes: dict[str, int] = {}
    with running(server) as live, new_client(live) as client:
        for case in cases:
            request = b"GET /id HTTP/1.0\r\nHost: 127.0.0.1\r\n" + case.lines + b"\r\n"
            raw = raw_exchange(live, request)
            status, headers, body = parse_response(raw)
            outcomes[case.name] = status
            head = raw.partition(b"\r\n\r\n")[0]
            assert marker not in head, (case.name, head)
            if status != 200:
                # The server refused it before the app ran (the records below
                # count the calls): a 4xx, never a 5xx, with no id. Its own
                # error page is its business (waitress quotes the bad line).
                assert not case.valid_http, (case.name, status, raw[:500])
                assert 400 <= status < 500, (case.name, status, raw[:500])
                assert values_of(headers, HEADER) == [], (case.name, headers)
                continue
            assert marker not in body, (case.name, body)
            assert values_of(headers, "Injected") == [], (case.name, headers)
            echoed = values_of(headers, HEADER)
            assert len(echoed) == 1, (case.name, echoed)
            assert HEX32.fullmatch(echoed[0]), (case.name, echoed)
            [report] = reports_in(body)
            assert report["context_id"] == echoed[0], (case.name, report)
            assert report["environ_id"] == echoed[0], (case.name, report)
            assert report["header"] == echoed[0], (case.name, report)
        reached = sum(status == 200 for status in outcomes.values())
        records = settled_records(client, calls=reached)
    print(server, outcomes)
    assert records["violations"] == []
    assert reached >= sum(case.valid_http for case in cases)


def abandon_long_stream(live: Live, request_id: str) -> dict[str, Any]:
    """GET /long, read its first line, then reset the connection mid-body.

    Returns the first line's report. The body would run for
    LONG_LIMIT_SECONDS; the server learns of the reset on its next write.
    """
    request = (
        b"GET /long HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        + f"{HEADER}: {request_id}\r\n\r\n".encode()
    )
    received = b""
    with socket.create_connection(live.address, timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(request)
        while len(received.partition(b"\r\n\r\n")[2]) < LINE_SIZE:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the stream early: {received[:500]!r}"
            received += chunk
        # Linger 0: close() resets the connection instead of a FIN handshake.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    status, headers, body = parse_response(received)
    assert status == 200, received[:500]
    assert values_of(headers, HEADER) == [request_id]
    report: dict[str, Any] = json.loads(body[:LINE_SIZE])
    return report


def test_abandoned_stream_leaves_its_thread_clean(server: str) -> None:
    """After a client drops a long stream, its server thread serves clean requests."""
    abandoned = "abandoned-" + secrets.token_hex(8)
    with running(server) as live, new_client(live, CLIENT_THREADS) as client:
        first = abandon_long_stream(live, abandoned)
        assert first["context_id"] == first["environ_id"] == abandoned
        assert first["header"] == abandoned

        def long_closed() -> Any:
            closes = client.get(RECORDS_PATH).json()["closes"]
            found = [c for c in closes if c["path"] == "/long"]
            return found[0] if found else None

        record = wait_until(
            long_closed, timeout=LONG_LIMIT_SECONDS + 5, what="the end of /long"
        )
        # The server closed the body because the client left, not because it
        # ran out; its cleanup still saw the request's id.
        assert record["ended"] == "closed", record
        assert record["context_id"] == record["environ_id"] == abandoned, record
        target = (record["pid"], record["ident"])
        assert target == (first["pid"], first["ident"])

        # Now send requests without an id (in parallel, so every thread gets
        # some) until the thread that served the abandoned stream served one.
        replies: list[Reply] = []

        def send(path: str) -> Reply:
            return check_reply(client.get(path), None)

        def served_by_target() -> bool:
            with ThreadPoolExecutor(CLIENT_THREADS) as pool:
                replies.extend(pool.map(send, ["/id", "/stream"] * CLIENT_THREADS))
            return any(
                (p, i) == target for r in replies for p in r.pids for i in r.idents
            )

        wait_until(served_by_target, what="a request on the abandoned thread")
        records = settled_records(client, calls=1 + len(replies))

    fresh = [r.request_id for r in replies]
    assert len(set(fresh)) == len(fresh)
    assert abandoned not in fresh
    assert all(abandoned not in r.ids for r in replies)
    assert records["violations"] == []


def _threads_alive(idents: set[int]) -> set[int]:
    return idents & {t.ident for t in threading.enumerate()}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_server_is_gone_after_the_with_block(server: str) -> None:
    """Leaving the block stops the server: port closed, request threads gone."""
    with (
        running(server) as live,
        new_client(live, CLIENT_THREADS) as client,
        ThreadPoolExecutor(CLIENT_THREADS) as pool,
    ):
        replies = list(
            pool.map(lambda _: check_reply(client.get("/id"), None), range(30))
        )
    pids = {p for r in replies for p in r.pids}
    idents = {i for r in replies for i in r.idents}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(live.address, timeout=SOCKET_TIMEOUT).close()
    if server == "gunicorn":
        [pid] = pids
        assert pid != os.getpid()
        # The worker process was stopped and reaped.
        assert not _process_alive(pid)
    else:
        assert pids == {os.getpid()}
        # Worker threads may still be on their way out for a moment.
        wait_until(
            lambda: not _threads_alive(idents),
            what="the end of the server's request threads",
        )
