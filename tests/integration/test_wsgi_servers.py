"""The WSGI adapter behind real WSGI servers, over real sockets.

The contract's promises must hold on every server, whatever it does to a
header on the way in, and however it reuses threads. Servers, each on
127.0.0.1 and stopped by the tests:

- ``wsgiref``: the standard library's server, one thread, in this process;
- ``waitress``: 3 worker threads, in this process;
- ``werkzeug``: werkzeug's development server (``make_server(...,
  threaded=True)``), a new thread per connection, in this process;
- ``gunicorn-sync``: one ``sync`` worker (one thread), in a subprocess;
- ``gunicorn-gthread``: one ``gthread`` worker of 2 threads, in a subprocess.

Each serves a site from ``wsgi_probe.build_site``: the plain WSGI probe on
every server, Flask on waitress and werkzeug, Django's WSGI handler on both
gunicorns, all behind ``RequestIdMiddleware``, all behind a recording layer
that checks the server's own context never holds an id. The apps report what
they see in the response body; ``close()`` callbacks and log records (through
a handler with ``RequestIdFilter``) go to server-side records, which the tests
read over HTTP. A test *target* is a server and an app on it.

Each server is started once per module, when a test first needs it; every
test starts from cleared records, and checks that the server logged no
traceback it did not cause on purpose.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import socket
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_testing import HEX32
from hostile import HOSTILE, Hostile
from raw_http import exchange, get_request, header_line, read_then_reset
from servers import (
    Running,
    kept_alive,
    serve_gunicorn,
    serve_waitress,
    serve_werkzeug,
    serve_wsgiref,
    wait_until,
)
from wsgi_probe import (
    ERROR_MESSAGE,
    LINE_SIZE,
    LONG_LIMIT_SECONDS,
    RECORDS_PATH,
    RESET_PATH,
    STREAM_CHUNKS,
    UNTRUSTED,
    Framework,
    Recorder,
    build_site,
)

from adapters.wsgi import RequestIdMiddleware

HEADER = "X-Request-ID"
CLIENT_TIMEOUT = httpx.Timeout(20.0)
#: Plain HTTP on 127.0.0.1 only: no client needs the default TLS context,
#: whose construction (loading CA certificates) costs ~80 ms per client.
VERIFY = False
SOCKET_TIMEOUT = 10.0
#: Requests of the concurrency test, and the client threads sending them.
CONCURRENT_REQUESTS = 520
CLIENT_THREADS = 16
#: Requests without an id the keep-alive test sends over one connection.
SEQUENTIAL_REQUESTS = 40
PATHS = ("/id", "/stream", "/closing")
#: Log records each path makes, all carrying the request's id: the handler's,
#: one per streamed chunk, and the close() callback's.
RECORDS_PER_PATH = {"/id": 1, "/stream": 1 + STREAM_CHUNKS, "/closing": 2}
#: The middleware of the Django test project report "<id in>|<id out>".
DJANGO_MIDDLEWARE_HEADERS = ("X-Seen-By-Sync-Middleware", "X-Seen-By-Async-Middleware")

GUNICORN_ENV = {
    # Warnings are errors in the worker too (werkzeug's LintMiddleware warns);
    # but gunicorn itself leaks a socket object when it takes over an fd://
    # listener (sock.create_sockets), which would fail every start.
    "PYTHONWARNINGS": "error,ignore::ResourceWarning",
}


# --- the servers ------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A server under test, and what it truthfully does.

    The behaviours are those of gunicorn 27.0, waitress 3.0 and werkzeug 3.1;
    a server release that changes one fails a test that names it.
    """

    name: str
    #: The framework mounted next to the probe.
    framework: Framework
    #: Request threads per process, reused for request after request; ``None``
    #: for a server that starts a new thread for every connection.
    threads: int | None
    #: Whether a connection carries more than one request.
    keeps_alive: bool
    #: What it hands the app for two ``X-Request-ID`` lines "a" and "b".
    joined: str
    #: Whether it keeps the trailing spaces of ``X-Request-ID:   ws-<token>  ``
    #: (all strip the leading ones).
    keeps_trailing_space: bool
    #: Whether a bare CR or LF inside a header value ends the header line
    #: (``email.feedparser`` under ``http.server``) instead of a 400.
    splits_at_bare_cr_lf: bool
    start: Callable[[], AbstractContextManager[Running]]

    @property
    def apps(self) -> tuple[str, ...]:
        """The mounts tests address: the probe, and the framework's app."""
        return ("probe", self.framework) if self.framework else ("probe",)


@contextmanager
def in_process(
    serve: Callable[[Recorder], AbstractContextManager[Running]],
    recorder: Recorder,
) -> Iterator[Running]:
    """Serve a site in this process; detach its log handlers afterwards."""
    try:
        with serve(recorder) as server:
            yield server
    finally:
        recorder.site.detach_all()


KINDS = {
    kind.name: kind
    for kind in [
        Kind(
            "wsgiref",
            "",
            threads=1,
            keeps_alive=False,
            joined="a,b",
            keeps_trailing_space=False,
            splits_at_bare_cr_lf=True,
            start=lambda: in_process(
                lambda s: serve_wsgiref(s, probe_path=RECORDS_PATH),
                build_site("", "wsgiref"),
            ),
        ),
        Kind(
            "waitress",
            "flask",
            threads=3,
            keeps_alive=True,
            joined="a, b",
            keeps_trailing_space=False,
            splits_at_bare_cr_lf=False,
            start=lambda: in_process(
                lambda s: serve_waitress(s, threads=3, probe_path=RECORDS_PATH),
                build_site("flask", "wsgiref"),
            ),
        ),
        Kind(
            "werkzeug",
            "flask",
            threads=None,
            keeps_alive=False,
            joined="a,b",
            keeps_trailing_space=True,
            splits_at_bare_cr_lf=True,
            # werkzeug puts an int REMOTE_PORT in the environ, which wsgiref's
            # validator rejects: LintMiddleware checks instead.
            start=lambda: in_process(
                lambda s: serve_werkzeug(s, probe_path=RECORDS_PATH),
                build_site("flask", "werkzeug"),
            ),
        ),
        Kind(
            "gunicorn-sync",
            "django",
            threads=1,
            keeps_alive=False,
            joined="a,b",
            keeps_trailing_space=False,
            splits_at_bare_cr_lf=False,
            start=lambda: serve_gunicorn(
                'wsgi_probe:build_site("django", "werkzeug")',
                worker="sync",
                probe_path=RECORDS_PATH,
                env=GUNICORN_ENV,
            ),
        ),
        Kind(
            "gunicorn-gthread",
            "django",
            threads=2,
            keeps_alive=True,
            joined="a,b",
            keeps_trailing_space=False,
            splits_at_bare_cr_lf=False,
            start=lambda: serve_gunicorn(
                'wsgi_probe:build_site("django", "werkzeug")',
                worker="gthread",
                threads=2,
                probe_path=RECORDS_PATH,
                env=GUNICORN_ENV,
            ),
        ),
    ]
}

SERVERS = list(KINDS)
TARGETS = [
    pytest.param(name, app, id=f"{name}-{app}")
    for name, kind in KINDS.items()
    for app in kind.apps
]
each_server = pytest.mark.parametrize("server", SERVERS)
each_target = pytest.mark.parametrize(("server", "app"), TARGETS)


class Pool:
    """The servers of this module, each started when a test first needs it."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.running: dict[str, Running] = {}
        self.pids: dict[str, int] = {}

    def get(self, name: str) -> Running:
        """The running server *name*; started now if it is not yet."""
        if name not in self.running:
            self.running[name] = self.stack.enter_context(KINDS[name].start())
        return self.running[name]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    """Every server a test of this module started; all stopped at its end."""
    with ExitStack() as stack:
        yield Pool(stack)


@dataclass
class Live:
    """A server a test talks to, with its records cleared for the test."""

    kind: Kind
    server: Running
    log_start: int
    records_client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.records_client = httpx.Client(
            base_url=self.server.url, timeout=CLIENT_TIMEOUT, verify=VERIFY
        )

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return self.server.address

    def client(self, connections: int = 1) -> httpx.Client:
        """A keep-alive client with at most *connections* connections."""
        return httpx.Client(
            base_url=self.server.url,
            limits=kept_alive(connections),
            timeout=CLIENT_TIMEOUT,
            verify=VERIFY,
        )

    def snapshot(self, path: str = RECORDS_PATH) -> Any:
        """The server-side records as they are now."""
        response = self.records_client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def records(self, calls: int | None = None) -> Any:
        """The records once every call ended (and *calls* calls were made).

        A server may call ``close()`` after the client has read the whole
        body, so poll.
        """

        def settled() -> Any:
            records = self.snapshot()
            done = records["ended"] == records["calls"]
            if calls is not None:
                done = done and records["calls"] == calls
            return records if done else None

        return wait_until(settled, what="the end of every call")

    def new_log(self) -> str:
        """What the server logged since the test began."""
        return self.server.log()[self.log_start :]


@contextmanager
def serving(pool: Pool, name: str, *, tracebacks: bool = False) -> Iterator[Live]:
    """The pool's server *name*, with cleared records.

    On a clean exit: the server's context never held an id, it is still the
    same process, and (unless *tracebacks*) it logged no traceback.
    """
    server = pool.get(name)
    live = Live(KINDS[name], server, len(server.log()))
    try:
        live.records()
        pid = live.snapshot(RESET_PATH)["pid"]
        # A gunicorn worker that died and was replaced would lose the records.
        assert pool.pids.setdefault(name, pid) == pid
        yield live
        final = live.records()
        assert final["violations"] == [], final["violations"]
        assert final["pid"] == pid
        log = live.new_log()
        if not tracebacks:
            assert "Traceback" not in log, log
            assert "Exception ignored" not in log, log
    finally:
        live.records_client.close()


# --- what a response says ---------------------------------------------------------


def mount(app: str, *, trusted: bool = True) -> str:
    """The path prefix of *app* on a site."""
    return f"/{app}" if trusted else f"/{app}{UNTRUSTED}"


@dataclass(frozen=True)
class Reply:
    """One response, with everything the app reported about its request."""

    path: str
    sent: str | None
    request_id: str
    ids: list[str | None]
    threads: frozenset[tuple[int, int]]
    thread_names: frozenset[str]


def headers_for(request_id: str | None) -> dict[str, str]:
    """The request headers sending *request_id*, or none at all."""
    return {} if request_id is None else {HEADER: request_id}


def reports_in(body: bytes) -> list[dict[str, Any]]:
    """Parse a body of padded JSON report lines."""
    assert len(body) % LINE_SIZE == 0, body[:300]
    return [json.loads(line) for line in body.splitlines()]


def check_body(
    path: str,
    request_id: str,
    headers: Callable[[str], list[str]],
    body: bytes,
    sent: str | None = None,
) -> Reply:
    """Check that everything in a response names *request_id*; return the facts."""
    endpoint = "/" + path.rsplit("/", 1)[1]
    reports = reports_in(body)
    if endpoint == "/stream":
        assert [r["chunk"] for r in reports] == list(range(STREAM_CHUNKS))
    else:
        assert len(reports) == 1, reports
    # In the handler and in every chunk made after it returned: the context,
    # the environ key and the request header the framework shows all hold
    # the one id.
    ids = [r[key] for r in reports for key in ("context_id", "environ_id", "header")]
    assert ids == [request_id] * len(ids), (path, request_id, reports)
    if path.startswith("/django"):
        for name in DJANGO_MIDDLEWARE_HEADERS:
            assert headers(name) == [f"{request_id}|{request_id}"], (path, name)
    return Reply(
        endpoint,
        sent,
        request_id,
        ids,
        frozenset((r["pid"], r["ident"]) for r in reports),
        frozenset(r["thread"] for r in reports),
    )


def check_reply(response: httpx.Response, sent: str | None) -> Reply:
    """Check one httpx response: one id header, the sent id or a fresh one."""
    path = response.request.url.path
    assert response.status_code == 200, (path, response.text[:500])
    echoed = response.headers.get_list(HEADER)
    assert len(echoed) == 1, (path, echoed)
    request_id = echoed[0]
    if sent is None:
        assert HEX32.fullmatch(request_id), (path, request_id)
    else:
        assert request_id == sent, (path, request_id, sent)
    return check_body(
        path, request_id, response.headers.get_list, response.content, sent
    )


def check_records(
    records: Any, replies: Sequence[Reply], *, others: Collection[str] = ()
) -> None:
    """The server side agrees with *replies*: closes and log records.

    *others* are the ids of the other calls the records hold (each one call),
    which the test checks itself.
    """
    assert records["violations"] == []
    assert records["calls"] == records["ended"] == len(replies) + len(others)
    # Each close() callback saw its own request's id, and only that.
    closing = Counter(r.request_id for r in replies if r.path == "/closing")
    closes = [c for c in records["closes"] if c["environ_id"] not in others]
    for close in closes:
        assert close["path"] == "/closing", close
        assert close["context_id"] == close["environ_id"] == close["header"], close
    assert Counter(c["environ_id"] for c in closes) == closing
    # Every log record carries the id of the request that logged it: the
    # handler's, each chunk's and the close() callback's.
    logs = records["logs"]
    for record in logs:
        assert record["request_id"] == record["expect"], record
    expected = Counter[str]()
    for reply in replies:
        expected[reply.request_id] += RECORDS_PER_PATH[reply.path]
    mine = Counter(r["request_id"] for r in logs if r["request_id"] not in others)
    assert mine == expected


def server_threads(kind: Kind, replies: Sequence[Reply]) -> set[tuple[int, int]]:
    """The (pid, thread ident) pairs that served *replies*, all in one process."""
    threads = {t for r in replies for t in r.threads}
    assert len({pid for pid, _ in threads}) == 1, threads
    return threads


# --- conformance: what any HTTP client can send -----------------------------------


@dataclass(frozen=True)
class Case:
    """One incoming header case and the id it must end with."""

    name: str
    #: The raw header lines, given a fresh token.
    lines: Callable[[str], bytes]
    #: The id the response must carry, given the token; ``None``: a fresh one.
    kept: Callable[[str], str] | None
    trusted: bool = True


CASES = [
    Case("valid", lambda t: header_line(f"valid-{t}".encode()), lambda t: f"valid-{t}"),
    Case("absent", lambda t: b"", None),
    Case("129 characters", lambda t: header_line(t.encode().ljust(129, b"x")), None),
    Case("2000 characters", lambda t: header_line(t.encode().ljust(2000, b"x")), None),
    Case("latin-1", lambda t: header_line(f"caf\xe9-{t}".encode("latin-1")), None),
    Case("duplicated", lambda t: header_line(b"a") + header_line(b"b"), None),
    Case(
        "surrounded by whitespace",
        lambda t: header_line(f"  ws-{t}  ".encode()),
        lambda t: f"ws-{t}",
    ),
    Case(
        "trust_incoming=False",
        lambda t: header_line(f"untrusted-{t}".encode()),
        None,
        False,
    ),
]


def what_the_server_hands_over(kind: Kind, case: str, token: str) -> str | None:
    """The X-Request-ID value *kind* puts in the environ for *case*."""
    expected: dict[str, str | None] = {
        "valid": f"valid-{token}",
        "absent": None,
        "129 characters": token.ljust(129, "x"),
        "2000 characters": token.ljust(2000, "x")[:200],
        "latin-1": f"caf\xe9-{token}",
        "duplicated": kind.joined,
        "surrounded by whitespace": f"ws-{token}  "
        if kind.keeps_trailing_space
        else f"ws-{token}",
        "trust_incoming=False": f"untrusted-{token}",
    }
    return expected[case]


@each_target
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance(pool: Pool, server: str, app: str, case: Case) -> None:
    """Each incoming header case ends with the same id on every server and app."""
    token = secrets.token_hex(8)
    path = mount(app, trusted=case.trusted) + "/stream"
    with serving(pool, server) as live:
        response = exchange(
            live.address, get_request(path, case.lines(token)), timeout=SOCKET_TIMEOUT
        )
        assert response.status == 200, response.raw[:500]
        echoed = response.values(HEADER)
        assert len(echoed) == 1, echoed
        [request_id] = echoed
        if case.kept is None:
            assert HEX32.fullmatch(request_id), request_id
        else:
            assert request_id == case.kept(token)
        reply = check_body(path, request_id, response.values, response.body)
        records = live.records(calls=1)
        # What the server handed over differs (the test records it); the
        # outcome above does not.
        [arrival] = records["arrivals"]
        assert arrival["raw"] == what_the_server_hands_over(live.kind, case.name, token)
    check_records(records, [reply])


# --- many requests ----------------------------------------------------------------


def make_plan(app: str, count: int) -> list[tuple[str, str | None]]:
    """*count* (path, id) pairs over every endpoint; every third has no id."""
    prefix = secrets.token_hex(4)
    plan: list[tuple[str, str | None]] = []
    for n in range(count):
        path = mount(app) + PATHS[(n // 3) % len(PATHS)]
        request_id = None if n % 3 == 0 else f"{prefix}-{n:03d}-{secrets.token_hex(4)}"
        plan.append((path, request_id))
    return plan


@each_target
def test_concurrent_requests_each_see_only_their_own_id(
    pool: Pool, server: str, app: str
) -> None:
    """520 requests at once: no id crosses into another request anywhere."""
    plan = make_plan(app, CONCURRENT_REQUESTS)
    with (
        serving(pool, server) as live,
        live.client(CLIENT_THREADS) as client,
        ThreadPoolExecutor(CLIENT_THREADS) as executor,
    ):

        def send(step: tuple[str, str | None]) -> Reply:
            path, sent = step
            return check_reply(client.get(path, headers=headers_for(sent)), sent)

        replies = list(executor.map(send, plan))
        records = live.records(calls=CONCURRENT_REQUESTS)
    # The handler, every chunk and the response header hold the request's
    # own id (check_reply); no two requests share one; close() callbacks and
    # log records agree.
    assert len({r.request_id for r in replies}) == CONCURRENT_REQUESTS
    sent = {s for _, s in plan if s is not None}
    fresh = [r.request_id for r in replies if r.sent is None]
    assert len(fresh) == len(plan) - len(sent)
    assert sent.isdisjoint(fresh)
    check_records(records, replies)

    threads = server_threads(live.kind, replies)
    if live.kind.threads is None:
        # A new thread for every connection: far more threads than a pool.
        assert len({n for r in replies for n in r.thread_names}) > CLIENT_THREADS
    else:
        # Few threads served everything, every one of them under this load.
        assert len(threads) == live.kind.threads < CONCURRENT_REQUESTS


@each_target
def test_keep_alive_and_thread_reuse_give_each_request_a_fresh_id(
    pool: Pool, server: str, app: str
) -> None:
    """Requests without an id in turn, over one client connection, get fresh ids."""
    replies: list[Reply] = []
    ports: list[int] = []
    closing: list[bool] = []
    with serving(pool, server) as live, live.client() as client:
        for n in range(SEQUENTIAL_REQUESTS):
            path = mount(app) + PATHS[n % len(PATHS)]
            with client.stream("GET", path) as response:
                stream = response.extensions["network_stream"]
                ports.append(stream.get_extra_info("client_addr")[1])
                response.read()
            closing.append(
                response.headers.get("connection", "").lower() == "close"
                or response.http_version == "HTTP/1.0"
            )
            replies.append(check_reply(response, None))
        records = live.records(calls=SEQUENTIAL_REQUESTS)
    fresh = [r.request_id for r in replies]
    assert len(set(fresh)) == SEQUENTIAL_REQUESTS
    check_records(records, replies)

    kind = live.kind
    if kind.keeps_alive:
        # One connection carried every request.
        assert not any(closing)
        assert len(set(ports)) == 1, ports
    else:
        # The server closed every connection after its response.
        assert all(closing)
        assert len(set(ports)) > 1, ports
    threads = server_threads(kind, replies)
    names = {n for r in replies for n in r.thread_names}
    if kind.threads is None:
        # A new thread for every connection, so for every request.
        assert len(names) == SEQUENTIAL_REQUESTS
    else:
        # Few threads, each serving many requests in turn.
        assert len(threads) <= kind.threads < SEQUENTIAL_REQUESTS


# --- a client that leaves mid-stream ----------------------------------------------


def abandon_long_stream(live: Live, path: str, request_id: str) -> dict[str, Any]:
    """GET *path* (a ``/long``), read its first line, then reset the connection.

    Returns the first line's report. The body would run for
    LONG_LIMIT_SECONDS; the server learns of the reset on a later write.
    """
    request = get_request(path, header_line(request_id.encode()))
    # The first line may come in a chunk of chunked encoding: find it.
    response = read_then_reset(
        live.address,
        request,
        lambda so_far: b"}" in so_far.raw.partition(b"\r\n\r\n")[2],
        timeout=SOCKET_TIMEOUT,
    )
    assert response.status == 200, response.raw[:500]
    assert response.values(HEADER) == [request_id]
    body = response.body
    start = body.index(b"{")
    report: dict[str, Any] = json.loads(body[start : body.index(b"}", start) + 1])
    return report


def _thread_alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


@each_target
def test_abandoned_stream_leaves_the_server_clean(
    pool: Pool, server: str, app: str
) -> None:
    """After a client drops a long stream, the next requests get fresh ids."""
    abandoned = "abandoned-" + secrets.token_hex(8)
    with serving(pool, server) as live, live.client(CLIENT_THREADS) as client:
        first = abandon_long_stream(live, mount(app) + "/long", abandoned)
        assert first["context_id"] == first["environ_id"] == abandoned
        assert first["header"] == abandoned

        def long_closed() -> Any:
            closes = live.snapshot()["closes"]
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

        replies: list[Reply] = []

        def send(path: str) -> Reply:
            return check_reply(client.get(mount(app) + path), None)

        def another_round() -> list[Reply]:
            with ThreadPoolExecutor(CLIENT_THREADS) as executor:
                batch = list(executor.map(send, list(PATHS) * CLIENT_THREADS))
            replies.extend(batch)
            return batch

        if live.kind.threads is None:
            # The stream's thread served its one connection and ended; every
            # later request runs on a thread of its own.
            wait_until(
                lambda: not _thread_alive(record["thread"]),
                what="the end of the abandoned stream's thread",
            )
            another_round()
            assert record["thread"] not in {n for r in replies for n in r.thread_names}
        else:
            # Send requests without an id (in parallel, so every thread gets
            # some) until the thread that served the stream served one.
            wait_until(
                lambda: any(target in r.threads for r in another_round()),
                what="a request on the abandoned thread",
            )
        records = live.records(calls=1 + len(replies))

    fresh = [r.request_id for r in replies]
    assert len(set(fresh)) == len(fresh)
    assert abandoned not in fresh
    assert all(abandoned not in r.ids for r in replies)
    # The stream's records are its close() callback's only.
    assert [c["ended"] for c in records["closes"] if c["path"] == "/long"] == ["closed"]
    assert [r["where"] for r in records["logs"] if r["request_id"] == abandoned] == [
        "close of /long"
    ]
    check_records(records, replies, others={abandoned})


# --- the app raises -----------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Where an ``/error`` ends: in the framework's 500, or in the server."""

    server: str
    mount: str
    #: ``"framework"``: Flask or Django make the 500 inside the adapter.
    #: ``"server"``: the exception leaves the adapter and the server answers.
    made_by: str


FAILURES = [
    *(Failure(name, "probe", "server") for name in KINDS),
    *(
        failure
        for name, kind in KINDS.items()
        if kind.framework == "flask"
        for failure in (
            Failure(name, "flask", "framework"),
            Failure(name, "flask-propagate", "server"),
        )
    ),
    *(
        Failure(name, "django", "framework")
        for name, kind in KINDS.items()
        if kind.framework == "django"
    ),
]


@pytest.mark.parametrize(
    "failure", FAILURES, ids=[f"{f.server}-{f.mount}" for f in FAILURES]
)
def test_an_app_error_names_the_request(pool: Pool, failure: Failure) -> None:
    """A 500 made inside the adapter carries the id; one the server makes, its log."""
    sent = "failing-" + secrets.token_hex(8)
    by_server = failure.made_by == "server"
    # The note the adapter adds to the exception, which every traceback
    # printer shows after the exception's own line (Python 3.11+ only).
    noted = sys.version_info >= (3, 11)
    exception_line = f"RuntimeError: {ERROR_MESSAGE}\n"
    traceback_end = exception_line + (f"request_id={sent}\n" if noted else "")
    with serving(pool, failure.server, tracebacks=by_server) as live:
        with live.client() as client:
            response = client.get(f"/{failure.mount}/error", headers={HEADER: sent})
            assert response.status_code == 500, response.text[:500]
            records = live.records(calls=1)
            if by_server:
                # A server may log after it answered.
                wait_until(
                    lambda: traceback_end in live.new_log() + "\n",
                    what=f"a traceback ending {traceback_end!r} in the log",
                )
            # The next request on the server is clean.
            after = check_reply(client.get(mount("probe") + "/id"), None)
        log = live.new_log() + "\n"
    # The handler ran with the id, and logged it.
    handler = [r for r in records["logs"] if r["where"] == "handler"]
    assert [(r["request_id"], r["expect"]) for r in handler] == [(sent, sent)]
    framework_logs = [r for r in records["logs"] if r["expect"] is None]
    if by_server:
        # The server made its own 500, after the adapter's start_response
        # was never called: no id header there.
        assert response.headers.get_list(HEADER) == []
        assert framework_logs == []
        # The server's traceback says which request failed (the adapter's
        # note), once; on Python 3.10 it is logged without it.
        assert log.count(exception_line) == 1, log
        assert log.count("request_id=") == (1 if noted else 0), log
        assert traceback_end in log, log
    else:
        assert response.headers.get_list(HEADER) == [sent]
        # The framework logged the error itself, with the id on the record.
        assert len(framework_logs) == 1, records["logs"]
        [error] = framework_logs
        assert error["request_id"] == sent, error
        assert error["exc_info"] is True, error
        # Handled inside the adapter: the server saw no exception at all.
        assert ERROR_MESSAGE not in log, log
        if failure.mount == "django":
            for name in DJANGO_MIDDLEWARE_HEADERS:
                assert response.headers.get_list(name) == [f"{sent}|{sent}"]
    assert after.request_id != sent


# --- hostile bytes no HTTP client sends -------------------------------------------


#: Every row of the hostile table as sent, and one under a lower-case name.
HOSTILE_LINES = [
    *(pytest.param(row, b"X-Request-ID", id=row.name) for row in HOSTILE),
    *(
        pytest.param(row, b"x-request-id", id=f"{row.name}-lower-case-name")
        for row in HOSTILE
        if row.name == "markup"
    ),
]


@each_server
@pytest.mark.parametrize(("row", "name"), HOSTILE_LINES)
def test_hostile_header_never_comes_back(
    pool: Pool, server: str, row: Hostile, name: bytes
) -> None:
    """A hostile X-Request-ID never comes back; if the app runs, its id is fresh.

    The rows that are plain HTTP every server must hand to the app; the
    others a server may refuse.
    """
    marker = secrets.token_hex(12).encode()
    lines = b"".join(header_line(value, name) for value in row.with_marker(marker))
    path = mount("probe") + "/id"
    with serving(pool, server) as live:
        response = exchange(
            live.address, get_request(path, lines), timeout=SOCKET_TIMEOUT
        )
        records = live.records()
    print(server, row.name, response.status, response.reset, records["arrivals"][:1])
    assert marker not in response.head, response.head
    assert response.values("Set-Cookie") == []
    if records["calls"] == 0:
        assert not row.plain_http, (response.status, response.raw[:500])
        # The server refused it before the app ran: a 4xx, or it just closed.
        # Its own error page is its business (waitress quotes the bad line).
        assert response.status is None or 400 <= response.status < 500, response.raw
        assert response.values(HEADER) == []
        return
    # The app ran: its one id is fresh, and nothing the adapter wrote holds
    # the marker.
    assert records["calls"] == 1
    assert response.status == 200, response.raw[:500]
    assert marker not in response.body
    [request_id] = response.values(HEADER)
    assert HEX32.fullmatch(request_id), request_id
    reply = check_body(path, request_id, response.values, response.body)
    check_records(records, [reply])


@each_server
@pytest.mark.parametrize("terminator", [b"\r", b"\n"], ids=["CR", "LF"])
def test_a_bare_cr_or_lf_inside_a_value(
    pool: Pool, server: str, terminator: bytes
) -> None:
    """A bare CR/LF in a value is refused, or ends the line; the rest never returns."""
    token = secrets.token_hex(8)
    header = header_line(
        f"split-{token}".encode() + terminator + b"Set-Cookie: x=" + token.encode()
    )
    with serving(pool, server) as live:
        response = exchange(
            live.address,
            get_request(mount("probe") + "/id", header),
            timeout=SOCKET_TIMEOUT,
        )
        records = live.records()
    assert response.values("Set-Cookie") == []
    if live.kind.splits_at_bare_cr_lf:
        # http.server parses headers with email.feedparser, for which a lone
        # CR or LF ends a line: the app sees the part before it as the whole
        # value (an ordinary, valid id, kept) and the rest as a header of its
        # own (which nothing echoes).
        assert [a["raw"] for a in records["arrivals"]] == [f"split-{token}"]
        assert response.status == 200
        assert response.values(HEADER) == [f"split-{token}"]
    else:
        assert records["calls"] == 0
        assert response.status == 400, response.raw[:500]
        assert response.values(HEADER) == []


# --- the servers stop -----------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@each_server
def test_server_is_gone_after_the_with_block(server: str) -> None:
    """Leaving the block stops the server: port closed, request threads gone."""
    kind = KINDS[server]
    with (
        kind.start() as running,
        httpx.Client(
            base_url=running.url, timeout=CLIENT_TIMEOUT, verify=VERIFY
        ) as client,
        ThreadPoolExecutor(CLIENT_THREADS) as executor,
    ):
        replies = list(
            executor.map(
                lambda _: check_reply(client.get(mount("probe") + "/id"), None),
                range(30),
            )
        )
    threads = {t for r in replies for t in r.threads}
    pids = {pid for pid, _ in threads}
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(running.address, timeout=SOCKET_TIMEOUT).close()
    if server.startswith("gunicorn"):
        [pid] = pids
        assert pid != os.getpid()
        # The worker process was stopped and reaped.
        assert not _process_alive(pid)
    else:
        assert pids == {os.getpid()}
        # Its request threads ended with it (those of the module's other
        # servers, alive meanwhile, have other idents).
        alive = {t.ident for t in threading.enumerate()}
        assert alive.isdisjoint(ident for _, ident in threads)


# --- memory ---------------------------------------------------------------


class _Sentinel:
    """An object each request leaves in its environ, to see when it is freed."""


IN_PROCESS_SERVERS = {
    "wsgiref": serve_wsgiref,
    "waitress": serve_waitress,
    "werkzeug": serve_werkzeug,
}


@pytest.mark.parametrize("body", ["list", "generator"])
@pytest.mark.parametrize("server", sorted(IN_PROCESS_SERVERS))
def test_ended_requests_are_freed_without_the_cyclic_collector(
    server: str, body: str
) -> None:
    """Each server frees a served request by reference counting alone.

    These servers keep the environ on an object their ``start_response`` is
    bound to, and the adapter's stacking mark in the environ holds the
    server's ``start_response``: a cycle while the request is in flight. With
    the cyclic collector off, every request's environ must still be freed
    once its response is sent, or each request's objects would wait for the
    collector (a pause, and memory that grows between its runs).
    """
    freed: list[weakref.ref[_Sentinel]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., object]) -> Any:
        sentinel = _Sentinel()
        environ["test.sentinel"] = sentinel
        freed.append(weakref.ref(sentinel))
        start_response("200 OK", [("Content-Type", "text/plain")])
        if body == "list":
            return [b"ok"]
        return iter([b"o", b"k"])

    requests = 20
    with IN_PROCESS_SERVERS[server](
        RequestIdMiddleware(app), probe_path="/probe"
    ) as running:
        gc.collect()
        gc.disable()
        try:
            with httpx.Client(
                base_url=running.url, timeout=CLIENT_TIMEOUT, verify=VERIFY
            ) as client:
                for _ in range(requests):
                    response = client.get("/", headers={HEADER: "abc"})
                    assert response.text == "ok"
                    assert response.headers[HEADER] == "abc"
            wait_until(
                lambda: all(ref() is None for ref in freed[-requests:]),
                what="every served request's environ to be freed",
            )
        finally:
            gc.enable()
