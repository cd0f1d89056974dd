"""Requests served in process from inside other units of work are their own.

An in-process request (a test client call, an app calling another app through
httpx's transports) made inside a ``bound_request_id`` block, or inside
another request of the same protocol, gets the id its own adapter chooses:
the client's valid header, or a generated one. Afterwards the caller's id is
current again. Real Starlette, FastAPI and Flask apps, wired the documented
way; the protocol-level versions are in ``tests/adapters/test_*_lifetime.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.validate import validator

import anyio
import httpx
import pytest
from asgi_testing import TIMEOUT, asgi_client
from flask import Flask, request
from framework_testing import FRAMEWORKS, HEADER, assert_consistent, build_app, echo_app
from hooks_testing import counting_generator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client

from adapters.wsgi import RequestIdMiddleware
from correlation import Config, bound_request_id, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: The in-process request's own header, and the id its adapter must choose
#: (its config generates ``gen-N``).
OWN_HEADERS = [
    pytest.param({"X-Request-ID": "client-1"}, "client-1", id="valid-header"),
    pytest.param({}, "gen-1", id="no-header"),
    pytest.param({"X-Request-ID": "<script>"}, "gen-1", id="invalid-header"),
]

#: How the test sends a request in process to a Flask app.
WSGI_CLIENTS = [
    pytest.param("werkzeug", id="werkzeug-lint"),
    pytest.param("httpx", id="httpx-wsgiref-validator"),
]


def flask_app(name: str, config: Config) -> tuple[Flask, list[contextvars.Context]]:
    """A Flask app behind the adapter whose ``/view`` reports what it sees.

    Also returns the list the view appends a copy of its context to.
    """
    app = Flask(name, root_path=str(Path(__file__).parent))
    contexts: list[contextvars.Context] = []

    @app.get("/view")
    def view() -> dict[str, Any]:
        contexts.append(contextvars.copy_context())
        return {
            "context": get_request_id(),
            "headers": request.headers.getlist(HEADER),
            "environ": request.environ.get("correlation.request_id"),
        }

    app.wsgi_app = RequestIdMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, config=config
    )
    return app, contexts


def wsgi_get(
    client: str, app: WSGIApplication, path: str, headers: dict[str, str]
) -> tuple[list[str], Any]:
    """GET *path* on *app* in this thread and context: the ids and the JSON.

    Through werkzeug's Client under ``LintMiddleware``, or httpx's WSGI
    transport under wsgiref's validator; the body is read and closed.
    """
    if client == "werkzeug":
        response = Client(LintMiddleware(app)).get(path, headers=headers)
        try:
            assert response.status_code == 200
            return response.headers.getlist(HEADER), response.get_json()
        finally:
            response.close()
    transport = httpx.WSGITransport(app=validator(app))
    with httpx.Client(
        transport=transport, base_url="http://testserver", timeout=TIMEOUT
    ) as http:
        reply = http.get(path, headers=headers)
    assert reply.status_code == 200
    return reply.headers.get_list(HEADER), reply.json()


# --- inside a bound_request_id block -------------------------------------------


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
@pytest.mark.parametrize("path", ["/async", "/sync"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_asgi_request_inside_a_block_is_a_request_of_its_own(
    framework: str, path: str, request_headers: dict[str, str], expected: str
) -> None:
    """A Starlette or FastAPI request made inside a block gets its own id.

    httpx's ASGI transport runs the app in the block's own task; the endpoint
    (on the loop, or in a worker thread) sees the adapter's id, not the
    block's, and the block's id is current again afterwards.
    """
    app = echo_app(framework, config=Config(generator=counting_generator()))

    async def main() -> tuple[httpx.Response, str | None]:
        with bound_request_id("block-id"):
            async with asgi_client(app) as client:
                with anyio.fail_after(TIMEOUT):
                    response = await client.get(path, headers=request_headers)
            return response, get_request_id()

    response, after = asyncio.run(main())
    assert assert_consistent(response) == expected
    assert after == "block-id"


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
@pytest.mark.parametrize("client", WSGI_CLIENTS)
def test_wsgi_request_inside_a_block_is_a_request_of_its_own(
    client: str, request_headers: dict[str, str], expected: str
) -> None:
    """A Flask request made inside a block gets its own id, then the block's is back.

    The view, Flask's request header, the environ and the response carry the
    adapter's id; a context copied in the view reads None once the response
    ended, while the block still runs.
    """
    app, contexts = flask_app(
        "correlation_in_process_block", Config(generator=counting_generator())
    )
    with bound_request_id("block-id"):
        echoed, seen = wsgi_get(client, app, "/view", request_headers)
        after = get_request_id()
        (context,) = contexts
        copied_after = context.run(get_request_id)
    assert echoed == [expected]
    assert seen == {"context": expected, "headers": [expected], "environ": expected}
    assert after == "block-id"
    assert copied_after is None


def test_decorated_job_calling_an_app_in_process_keeps_its_own_id() -> None:
    """A @bound_request_id() job calling a Flask app keeps its id; each gets its own."""
    app, _ = flask_app(
        "correlation_in_process_job", Config(generator=counting_generator())
    )

    @bound_request_id()
    def job() -> tuple[str | None, list[str], str | None]:
        before = get_request_id()
        echoed, _ = wsgi_get("werkzeug", app, "/view", {})
        return before, echoed, get_request_id()

    before, echoed, after = job()
    assert before is not None
    assert echoed == ["gen-1"]
    assert after == before
    assert get_request_id() is None


# --- inside another request of the same protocol --------------------------------


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
@pytest.mark.parametrize("client", WSGI_CLIENTS)
def test_flask_client_inside_a_flask_view_is_a_request_of_its_own(
    client: str, request_headers: dict[str, str], expected: str
) -> None:
    """A wrapped Flask app called in process from a wrapped Flask view: two ids.

    The inner environ is a new one, without the outer request's mark, and the
    outer binding is a WSGI adapter's: the inner adapter chooses its own id,
    and the outer view sees its own id again after the call.
    """
    inner, inner_contexts = flask_app(
        "correlation_in_process_inner", Config(generator=counting_generator())
    )
    outer = Flask("correlation_in_process_outer", root_path=str(Path(__file__).parent))

    @outer.get("/outer")
    def outer_view() -> dict[str, Any]:
        before = get_request_id()
        echoed, seen = wsgi_get(client, inner, "/view", request_headers)
        return {
            "before": before,
            "after": get_request_id(),
            "environ": request.environ.get("correlation.request_id"),
            "inner_echoed": echoed,
            "inner_seen": seen,
        }

    outer.wsgi_app = RequestIdMiddleware(  # type: ignore[method-assign]
        outer.wsgi_app, config=Config(generator=counting_generator("outer"))
    )
    echoed, body = wsgi_get("werkzeug", outer, "/outer", {})
    assert echoed == ["outer-1"]
    assert body == {
        "before": "outer-1",
        "after": "outer-1",
        "environ": "outer-1",
        "inner_echoed": [expected],
        "inner_seen": {
            "context": expected,
            "headers": [expected],
            "environ": expected,
        },
    }
    (context,) = inner_contexts
    assert context.run(get_request_id) is None


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_asgi_app_called_from_an_endpoint_is_a_request_of_its_own(
    framework: str, request_headers: dict[str, str], expected: str
) -> None:
    """An endpoint calling another wrapped app through httpx's ASGI transport.

    The inner scope is a new one, without the outer adapter's mark: the inner
    adapter chooses its own id, the outer endpoint keeps its own.
    """
    inner = echo_app(framework, config=Config(generator=counting_generator()))

    async def endpoint(request: Request) -> Response:
        before = get_request_id()
        async with asgi_client(inner) as client:
            with anyio.fail_after(TIMEOUT):
                response = await client.get("/async", headers=request_headers)
        return JSONResponse(
            {
                "before": before,
                "after": get_request_id(),
                "inner_id": assert_consistent(response),
            }
        )

    outer = build_app(
        framework,
        {"/": endpoint},
        config=Config(generator=counting_generator("outer")),
    )

    async def main() -> httpx.Response:
        async with asgi_client(outer) as client:
            with anyio.fail_after(TIMEOUT):
                return await client.get("/")

    response = asyncio.run(main())
    assert response.headers.get_list(HEADER) == ["outer-1"]
    assert response.json() == {
        "before": "outer-1",
        "after": "outer-1",
        "inner_id": expected,
    }
