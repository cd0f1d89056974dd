"""In-process cost per request: bare app, reference middleware, ours, peers.

Every row calls an ASGI or WSGI callable directly, with a prebuilt request,
so that the only code that runs is the application and the middleware in
front of it. Rows come in groups, each measured in its own processes:

``asgi``
    A bare ASGI app; the same app behind the reference middleware
    (``_reference.py``), behind ``adapters.asgi.RequestIdMiddleware`` with the
    default ``Config``, and behind asgi-correlation-id's
    ``CorrelationIdMiddleware`` with its defaults. Driven in an asyncio loop,
    many requests awaited one after another inside one coroutine, so the
    loop's own cost is paid once per sample, not per request.
``wsgi``
    A bare WSGI app; behind the reference middleware; behind
    ``adapters.wsgi.RequestIdMiddleware``. Driven by a direct call, iterating
    the body and calling its ``close()``, as a server does.
``flask``
    A Flask app with one view, called through its WSGI callable; with our WSGI
    adapter on ``app.wsgi_app``; with the reference middleware there; with
    flask-log-request-id's ``RequestID(app)``.
``django``
    Django's ``WSGIHandler`` with one view and no other middleware; wrapped in
    our WSGI adapter; wrapped in the reference middleware; with django-guid's
    and with django-log-request-id's middleware (each set up to use
    ``X-Request-ID`` and to echo it, otherwise their defaults).
``asgi-stream`` and ``wsgi-stream``
    The same middleware in front of an app that sends 1 or 33 body chunks:
    the difference, divided by 32, is the cost per streamed chunk.
``units``
    Units of work outside requests (``_units.py``): a ``bound_request_id``
    block, a decorated call, a carried call and a carrying executor's submit,
    each next to its baseline (an empty ``with`` block, the plain call, the
    standard library's submit). Measured on one CPU (``_machine.one_cpu``).

Each request row runs with a valid ``X-Request-ID`` header (``header``) and
without one (``generated``). A row's *overhead* is its cost minus the bare
row's cost in the same group and variant. See ``_harness.py`` for how samples
are taken.

Run it through ``python bench/run.py``, or directly with a Python that has the
project and ``bench/requirements.txt`` installed::

    python bench/micro.py --out bench/results/micro.json
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import json
import subprocess
import sys
import types
import typing
from pathlib import Path

import _apps
import _harness
import _machine
import _units
from _harness import Case
from _reference import ReferenceASGI, ReferenceWSGI

import correlation.sources
from adapters import asgi, wsgi
from correlation import Config

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIApplication
    from django.http import HttpRequest, HttpResponse

    from adapters._types import Message, Scope

    ASGIApp = Callable[..., Awaitable[None]]

HERE = Path(__file__).resolve().parent

#: A valid UUID4 in hex: every candidate's validator accepts it.
HEADER_VALUE = _apps.HEADER_VALUE

WORKER_GROUPS = ("asgi", "wsgi", "flask", "django", "units")
STREAM_CHUNKS = (1, 33)

# What uvicorn hands an app for `GET /` from curl-like client, in its order.
_ASGI_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
]
_ASGI_SCOPE: dict[str, object] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
}


class _FileWrapper:
    """Stands for a server's ``wsgi.file_wrapper`` (adapters look it up)."""

    def __init__(self, filelike: object, blksize: int = 8192) -> None:
        self.filelike = filelike


_WSGI_ENVIRON: dict[str, object] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "50000",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate",
    "HTTP_CONNECTION": "keep-alive",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.file_wrapper": _FileWrapper,
}


def _variants() -> list[tuple[str, bool]]:
    return [("header", True), ("generated", False)]


# --- drivers ---------------------------------------------------------------


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


class _AsgiDriver:
    """Serves prebuilt requests to an ASGI app in one event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, app: ASGIApp, *, header: bool
    ) -> None:
        headers = list(_ASGI_HEADERS)
        if header:
            headers.append((b"x-request-id", HEADER_VALUE.encode()))
        self._scope = {**_ASGI_SCOPE, "headers": headers}
        self._loop = loop
        self._app = app

    async def _serve(self, loops: int) -> None:
        app = self._app
        scope = self._scope
        receive = _receive
        send = _discard
        for _ in range(loops):
            # A new scope and state per request, as uvicorn makes them.
            await app({**scope, "state": {}}, receive, send)

    def run(self, loops: int) -> None:
        """Serve *loops* requests inside one coroutine."""
        self._loop.run_until_complete(self._serve(loops))

    def probe(self) -> dict[str, str]:
        """Serve one request; return the response headers, lowercased names."""
        started: list[Message] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)

        scope: Scope = {**self._scope, "state": {}}
        self._loop.run_until_complete(self._app(scope, _receive, send))
        (start,) = started
        if start["status"] != 200:
            raise RuntimeError(f"status {start['status']}")
        return {k.decode().lower(): v.decode() for k, v in start["headers"]}


def _write(data: bytes) -> None:
    return None


def _start_response(
    status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
) -> Callable[[bytes], object]:
    return _write


class _WsgiDriver:
    """Serves prebuilt requests to a WSGI app: call, iterate, close."""

    def __init__(self, app: WSGIApplication, *, header: bool) -> None:
        environ = dict(_WSGI_ENVIRON)
        if header:
            environ["HTTP_X_REQUEST_ID"] = HEADER_VALUE
        self._environ = environ
        self._app = app

    def run(self, loops: int) -> None:
        """Serve *loops* requests, each with its own copy of the environ."""
        app = self._app
        environ = self._environ
        start_response = _start_response
        for _ in range(loops):
            body = app(environ.copy(), start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def probe(self) -> dict[str, str]:
        """Serve one request; return the response headers, lowercased names."""
        seen: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(
            status: str,
            headers: list[tuple[str, str]],
            exc_info: OptExcInfo | None = None,
        ) -> Callable[[bytes], object]:
            seen.append((status, headers))
            return _write

        body = self._app(self._environ.copy(), start_response)
        b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
        ((status, headers),) = seen
        if not status.startswith("200"):
            raise RuntimeError(f"status {status}")
        return {k.lower(): v for k, v in headers}


class _Driver(typing.Protocol):
    def run(self, loops: int) -> None: ...

    def probe(self) -> dict[str, str]: ...


def _case(
    group: str,
    candidate: str,
    variant: str,
    driver: _Driver,
    *,
    echoes: bool = True,
    before: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
    block: str = "",
) -> Case:
    """Check that the candidate answers as configured, then make its row.

    A misconfigured peer (another header name, say) would be measured doing
    less than its job, so each row serves one request first and its response
    must carry the id: the incoming one, or a generated one.
    """
    if before is not None:
        before()
    headers = driver.probe()
    if after is not None:
        after()
    echoed = headers.get("x-request-id")
    where = f"{group}/{candidate}/{variant}"
    if candidate == "bare" or not echoes:
        if echoed is not None:
            raise RuntimeError(f"{where}: unexpected X-Request-ID {echoed!r}")
    elif variant == "header" or variant.startswith("chunks="):
        if echoed != HEADER_VALUE:
            raise RuntimeError(f"{where}: echoed {echoed!r}, not the incoming id")
    elif echoed is None or echoed == HEADER_VALUE or len(echoed) < 32:
        raise RuntimeError(f"{where}: no generated id echoed, got {echoed!r}")
    return Case(
        group, candidate, variant, driver.run, block=block, before=before, after=after
    )


# --- groups ----------------------------------------------------------------

#: The adapter with two fallback sources, serving requests that carry the id
#: header: what naming fallbacks costs when the header is there (issue 12:
#: at most 10 % over ``ours``).
FALLBACKS_ROW = "ours+2-fallbacks"
_FALLBACKS_CONFIG = Config(
    fallback_sources=("X-Correlation-ID", correlation.sources.traceparent())
)


def _asgi_candidates(app: ASGIApp) -> dict[str, ASGIApp]:
    acid = importlib.import_module("asgi_correlation_id")
    candidates: dict[str, ASGIApp] = {
        "bare": app,
        "reference": ReferenceASGI(app),
        "ours": asgi.RequestIdMiddleware(app),
        FALLBACKS_ROW: asgi.RequestIdMiddleware(app, config=_FALLBACKS_CONFIG),
        "asgi-correlation-id": acid.CorrelationIdMiddleware(app),
    }
    return candidates


def build_asgi(loop: asyncio.AbstractEventLoop) -> list[Case]:
    """The ``asgi`` and ``asgi-stream`` rows."""
    cases = []
    for variant, header in _variants():
        for candidate, app in _asgi_candidates(_apps.asgi_bare).items():
            driver = _AsgiDriver(loop, app, header=header)
            cases.append(_case("asgi", candidate, variant, driver))
    for chunks in STREAM_CHUNKS:
        stream = _apps.make_asgi_stream(chunks)
        for candidate, app in _asgi_candidates(stream).items():
            driver = _AsgiDriver(loop, app, header=True)
            cases.append(
                _case(
                    "asgi-stream",
                    candidate,
                    f"chunks={chunks}",
                    driver,
                    block="asgi-stream",
                )
            )
    return cases


def _wsgi_candidates(app: WSGIApplication) -> dict[str, WSGIApplication]:
    return {
        "bare": app,
        "reference": ReferenceWSGI(app),
        "ours": wsgi.RequestIdMiddleware(app),
        FALLBACKS_ROW: wsgi.RequestIdMiddleware(app, config=_FALLBACKS_CONFIG),
    }


def build_wsgi() -> list[Case]:
    """The ``wsgi`` and ``wsgi-stream`` rows."""
    cases = []
    for variant, header in _variants():
        for candidate, app in _wsgi_candidates(_apps.wsgi_bare).items():
            driver = _WsgiDriver(app, header=header)
            cases.append(_case("wsgi", candidate, variant, driver))
    for chunks in STREAM_CHUNKS:
        stream = _apps.make_wsgi_stream(chunks)
        for candidate, app in _wsgi_candidates(stream).items():
            driver = _WsgiDriver(app, header=True)
            cases.append(
                _case(
                    "wsgi-stream",
                    candidate,
                    f"chunks={chunks}",
                    driver,
                    block="wsgi-stream",
                )
            )
    return cases


def _flask_view() -> str:
    return "ok"


def build_flask() -> list[Case]:
    """The ``flask`` rows: one Flask app per candidate."""
    import flask

    request_id = importlib.import_module("flask_log_request_id")

    def make(candidate: str) -> WSGIApplication:
        app = flask.Flask(f"bench_{candidate.replace('-', '_')}")
        app.add_url_rule("/", "index", _flask_view)
        if candidate == "reference":
            app.wsgi_app = ReferenceWSGI(app.wsgi_app)  # type: ignore[method-assign]
        elif candidate == "ours":
            app.wsgi_app = wsgi.RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
        elif candidate == "flask-log-request-id":
            request_id.RequestID(app)
        return app

    cases = []
    for variant, header in _variants():
        for candidate in ("bare", "reference", "ours", "flask-log-request-id"):
            driver = _WsgiDriver(make(candidate), header=header)
            # flask-log-request-id keeps the id in flask.g; it never echoes it.
            echoes = candidate != "flask-log-request-id"
            cases.append(_case("flask", candidate, variant, driver, echoes=echoes))
    return cases


def _django_view(request: HttpRequest) -> HttpResponse:
    from django.http import HttpResponse

    return HttpResponse("ok")


def _setup_django() -> None:
    import django
    from django.conf import settings
    from django.urls import path

    urls = types.ModuleType("_bench_django_urls")
    urls.__dict__["urlpatterns"] = [path("", _django_view)]
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls.__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=["django_guid"],
        DATABASES={},
        USE_TZ=True,
        # django-guid: our header name; otherwise its defaults (it validates,
        # echoes and adds Access-Control-Expose-Headers).
        DJANGO_GUID={"GUID_HEADER_NAME": "X-Request-ID"},
        # django-log-request-id: read X-Request-ID, generate when absent, echo.
        LOG_REQUEST_ID_HEADER="HTTP_X_REQUEST_ID",
        GENERATE_REQUEST_ID_IF_NOT_IN_HEADER=True,
        REQUEST_ID_RESPONSE_HEADER="X-Request-ID",
    )
    django.setup()


#: Django with ``adapters.django.RequestIdMiddleware`` in ``MIDDLEWARE`` and no
#: adapter: the peers' own setup (issue 12: at most 0.5x the cheaper peer).
DJANGO_MIDDLEWARE_ROW = "ours-django-middleware"


def build_django() -> list[Case]:
    """The ``django`` rows: one ``WSGIHandler`` per candidate."""
    _setup_django()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.signals import request_finished

    # Both peers connect a request_finished receiver at import or app-ready
    # time. Receivers are global, so each is connected only while its own row
    # is measured: otherwise every Django row would pay for them.
    guid_signals = importlib.import_module("django_guid.signals")
    log_request_id = importlib.import_module("log_request_id.middleware")
    receivers: dict[str, Callable[..., None]] = {
        "django-guid": guid_signals.clear_guid,
        "django-log-request-id": log_request_id._clear_request_id,
    }
    for receiver in receivers.values():
        request_finished.disconnect(receiver)

    middleware = {
        DJANGO_MIDDLEWARE_ROW: ["adapters.django.RequestIdMiddleware"],
        "django-guid": ["django_guid.middleware.guid_middleware"],
        "django-log-request-id": ["log_request_id.middleware.RequestIDMiddleware"],
    }

    def make(candidate: str) -> WSGIApplication:
        settings.MIDDLEWARE = middleware.get(candidate, [])
        handler = WSGIHandler()  # loads settings.MIDDLEWARE now
        if candidate == "reference":
            return ReferenceWSGI(handler)
        if candidate == "ours":
            return wsgi.RequestIdMiddleware(handler)
        return handler

    cases = []
    for variant, header in _variants():
        for candidate in (
            "bare",
            "reference",
            "ours",
            DJANGO_MIDDLEWARE_ROW,
            "django-guid",
            "django-log-request-id",
        ):
            driver = _WsgiDriver(make(candidate), header=header)
            before = after = None
            if candidate in receivers:
                receiver = receivers[candidate]
                before = _connector(request_finished.connect, receiver)
                after = _connector(request_finished.disconnect, receiver)
            cases.append(
                _case("django", candidate, variant, driver, before=before, after=after)
            )
    return cases


def _connector(
    method: Callable[[Callable[..., None]], object], receiver: Callable[..., None]
) -> Callable[[], None]:
    def call() -> None:
        method(receiver)

    return call


# --- processes -------------------------------------------------------------


def worker(group: str, *, rounds: int, sample_s: float, seed: int) -> dict[str, object]:
    """Build one group's rows in this process, measure them, return samples."""
    loop = asyncio.new_event_loop()
    # The units rows hand calls to a worker thread: see _machine.one_cpu.
    cpus = _machine.one_cpu() if group == "units" else contextlib.nullcontext()
    try:
        with cpus:
            if group == "asgi":
                cases = build_asgi(loop)
            elif group == "wsgi":
                cases = build_wsgi()
            elif group == "flask":
                cases = build_flask()
            elif group == "django":
                cases = build_django()
            elif group == "units":
                cases = _units.build_units()
            else:
                raise ValueError(f"unknown group {group!r}")
            measured = _harness.measure(
                cases, rounds=rounds, sample_s=sample_s, seed=seed
            )
    finally:
        loop.close()
    return {
        "cases": {
            case.name: {
                "group": case.group,
                "candidate": case.candidate,
                "variant": case.variant,
                "loops": measured[case.name].loops,
                "cpu_ns": measured[case.name].cpu_ns,
                "wall_ns": measured[case.name].wall_ns,
            }
            for case in cases
        }
    }


def _spawn(group: str, args: argparse.Namespace, seed: int) -> dict[str, typing.Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        group,
        "--rounds",
        str(args.rounds),
        "--sample-ms",
        str(args.sample_ms),
        "--seed",
        str(seed),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {group} failed:\n{done.stderr}")
    result: dict[str, typing.Any] = json.loads(done.stdout)
    return result


def run_all(args: argparse.Namespace) -> dict[str, typing.Any]:
    """Run every group in ``args.processes`` worker processes and pool them.

    The processes alternate between groups (asgi, wsgi, flask, django, units,
    asgi, ...), so slow drift of the machine spreads over all groups.
    """
    machine = _machine.describe()
    cases: dict[str, dict[str, typing.Any]] = {}
    for process in range(args.processes):
        for group in args.groups:
            print(f"  micro: {group} process {process + 1}/{args.processes}")
            sys.stdout.flush()
            result = _spawn(group, args, seed=process)
            for name, row in result["cases"].items():
                pooled = cases.setdefault(
                    name,
                    {
                        "group": row["group"],
                        "candidate": row["candidate"],
                        "variant": row["variant"],
                        "loops": [],
                        "cpu_ns": [],
                        "wall_ns": [],
                    },
                )
                pooled["loops"].append(row["loops"])
                pooled["cpu_ns"].append(row["cpu_ns"])
                pooled["wall_ns"].append(row["wall_ns"])
    return {
        "kind": "micro",
        "machine": machine,
        "load_after": _machine.load_average(),
        "settings": {
            "processes": args.processes,
            "rounds": args.rounds,
            "sample_ms": args.sample_ms,
            "header_value": HEADER_VALUE,
        },
        "cases": cases,
    }


def dump_pyperf(data: dict[str, typing.Any], path: Path) -> None:
    """Save the samples as a pyperf suite: one pyperf run per process.

    Values are per-request CPU seconds; ``python -m pyperf stats`` and
    ``compare_to`` read the file.
    """
    pyperf = importlib.import_module("pyperf")
    benchmarks = []
    for name, row in data["cases"].items():
        runs = [
            pyperf.Run(
                [ns / 1e9 for ns in values],
                metadata={"name": name, "loops": loops, "unit": "second"},
                collect_metadata=False,
            )
            for values, loops in zip(row["cpu_ns"], row["loops"], strict=True)
            if values
        ]
        if runs:
            benchmarks.append(pyperf.Benchmark(runs))
    pyperf.BenchmarkSuite(benchmarks).dump(str(path), replace=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the groups (or, with ``--worker``, one of them)."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--worker", choices=WORKER_GROUPS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--groups",
        type=lambda text: text.split(","),
        default=list(WORKER_GROUPS),
        help=f"comma-separated subset of {','.join(WORKER_GROUPS)}",
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--sample-ms", type=float, default=5.0)
    parser.add_argument("--quiet", action="store_true", help="print no table")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "micro.json")
    args = parser.parse_args(argv)

    if args.worker:
        result = worker(
            args.worker,
            rounds=args.rounds,
            sample_s=args.sample_ms / 1000,
            seed=args.seed,
        )
        json.dump(result, sys.stdout)
        return 0

    data = run_all(args)
    _machine.save(data, args.out, quiet=args.quiet, render="render_micro")
    dump_pyperf(data, args.out.with_suffix(".pyperf.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
