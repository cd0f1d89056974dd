"""``correlation.threads`` in real apps: work handed to other threads.

Starlette endpoints (on the loop and in a worker thread) and Flask views hand
work to ``correlation.threads.ThreadPoolExecutor`` and start
``correlation.threads.Thread``: it sees the request's id. Work carried with
``carry()`` that runs after the response has ended (fire-and-forget, released
by an ``Event`` only once the client has the response) still sees the id,
while contexts copied inside it read ``None`` once it returned. A plain
executor's task sees ``None``. Under a real uvicorn server, the toolkit's
executor set as the loop's default executor (in the lifespan) makes
``run_in_executor(None, fn)`` see the id.

Every executor is shut down and every thread joined within ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_testing import HEX32, TIMEOUT
from flask import Flask
from framework_testing import HEADER, build_app, get
from servers import (
    SERVER_THREAD_NAME,
    UvicornHTTP,
    http_implementations,
    serve_uvicorn,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from werkzeug.test import Client

from adapters import asgi, wsgi
from correlation import get_request_id, threads

#: Incoming ids: a valid one is kept, a missing one generated.
INCOMING = [pytest.param("client-id-1", id="valid"), pytest.param(None, id="missing")]


@pytest.fixture
def warm_plain_pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    """A plain executor whose two worker threads started outside any request.

    Started up front, so its threads inherit no request's context when they
    are created (``sys.flags.thread_inherit_context``): a task sees only what
    is carried to it.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    try:
        barrier = threading.Barrier(2, timeout=TIMEOUT)
        for future in [pool.submit(barrier.wait) for _ in range(2)]:
            future.result(TIMEOUT)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def assert_final_id(request_id: str, incoming: str | None) -> None:
    """The kept valid id, or a generated one."""
    if incoming is None:
        assert HEX32.fullmatch(request_id), request_id
    else:
        assert request_id == incoming


# --- work in other threads while the request runs ------------------------------


def hand_off(plain: concurrent.futures.ThreadPoolExecutor) -> dict[str, Any]:
    """Hand ``get_request_id`` to other threads; report what each saw.

    The toolkit's executor (``submit`` and ``map``) and ``Thread`` carry the
    id; the plain executor does not. Each report says whether the work ran
    in another thread.
    """
    here = threading.get_ident()

    def work(_: object = None) -> tuple[str | None, bool]:
        return get_request_id(), threading.get_ident() != here

    with threads.ThreadPoolExecutor(max_workers=2) as pool:
        submitted = pool.submit(work).result(TIMEOUT)
        mapped = list(pool.map(work, range(2), timeout=TIMEOUT))
    started: list[tuple[str | None, bool]] = []
    thread = threads.Thread(target=lambda: started.append(work()))
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    return {
        "context": get_request_id(),
        "submit": submitted,
        "map": mapped,
        "thread": started,
        "plain": plain.submit(work).result(TIMEOUT),
    }


def assert_handed_off(report: dict[str, Any], request_id: str) -> None:
    """Carried work saw *request_id*, in other threads; plain work saw none."""
    assert report == {
        "context": request_id,
        "submit": [request_id, True],
        "map": [[request_id, True], [request_id, True]],
        "thread": [[request_id, True]],
        "plain": [None, True],
    }


@pytest.mark.parametrize("incoming", INCOMING)
@pytest.mark.parametrize("path", ["/async", "/sync"])
def test_starlette_endpoint_work_in_toolkit_threads_sees_the_id(
    warm_plain_pool: concurrent.futures.ThreadPoolExecutor,
    path: str,
    incoming: str | None,
) -> None:
    """Toolkit executor and Thread see the id; a plain executor's task sees None."""

    async def async_endpoint(request: Request) -> Response:
        return JSONResponse(hand_off(warm_plain_pool))

    def sync_endpoint(request: Request) -> Response:
        return JSONResponse(hand_off(warm_plain_pool))

    app = build_app("starlette", {"/async": async_endpoint, "/sync": sync_endpoint})
    response = get(app, path, {} if incoming is None else {HEADER: incoming})
    assert response.status_code == 200
    (request_id,) = response.headers.get_list(HEADER)
    assert_final_id(request_id, incoming)
    assert_handed_off(response.json(), request_id)


def flask_app(name: str) -> Flask:
    """A new Flask app behind the WSGI adapter; routes are added by the test."""
    return Flask(name, root_path=str(Path(__file__).parent))


def flask_get(app: Flask, path: str, incoming: str | None) -> tuple[str, Any]:
    """GET *path* on the wrapped *app* with werkzeug's Client: the id and the JSON."""
    headers = {} if incoming is None else {HEADER: incoming}
    response = Client(app).get(path, headers=headers)
    try:
        assert response.status_code == 200
        (request_id,) = response.headers.getlist(HEADER)
        return request_id, response.get_json()
    finally:
        response.close()


@pytest.mark.parametrize("incoming", INCOMING)
def test_flask_view_work_in_toolkit_threads_sees_the_id(
    warm_plain_pool: concurrent.futures.ThreadPoolExecutor, incoming: str | None
) -> None:
    """Toolkit executor and Thread see the id; a plain executor's task sees None."""
    app = flask_app("correlation_threads_hand_off")

    @app.get("/view")
    def view() -> dict[str, Any]:
        return hand_off(warm_plain_pool)

    app.wsgi_app = wsgi.RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    request_id, report = flask_get(app, "/view", incoming)
    assert_final_id(request_id, incoming)
    assert_handed_off(report, request_id)
    assert get_request_id() is None


# --- fire-and-forget work that outlives the response ---------------------------


@dataclass
class Outliving:
    """Work an endpoint starts and does not wait for, released by the test."""

    plain: concurrent.futures.ThreadPoolExecutor
    release: threading.Event = field(default_factory=threading.Event)
    #: What each job saw after its release, by name.
    seen: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: Contexts each job copied while it ran, by name.
    copies: dict[str, contextvars.Context] = field(default_factory=dict)
    futures: list[concurrent.futures.Future[None]] = field(default_factory=list)
    started: list[threading.Thread] = field(default_factory=list)
    pools: list[threads.ThreadPoolExecutor] = field(default_factory=list)

    def job(self, name: str, request_context: contextvars.Context) -> None:
        """Wait for the release, then record the id and the request's."""
        assert self.release.wait(TIMEOUT)
        self.seen[name] = {
            "job": get_request_id(),
            # A context the request copied: None once the response ended.
            "request": request_context.run(get_request_id),
        }
        self.copies[name] = contextvars.copy_context()

    def start(self) -> None:
        """Start the jobs from inside a request, without waiting for them."""
        request_context = contextvars.copy_context()
        pool = threads.ThreadPoolExecutor(max_workers=1)
        self.pools.append(pool)
        self.futures += [
            self.plain.submit(threads.carry(self.job), "carried", request_context),
            pool.submit(self.job, "toolkit-executor", request_context),
            self.plain.submit(self.job, "plain", request_context),
        ]
        thread = threads.Thread(target=self.job, args=("thread", request_context))
        thread.start()
        self.started.append(thread)

    def finish(self) -> None:
        """Release the jobs and wait for all of them."""
        self.release.set()
        for future in self.futures:
            future.result(TIMEOUT)
        for thread in self.started:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        for pool in self.pools:
            pool.shutdown(wait=True)

    def check(self, request_id: str) -> None:
        """Carried jobs saw *request_id* after the response; copies read None."""
        assert self.seen == {
            "carried": {"job": request_id, "request": None},
            "toolkit-executor": {"job": request_id, "request": None},
            "thread": {"job": request_id, "request": None},
            "plain": {"job": None, "request": None},
        }
        for name, copied in self.copies.items():
            assert copied.run(get_request_id) is None, name


@pytest.fixture
def outliving(
    warm_plain_pool: concurrent.futures.ThreadPoolExecutor,
) -> Iterator[Outliving]:
    """An ``Outliving`` on the warm plain pool, released however the test ends."""
    work = Outliving(warm_plain_pool)
    try:
        yield work
    finally:
        work.release.set()
        for thread in work.started:
            thread.join(TIMEOUT)
        for pool in work.pools:
            pool.shutdown(wait=True)


@pytest.mark.parametrize("incoming", INCOMING)
def test_starlette_fire_and_forget_work_keeps_the_id_after_the_response(
    outliving: Outliving, incoming: str | None
) -> None:
    """Carried work released after the response still sees the id; copies don't."""

    async def endpoint(request: Request) -> Response:
        outliving.start()
        return JSONResponse({"context": get_request_id()})

    app = build_app("starlette", {"/": endpoint})
    response = get(app, "/", {} if incoming is None else {HEADER: incoming})
    (request_id,) = response.headers.get_list(HEADER)
    assert_final_id(request_id, incoming)
    assert response.json() == {"context": request_id}
    assert outliving.seen == {}  # nothing ran before the response was back
    outliving.finish()
    outliving.check(request_id)


@pytest.mark.parametrize("incoming", INCOMING)
def test_flask_fire_and_forget_work_keeps_the_id_after_the_response(
    outliving: Outliving, incoming: str | None
) -> None:
    """Carried work released after the response still sees the id; copies don't."""
    app = flask_app("correlation_threads_outliving")

    @app.get("/view")
    def view() -> dict[str, Any]:
        outliving.start()
        return {"context": get_request_id()}

    app.wsgi_app = wsgi.RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    request_id, body = flask_get(app, "/view", incoming)
    assert_final_id(request_id, incoming)
    assert body == {"context": request_id}
    assert outliving.seen == {}  # nothing ran before the response was back
    outliving.finish()
    outliving.check(request_id)


# --- the loop's default executor under uvicorn ---------------------------------


def executor_app() -> asgi.RequestIdMiddleware:
    """Starlette behind the adapter; its lifespan sets the toolkit's executor.

    ``/`` runs ``get_request_id`` with ``loop.run_in_executor(None, ...)``.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # asyncio.run (uvicorn's runner) shuts the default executor down when
        # the server stops.
        loop = asyncio.get_running_loop()
        loop.set_default_executor(threads.ThreadPoolExecutor(max_workers=4))
        yield

    async def endpoint(request: Request) -> Response:
        loop = asyncio.get_running_loop()

        def work() -> tuple[str | None, str]:
            return get_request_id(), threading.current_thread().name

        in_executor = await loop.run_in_executor(None, work)
        return JSONResponse({"context": get_request_id(), "executor": in_executor})

    starlette = Starlette(routes=[Route("/", endpoint)], lifespan=lifespan)
    return asgi.RequestIdMiddleware(starlette)


@pytest.mark.parametrize("http", http_implementations())
def test_uvicorn_default_executor_set_in_lifespan_carries_the_id(
    http: UvicornHTTP,
) -> None:
    """run_in_executor(None, fn) sees each request's id on a live uvicorn server."""
    plan = ["exec-1", None, "exec-2", None]
    with (
        serve_uvicorn(executor_app(), http=http) as server,
        httpx.Client(base_url=server.url, timeout=TIMEOUT) as client,
    ):
        responses = [
            client.get("/", headers={} if sent is None else {HEADER: sent})
            for sent in plan
        ]
    ids = []
    for sent, response in zip(plan, responses, strict=True):
        assert response.status_code == 200, response.text
        (request_id,) = response.headers.get_list(HEADER)
        assert_final_id(request_id, sent)
        body = response.json()
        assert body["context"] == request_id
        seen, thread_name = body["executor"]
        assert seen == request_id
        assert thread_name != SERVER_THREAD_NAME
        ids.append(request_id)
    assert len(set(ids)) == len(ids)
