"""``adapters.django.RequestIdMiddleware``: the id inside Django's own request cycle.

Django's test ``Client`` and ``AsyncClient`` call Django's handler directly,
never ``wsgi.py`` or ``asgi.py``: with the middleware first in ``MIDDLEWARE``
they get the adapters' rules. Behind the WSGI or ASGI adapter the middleware
adopts the adapter's id: one id, one response header, one generated id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx
import pytest
from asgi_testing import HEX32, TIMEOUT
from djangoapp import MIDDLEWARE, ROOT_URLCONF, setup_django
from djangoapp.middleware import ASYNC_HEADER, SYNC_HEADER
from header_sets import TABLE
from header_sets import config as header_config
from hooks_testing import counting_generator
from hostile import MARKER, Hostile, hostile_params
from log_testing import capture_logs
from servers import serve_uvicorn, serve_waitress

from adapters import asgi, wsgi
from correlation import Config, _context, get_request_id

OURS = "adapters.django.RequestIdMiddleware"
VIEWS = [
    pytest.param("/async/", id="async-view"),
    pytest.param("/sync/", id="sync-view"),
]


@contextmanager
def django_with(middleware: list[str] | None = None, **settings: Any) -> Iterator[None]:
    """Django set up, the middleware first in MIDDLEWARE, *settings* applied."""
    from django.test import override_settings

    setup_django()
    with override_settings(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=ROOT_URLCONF,
        MIDDLEWARE=[OURS, *MIDDLEWARE] if middleware is None else middleware,
        **settings,
    ):
        yield


def report(response: Any) -> dict[str, Any]:
    """The JSON a djangoapp view answers with."""
    return json.loads(response.content)  # type: ignore[no-any-return]


def assert_everywhere(response: Any, request_id: str) -> None:
    """The view, the later middleware and the one response header saw *request_id*."""
    seen = report(response)
    assert seen["before"] == seen["after"] == request_id
    assert seen["header"] == seen["meta"] == request_id
    assert response.headers[SYNC_HEADER] == f"{request_id}|{request_id}"
    assert response.headers[ASYNC_HEADER] == f"{request_id}|{request_id}"
    assert response.headers["X-Request-ID"] == request_id


# --- alone, under Django's test clients --------------------------------------------


@pytest.mark.parametrize("path", VIEWS)
def test_client_request_gets_the_incoming_id(path: str) -> None:
    """django.test.Client: the view and every later middleware see the header's id."""
    from django.test import Client

    with django_with():
        response = Client().get(path, headers={"X-Request-ID": "client-1"})
    assert response.status_code == 200
    assert_everywhere(response, "client-1")
    assert get_request_id() is None


@pytest.mark.parametrize("path", VIEWS)
def test_client_request_without_header_gets_a_generated_id(path: str) -> None:
    """No header: a 32-hex id, the same everywhere, in one response header."""
    from django.test import Client

    with django_with():
        response = Client().get(path)
    request_id = response.headers["X-Request-ID"]
    assert HEX32.fullmatch(request_id)
    assert_everywhere(response, request_id)
    assert response.headers["X-Request-ID"].count(",") == 0


@pytest.mark.parametrize("row", hostile_params(fails_floor=True))
def test_hostile_header_is_replaced_before_django_sees_it(row: Hostile) -> None:
    """A rejected value becomes a generated id; nothing Django shows holds it."""
    from django.test import Client

    with django_with():
        response = Client().get("/sync/", HTTP_X_REQUEST_ID=row.joined())
    request_id = response.headers["X-Request-ID"]
    assert HEX32.fullmatch(request_id)
    assert_everywhere(response, request_id)
    assert MARKER.encode() not in response.content


@pytest.mark.parametrize("path", VIEWS)
def test_async_client_request_gets_the_incoming_id(path: str) -> None:
    """django.test.AsyncClient: the async stack, no thread hop for the middleware."""
    from django.test import AsyncClient

    async def main() -> Any:
        response = await AsyncClient().get(path, headers={"X-Request-ID": "async-1"})
        assert get_request_id() is None
        return response

    with django_with():
        response = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert_everywhere(response, "async-1")
    if path == "/sync/":
        # The sync view ran in a thread, with the id.
        assert report(response)["thread"] is not None


#: Our middleware, then only async ones: Django runs ours on the event loop.
ASYNC_STACK = [OURS, "djangoapp.middleware.AsyncOnlyMiddleware"]


@pytest.mark.parametrize("path", VIEWS)
def test_async_stack_runs_the_middleware_on_the_loop(path: str) -> None:
    """With async middleware after it, AsyncClient awaits ours: no thread hop."""
    from django.test import AsyncClient

    async def main() -> tuple[Any, Any]:
        client = AsyncClient()
        chosen = await client.get(path, headers={"X-Request-ID": "loop-1"})
        missing = await client.get("/missing/", headers={"X-Request-ID": "loop-2"})
        assert get_request_id() is None
        return chosen, missing

    with django_with(ASYNC_STACK), capture_logs("django.request") as log:
        chosen, missing = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    seen = report(chosen)
    assert seen["before"] == seen["after"] == seen["header"] == "loop-1"
    assert chosen.headers["X-Request-ID"] == "loop-1"
    assert chosen.headers[ASYNC_HEADER] == "loop-1|loop-1"
    assert missing.status_code == 404
    assert missing.headers["X-Request-ID"] == "loop-2"
    (record,) = log.records
    assert record.request_id == "loop-2"  # type: ignore[attr-defined]


def test_the_middleware_is_marked_async_on_an_async_stack() -> None:
    """Django sees a coroutine function, so it awaits it without adapting it."""
    from asgiref.sync import iscoroutinefunction

    from adapters.django import RequestIdMiddleware

    async def get_response(request: Any) -> Any:
        return None

    def get_response_sync(request: Any) -> Any:
        return None

    with django_with():
        assert iscoroutinefunction(RequestIdMiddleware(get_response))
        assert not iscoroutinefunction(RequestIdMiddleware(get_response_sync))


#: The two ways the middleware writes the response header: straight into the
#: store of Django's ``ResponseHeaders`` (the layout it checks when it loads),
#: and through the public mapping, for a Django that keeps headers otherwise.
HEADER_LAYOUTS = [
    pytest.param(False, id="djangos-layout"),
    pytest.param(True, id="another-layout"),
]


@pytest.fixture(params=HEADER_LAYOUTS)
def another_layout(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> bool:
    """With True, Django's responses keep their headers in another layout."""
    if request.param:
        from django.http import response

        class ListLayout(response.ResponseHeaders):
            """Entries as lists: the mapping works, the direct write must not."""

            def __setitem__(self, key: str, value: str | bytes | int) -> None:
                super().__setitem__(key, value)
                store = vars(self)["_store"]
                store[key.lower()] = list(store[key.lower()])

        monkeypatch.setattr(response, "ResponseHeaders", ListLayout)
    return bool(request.param)


def test_the_header_layout_is_checked_when_the_middleware_loads(
    another_layout: bool,
) -> None:
    """Django's own layout is written directly; any other goes through the mapping.

    The supported Django versions keep the layout the direct write expects: a
    Django that changes it still gets the header (the tests below), but pays
    9,000 instructions more per request.
    """
    from django.http.response import ResponseHeaders

    from adapters.django import _headers_type_to_write_directly

    expected = None if another_layout else ResponseHeaders
    assert _headers_type_to_write_directly() is expected


@pytest.mark.usefixtures("another_layout")
def test_the_views_own_header_is_kept() -> None:
    """A view that sets the header itself gets exactly its own value back."""
    from django.test import Client

    with django_with():
        response = Client().get("/own-header/", headers={"X-Request-ID": "client-2"})
    assert response.headers["X-Request-ID"] == "view-chosen"
    assert report(response)["after"] == "client-2"


@pytest.mark.usefixtures("another_layout")
@pytest.mark.parametrize("name", ["X-Request-ID", "x-correlation-id"])
def test_the_response_header_is_one_ordinary_django_header(name: str) -> None:
    """The header as Django's own ``response[name] = id`` would have set it."""
    from django.test import Client

    with django_with(CORRELATION_CONFIG=Config(header_name=name)):
        response = Client().get("/sync/", headers={name: "client-3"})
    assert response.headers[name.upper()] == "client-3"
    ours = [item for item in response.items() if item[0].lower() == name.lower()]
    assert ours == [(name, "client-3")]


def test_request_headers_read_earlier_show_the_final_id() -> None:
    """request.headers, cached by a middleware before ours, is rebuilt."""
    from django.test import Client

    middleware = ["djangoapp.middleware.HeadersFirstMiddleware", OURS, *MIDDLEWARE]
    with django_with(middleware):
        response = Client().get("/sync/", headers={"X-Request-ID": "a b"})
    request_id = response.headers["X-Request-ID"]
    assert HEX32.fullmatch(request_id)
    assert report(response)["header"] == request_id


def test_not_found_record_carries_the_id() -> None:
    """Django's "Not Found" record on django.request is logged with the id."""
    from django.test import Client

    with django_with(), capture_logs("django.request") as log:
        response = Client().get("/missing/", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "lost-1"
    (record,) = log.records
    assert record.request_id == "lost-1"  # type: ignore[attr-defined]


def test_config_comes_from_the_setting() -> None:
    """CORRELATION_CONFIG sets the header name and the rules."""
    from django.test import Client

    config = Config(
        header_name="X-Correlation-ID",
        generator=counting_generator("dj"),
        fallback_sources=("X-Request-ID",),
    )
    with django_with(CORRELATION_CONFIG=config):
        response = Client().get("/sync/", headers={"X-Request-ID": "fallback-1"})
        generated = Client().get("/sync/")
    assert response.headers["X-Correlation-ID"] == "fallback-1"
    assert report(response)["after"] == "fallback-1"
    assert generated.headers["X-Correlation-ID"] == "dj-1"


def test_the_transformer_applies_in_the_middleware() -> None:
    """CORRELATION_CONFIG's transformer rewrites an accepted id, not a generated one."""
    from django.test import Client

    config = Config(transformer=str.lower, generator=counting_generator("GEN"))
    with django_with(CORRELATION_CONFIG=config):
        kept = Client().get("/sync/", headers={"X-Request-ID": "Mixed-Case-1"})
        generated = Client().get("/sync/")
    assert_everywhere(kept, "mixed-case-1")
    assert_everywhere(generated, "GEN-1")


@pytest.mark.parametrize("value", ["X-Correlation-ID", {"header_name": "X"}, Config])
def test_a_wrong_setting_fails_when_the_handler_loads(value: object) -> None:
    """Anything but a Config or None raises TypeError naming the setting."""
    from django.core.handlers.wsgi import WSGIHandler

    with (
        django_with(CORRELATION_CONFIG=value),
        pytest.raises(TypeError, match="CORRELATION_CONFIG"),
    ):
        WSGIHandler()


def test_another_requests_binding_is_not_adopted() -> None:
    """A request started where another request's id is bound gets its own id."""
    from django.test import Client

    with django_with():
        other = _context.begin("other-request", "django")
        try:
            response = Client().get("/sync/", headers={"X-Request-ID": "mine-1"})
            assert get_request_id() == "other-request"
        finally:
            _context.end(other)
    assert_everywhere(response, "mine-1")


@pytest.mark.parametrize(("primary", "others", "expected"), TABLE)
def test_the_shared_header_table_gives_the_adapters_ids(
    primary: list[bytes] | None, others: list[tuple[str, bytes]], expected: str
) -> None:
    """Every row of header_sets.TABLE: the id the adapters give, under header_name."""
    from django.test import Client

    sent: dict[str, list[str]] = {}
    if primary is not None:
        sent["X-Request-ID"] = [value.decode("latin-1") for value in primary]
    for name, value in others:
        sent.setdefault(name, []).append(value.decode("latin-1"))
    # Repeated headers joined with ", ", as a WSGI server files them.
    headers = {name: ", ".join(values) for name, values in sent.items()}
    with django_with(CORRELATION_CONFIG=header_config()):
        response = Client().get("/sync/", headers=headers)
    assert response.headers["X-Request-ID"] == expected
    seen = report(response)
    assert seen["before"] == seen["after"] == seen["header"] == expected


# --- behind an adapter: one id -----------------------------------------------------


def test_behind_the_wsgi_adapter_one_id_and_one_header() -> None:
    """The WSGI adapter decides; the middleware adopts its id and adds nothing."""
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client

    outer = Config(generator=counting_generator("outer"))
    inner = Config(generator=counting_generator("inner"), header_name="X-Other-ID")
    with django_with(CORRELATION_CONFIG=inner):
        application = wsgi.RequestIdMiddleware(WSGIHandler(), config=outer)
        response = Client(application).get("/sync/")
    assert response.headers.getlist("X-Request-ID") == ["outer-1"]
    assert "X-Other-ID" not in response.headers
    seen = json.loads(response.get_data())
    assert seen["before"] == seen["after"] == "outer-1"
    # One generated id: the middleware's generator was never asked.
    assert inner.generator() == "inner-1"


def test_behind_the_asgi_adapter_one_id_and_one_header() -> None:
    """The ASGI adapter decides, even refusing client ids; the middleware adopts."""
    from django.core.handlers.asgi import ASGIHandler

    outer = Config(generator=counting_generator("edge"), trust_incoming=False)
    inner = Config(generator=counting_generator("inner"))

    async def main() -> httpx.Response:
        application = asgi.RequestIdMiddleware(ASGIHandler(), config=outer)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            return await client.get("/async/", headers={"X-Request-ID": "client-3"})

    with django_with(CORRELATION_CONFIG=inner):
        response = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert response.headers.get_list("X-Request-ID") == ["edge-1"]
    seen = response.json()
    assert seen["before"] == seen["after"] == seen["header"] == "edge-1"
    assert inner.generator() == "inner-1"


# --- behind an adapter, on real servers --------------------------------------------


@contextmanager
def on_uvicorn(outer: Config) -> Iterator[str]:
    """uvicorn -> ASGI adapter (*outer*) -> Django; the server's base URL."""
    from django.core.handlers.asgi import ASGIHandler

    application = asgi.RequestIdMiddleware(ASGIHandler(), config=outer)
    with serve_uvicorn(application, lifespan="off") as server:
        yield server.url


@contextmanager
def on_waitress(outer: Config) -> Iterator[str]:
    """waitress -> WSGI adapter (*outer*) -> Django; the server's base URL."""
    from django.core.handlers.wsgi import WSGIHandler

    application = wsgi.RequestIdMiddleware(WSGIHandler(), config=outer)
    with serve_waitress(application) as server:
        yield server.url


@pytest.mark.parametrize(
    ("serving", "generated_path"),
    [
        pytest.param(on_uvicorn, "/async/", id="uvicorn-asgi-adapter"),
        pytest.param(on_waitress, "/sync/", id="waitress-wsgi-adapter"),
    ],
)
def test_behind_an_adapter_on_a_real_server(
    serving: Callable[[Config], AbstractContextManager[str]], generated_path: str
) -> None:
    """A real server -> an adapter -> Django with the middleware: one id, one header."""
    outer = Config(generator=counting_generator("outer"))
    inner = Config(generator=counting_generator("inner"))
    with (
        django_with(CORRELATION_CONFIG=inner),
        serving(outer) as url,
        httpx.Client(base_url=url, timeout=TIMEOUT) as client,
    ):
        sent = client.get("/sync/", headers={"X-Request-ID": "real-1"})
        generated = client.get(generated_path)
    assert sent.headers.get_list("X-Request-ID") == ["real-1"]
    assert sent.json()["after"] == sent.json()["header"] == "real-1"
    # The adapter's generator made it (the server's start-up probe may
    # have taken an earlier one); the middleware's was never asked.
    [generated_id] = generated.headers.get_list("X-Request-ID")
    assert generated_id.startswith("outer-")
    assert generated.json()["after"] == generated_id
    assert inner.generator() == "inner-1"
