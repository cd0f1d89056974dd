"""Protocol tests of the WSGI adapter with hand-built environs and plain apps.

No web framework is involved: each test builds the environ a server would,
calls the middleware the way a server does (``run_wsgi``) and inspects what
the wrapped app received and what reached the server's ``start_response``.
The apps are wrapped in ``wsgiref.validate.validator`` and werkzeug's
``LintMiddleware``; with ``filterwarnings = error`` any lint warning fails.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import pytest
from hooks_testing import AfterConstruction
from hostile import MARKER, Hostile, hostile_params
from wsgi_testing import (
    HEX32,
    Capture,
    Endpoint,
    HeaderList,
    ServerStartResponse,
    builder_environ,
    checked,
    counting_generator,
    environ_key,
    httpx_client,
    linted,
    make_environ,
    run_wsgi,
    validated,
    werkzeug_client,
)

from adapters.wsgi import RequestIdMiddleware
from correlation import Config, default_validator, get_request_id

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ENVIRON_ID = "correlation.request_id"


def wrap(app: WSGIApplication, config: Config | None = None) -> WSGIApplication:
    """Return *app* checked by both validators, inside the adapter, inside wsgiref's.

    The inner validators check what the app sees and sends; the outer one
    checks what the adapter hands the server.
    """
    return validated(RequestIdMiddleware(checked(app), config=config))


def log_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    """Return every record fully formatted, traceback and raw args included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [f"{formatter.format(r)} {r.args!r} {r.msg!r}" for r in records]


# --- construction ---------------------------------------------------------


def test_config_none_means_defaults() -> None:
    """config=None behaves like Config(): X-Request-ID, echoed, 32-hex ids."""
    app = Endpoint()
    result = run_wsgi(wrap(app, config=None))
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert result.headers == [
        ("Content-Type", "text/plain"),
        ("X-Request-ID", app.request_id),
    ]


# --- response headers -----------------------------------------------------


def test_valid_incoming_id_is_echoed_in_exact_response_headers() -> None:
    """A valid incoming id is the id, appended once after the app's own headers."""
    own: HeaderList = [("Content-Type", "text/plain"), ("Content-Length", "2")]
    app = Endpoint(list(own))
    result = run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc-123")]))
    assert app.request_id == "abc-123"
    assert result.status == "200 OK"
    assert result.headers == [*own, ("X-Request-ID", "abc-123")]
    assert result.body == b"ok"
    assert app.headers == own, "the app's own header list was mutated"


def test_missing_header_gets_32_lowercase_hex_id() -> None:
    """Without an incoming header the default generator gives 32 lowercase hex."""
    app = Endpoint()
    result = run_wsgi(wrap(app))
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert result.values("X-Request-ID") == [app.request_id]


def test_generated_ids_differ_between_requests() -> None:
    """Each request without a header gets a new random id.

    200 requests span several batches of the built-in generator (64 ids per
    ``os.urandom`` call), so the adapter's path for a used-up batch runs too.
    """
    middleware = wrap(Endpoint())
    ids = {run_wsgi(middleware).values("x-request-id")[0] for _ in range(200)}
    assert len(ids) == 200
    assert all(HEX32.fullmatch(value) for value in ids)


@pytest.mark.parametrize(
    ("request_headers", "expected_id"),
    [
        pytest.param([], "gen-1", id="absent"),
        pytest.param([("X-Request-ID", "abc")], "abc", id="valid"),
        pytest.param([("X-Request-ID", "a b")], "gen-1", id="invalid"),
        pytest.param(
            [("X-Request-ID", "a"), ("X-Request-ID", "b")], "gen-1", id="twice"
        ),
        pytest.param([("x-request-id", "abc")], "abc", id="lowercase-name"),
    ],
)
def test_response_carries_exactly_one_id_header(
    request_headers: HeaderList, expected_id: str
) -> None:
    """Whatever the request holds, the response has exactly one id header."""
    app = Endpoint()
    config = Config(generator=counting_generator())
    result = run_wsgi(wrap(app, config), make_environ(request_headers))
    assert app.request_id == expected_id
    assert result.values("X-Request-ID") == [expected_id]
    assert result.headers == [
        ("Content-Type", "text/plain"),
        ("X-Request-ID", expected_id),
    ]


@pytest.mark.parametrize(
    "app_header",
    [
        pytest.param("x-request-id", id="lowercase"),
        pytest.param("X-Request-ID", id="canonical"),
        pytest.param("X-REQUEST-ID", id="uppercase"),
        pytest.param("X-Request-Id", id="mixed"),
    ],
)
def test_app_set_header_is_kept_and_not_duplicated(app_header: str) -> None:
    """An app that sets the id header itself keeps its value; none is added."""
    own: HeaderList = [("Content-Type", "text/plain"), (app_header, "app-chosen")]
    app = Endpoint(list(own))
    result = run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]))
    assert app.request_id == "abc"
    assert result.headers == own


def test_response_header_false_adds_nothing() -> None:
    """response_header=False leaves the response headers exactly as the app sent."""
    app = Endpoint()
    config = Config(response_header=False)
    environ = make_environ([("X-Request-ID", "abc")])
    result = run_wsgi(wrap(app, config), environ)
    assert app.request_id == "abc"
    assert result.headers == [("Content-Type", "text/plain")]
    assert environ[ENVIRON_ID] == "abc"


def test_server_sees_the_id_in_start_response() -> None:
    """start_response runs inside the request, so the server's call sees the id."""
    result = run_wsgi(wrap(Endpoint()), make_environ([("X-Request-ID", "abc")]))
    assert [call.request_id for call in result.server.calls] == ["abc"]


# --- the environ ----------------------------------------------------------


@pytest.mark.parametrize(
    ("request_headers", "expected_id"),
    [
        pytest.param([("X-Request-ID", "abc")], "abc", id="valid"),
        pytest.param([], "gen-1", id="absent"),
        pytest.param([("X-Request-ID", "bad value")], "gen-1", id="invalid"),
        pytest.param(
            [("X-Request-ID", "a"), ("X-Request-ID", "b")], "gen-1", id="joined"
        ),
    ],
)
def test_environ_is_updated_in_place_with_final_id(
    request_headers: HeaderList, expected_id: str
) -> None:
    """The app gets the caller's very environ, holding the final id twice."""
    environ = make_environ(request_headers)
    others = {k: v for k, v in environ.items() if k != "HTTP_X_REQUEST_ID"}
    app = Endpoint()
    config = Config(generator=counting_generator())
    run_wsgi(wrap(app, config), environ)
    assert app.environs == [environ]
    assert app.environs[0] is environ
    # What the app saw while it ran, and what the server's access log reads.
    for seen in (app.snapshot, environ):
        assert seen["HTTP_X_REQUEST_ID"] == expected_id
        assert seen[ENVIRON_ID] == expected_id
    assert app.request_id == expected_id
    # Nothing else the caller put there was replaced.
    for key, value in others.items():
        if not key.startswith("wsgi."):  # the validators wrap input and errors
            assert environ[key] == value


@pytest.mark.parametrize(
    ("request_headers", "expected_id"),
    [
        pytest.param([("X-Request-ID", "abc")], "abc", id="valid"),
        pytest.param([], "gen-1", id="absent"),
        pytest.param(
            [("X-Request-ID", "evil\r\nSet-Cookie: a=b")], "gen-1", id="hostile"
        ),
        pytest.param(
            [("X-Request-ID", "a"), ("X-Request-ID", " b ")], "gen-1", id="duplicates"
        ),
    ],
)
def test_update_request_header_false_leaves_header_as_sent(
    request_headers: HeaderList, expected_id: str
) -> None:
    """update_request_header=False keeps HTTP_X_REQUEST_ID as sent, or absent."""
    environ = make_environ(request_headers)
    sent = environ.get("HTTP_X_REQUEST_ID")
    app = Endpoint()
    config = Config(update_request_header=False, generator=counting_generator())
    result = run_wsgi(wrap(app, config), environ)
    assert app.snapshot.get("HTTP_X_REQUEST_ID") == sent
    assert environ.get("HTTP_X_REQUEST_ID") == sent
    assert ("HTTP_X_REQUEST_ID" in environ) is bool(request_headers)
    assert environ[ENVIRON_ID] == expected_id
    assert app.request_id == expected_id
    assert result.values("X-Request-ID") == [expected_id]


@pytest.mark.parametrize(
    ("header_name", "key"),
    [
        pytest.param("X-Correlation-ID", "HTTP_X_CORRELATION_ID", id="correlation"),
        pytest.param("request-id", "HTTP_REQUEST_ID", id="lowercase"),
        pytest.param("Trace-Id", "HTTP_TRACE_ID", id="mixed"),
        pytest.param("Rid", "HTTP_RID", id="no-dash"),
    ],
)
def test_custom_header_name_maps_to_its_http_key(header_name: str, key: str) -> None:
    """A custom header_name is read from and written to its own HTTP_ key only."""
    assert environ_key(header_name) == key
    environ = make_environ([(header_name, "abc"), ("X-Request-ID", "other")])
    app = Endpoint()
    result = run_wsgi(wrap(app, Config(header_name=header_name)), environ)
    assert app.request_id == "abc"
    assert environ[key] == "abc"
    assert environ[ENVIRON_ID] == "abc"
    # The default header is just another header now.
    assert environ["HTTP_X_REQUEST_ID"] == "other"
    assert result.headers == [("Content-Type", "text/plain"), (header_name, "abc")]


def test_custom_header_name_absent_generates_and_sets_key() -> None:
    """Without the custom header a new id is generated and written to its key."""
    environ = make_environ([("X-Request-ID", "other")])
    app = Endpoint()
    config = Config(header_name="X-Correlation-ID", generator=counting_generator())
    result = run_wsgi(wrap(app, config), environ)
    assert app.request_id == "gen-1"
    assert environ["HTTP_X_CORRELATION_ID"] == "gen-1"
    assert result.values("X-Correlation-ID") == ["gen-1"]
    assert result.values("X-Request-ID") == []


# --- hostile values -------------------------------------------------------


@pytest.mark.parametrize("row", hostile_params())
def test_hostile_value_reaches_nothing_the_adapter_writes(
    row: Hostile, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected value is in no id, header, environ key or DEBUG log record."""
    value = row.joined()
    caplog.set_level(logging.DEBUG)
    environ = make_environ([("X-Request-ID", value)])
    app = Endpoint()
    result = run_wsgi(wrap(app, Config(generator=counting_generator())), environ)
    assert app.request_id == "gen-1"
    assert result.headers == [("Content-Type", "text/plain"), ("X-Request-ID", "gen-1")]
    assert app.snapshot["HTTP_X_REQUEST_ID"] == "gen-1"
    assert app.snapshot[ENVIRON_ID] == "gen-1"
    assert environ["HTTP_X_REQUEST_ID"] == "gen-1"
    assert environ[ENVIRON_ID] == "gen-1"
    # The rejection was logged (so the check below is not vacuous), but
    # without the value, not even escaped or cut short.
    assert any(r.name == "correlation" for r in caplog.records)
    for text in log_texts(caplog.records):
        assert MARKER not in text
        assert value[:8] not in text


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("a, b", id="comma-space"),
        pytest.param("a,b", id="comma"),
        pytest.param(" a ,\tb ", id="padded"),
        pytest.param("a,  b", id="two-spaces"),
    ],
)
@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        pytest.param(default_validator, "gen-1", id="default-rule"),
        pytest.param(lambda value: True, "a,b", id="accept-all"),
    ],
)
def test_server_joined_duplicates_give_the_same_answer(
    sent: str, validator: Callable[[str], bool], expected: str
) -> None:
    """Occurrences a server joined with "," or ", " read as the same value a,b."""
    environ = make_environ([("X-Request-ID", sent)])
    app = Endpoint()
    config = Config(validator=validator, generator=counting_generator())
    result = run_wsgi(wrap(app, config), environ)
    assert app.request_id == expected
    assert environ["HTTP_X_REQUEST_ID"] == expected
    assert result.values("X-Request-ID") == [expected]


def test_two_header_occurrences_via_environ_builder_read_as_a_b() -> None:
    """Two X-Request-ID headers, joined by werkzeug's EnvironBuilder, read as a,b."""
    environ = builder_environ([("X-Request-ID", "a"), ("X-Request-ID", "b")])
    assert environ["HTTP_X_REQUEST_ID"] == "a, b"
    app = Endpoint()
    run_wsgi(wrap(app, Config(validator=lambda value: True)), environ)
    assert app.request_id == "a,b"


@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param([], id="absent"),
        pytest.param([("X-Request-ID", "abc")], id="valid"),
        pytest.param([("X-Request-ID", "evil\r\n")], id="hostile"),
    ],
)
def test_trust_incoming_false_always_generates(request_headers: HeaderList) -> None:
    """trust_incoming=False ignores the client's value and generates an id."""
    environ = make_environ(request_headers)
    app = Endpoint()
    config = Config(trust_incoming=False, generator=counting_generator())
    result = run_wsgi(wrap(app, config), environ)
    assert app.request_id == "gen-1"
    assert environ["HTTP_X_REQUEST_ID"] == "gen-1"
    assert environ[ENVIRON_ID] == "gen-1"
    assert result.values("X-Request-ID") == ["gen-1"]


# --- user hooks failing at request time -----------------------------------


def failing_later(failure: Callable[[], object] | Exception) -> Callable[[], str]:
    """A generator that passes Config's construction check, then fails."""
    return AfterConstruction("sample-id", failure)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            Config(generator=failing_later(RuntimeError("generator broke"))),
            id="generator-raises",
        ),
        pytest.param(
            Config(generator=failing_later(lambda: "bad\r\nid")),
            id="generator-returns-hostile",
        ),
        pytest.param(
            Config(generator=failing_later(lambda: "")), id="generator-returns-empty"
        ),
        pytest.param(
            Config(generator=failing_later(lambda: 42)),
            id="generator-returns-int",
        ),
    ],
)
def test_generator_failing_at_request_time_falls_back(config: Config) -> None:
    """A generator that fails per request is replaced by the built-in one."""
    app = Endpoint()
    result = run_wsgi(wrap(app, config))
    assert result.status == "200 OK"
    assert app.request_id is not None
    assert HEX32.fullmatch(app.request_id)
    assert result.values("X-Request-ID") == [app.request_id]


def test_validator_raising_falls_back_to_generated_id() -> None:
    """A validator raising on the incoming value yields the generator's id."""
    calls: list[str] = []

    def validator(value: str) -> bool:
        calls.append(value)
        if value.startswith("gen-"):
            return True
        raise ValueError("broken")

    app = Endpoint()
    config = Config(validator=validator, generator=counting_generator())
    result = run_wsgi(wrap(app, config), make_environ([("X-Request-ID", "abc")]))
    assert "abc" in calls  # it was asked, and its exception swallowed
    assert app.request_id == "gen-1"
    assert result.values("X-Request-ID") == ["gen-1"]


# --- start_response: exc_info, write ----------------------------------------


class RecoveringApp:
    """Starts a 200, hits an error, and restarts the response as a 500.

    The second ``start_response`` passes ``sys.exc_info()``, as PEP 3333 asks.
    """

    def __init__(self, first: HeaderList, second: HeaderList) -> None:
        self.first = first
        self.second = second
        self.exc_info: OptExcInfo | None = None
        self.ids: list[str | None] = []

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        self.ids.append(get_request_id())
        start_response("200 OK", self.first)
        try:
            raise RuntimeError("failed after start_response")
        except RuntimeError:
            self.exc_info = sys.exc_info()
            start_response("500 Internal Server Error", self.second, self.exc_info)
        return [b"error"]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        pytest.param(
            [("Content-Type", "text/plain")],
            [("Content-Type", "text/plain"), ("X-Request-ID", "abc")],
            id="adapter-adds",
        ),
        pytest.param(
            [("Content-Type", "text/plain"), ("x-request-id", "app")],
            [("Content-Type", "text/plain"), ("x-request-id", "app")],
            id="app-sets",
        ),
    ],
)
def test_second_start_response_with_exc_info_keeps_one_id_header(
    second: HeaderList, expected: HeaderList
) -> None:
    """Restarting the response with exc_info: one id header, exc_info passed as is."""
    app = RecoveringApp([("Content-Type", "text/html")], second)
    result = run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]))
    assert app.ids == ["abc"]
    assert result.status == "500 Internal Server Error"
    assert result.headers == expected
    first, last = result.server.calls
    assert first.headers == [("Content-Type", "text/html"), ("X-Request-ID", "abc")]
    assert first.exc_info is None
    assert app.exc_info is not None
    assert last.exc_info is app.exc_info
    assert result.body == b"error"


def test_start_response_returns_the_servers_write_callable() -> None:
    """The app's start_response returns the server's very write callable."""
    written: list[bytes] = []

    def server_write(data: bytes) -> None:
        written.append(data)

    got: list[Callable[[bytes], object]] = []

    # No validator between adapter and app here: both wrap write().
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        got.append(start_response("200 OK", [("Content-Type", "text/plain")]))
        got[0](b"legacy")
        return []

    server = ServerStartResponse(write=server_write)
    result = run_wsgi(RequestIdMiddleware(app), server=server)
    assert got == [server_write]
    assert got[0] is server_write
    assert written == [b"legacy"]
    assert result.values("X-Request-ID") != []


def test_exc_info_reaches_the_server_as_the_same_object() -> None:
    """exc_info given to the adapter's start_response reaches the server unchanged."""
    received: list[OptExcInfo | None] = []

    def server(
        status: str, headers: HeaderList, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        received.append(exc_info)
        return lambda data: None

    app = RecoveringApp([("Content-Type", "text/plain")], [("Content-Type", "a/b")])
    body = RequestIdMiddleware(app)(make_environ(), server)
    assert body == [b"error"]
    assert received[0] is None
    assert app.exc_info is not None
    assert received[1] is app.exc_info


def test_exc_info_after_headers_sent_reraises_through_the_adapter() -> None:
    """A server re-raising exc_info (headers already sent) propagates as is."""
    error = ValueError("late")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        try:
            raise error
        except ValueError:
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain")],
                sys.exc_info(),
            )
        yield b"never"  # pragma: no cover

    with pytest.raises(ValueError, match="late") as info:
        run_wsgi(RequestIdMiddleware(validated(app)), make_environ())
    assert info.value is error


def test_legacy_write_path_works() -> None:
    """An app that writes through write() and returns [] is served with the id."""
    ids: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        ids.append(get_request_id())
        write(b"hello ")
        write(b"world")
        return []

    environ = make_environ([("X-Request-ID", "abc")])
    result = run_wsgi(wrap(app), environ)
    assert ids == ["abc"]
    assert result.body == b"hello world"
    assert result.server.written == [b"hello ", b"world"]
    assert result.headers == [("Content-Type", "text/plain"), ("X-Request-ID", "abc")]


def test_legacy_write_mixed_with_body() -> None:
    """write() output and a generator body both reach the server, id echoed once."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"head-")
        yield b"tail"

    result = run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]))
    assert result.body == b"head-tail"
    assert result.values("X-Request-ID") == ["abc"]


# --- validators around the adapter ----------------------------------------


@pytest.mark.parametrize(
    "wrapper",
    [
        pytest.param(validated, id="wsgiref"),
        pytest.param(linted, id="werkzeug-lint"),
    ],
)
@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param([], id="absent"),
        pytest.param([("X-Request-ID", "abc")], id="valid"),
        pytest.param([("X-Request-ID", "evil\r\nx: y")], id="hostile"),
    ],
)
def test_adapter_output_passes_each_validator(
    wrapper: Callable[[WSGIApplication], WSGIApplication],
    request_headers: HeaderList,
) -> None:
    """Each validator, outside and inside the adapter, finds nothing wrong."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        yield b"b"

    middleware = wrapper(RequestIdMiddleware(wrapper(app)))
    result = run_wsgi(middleware, make_environ(request_headers))
    assert result.body == b"ab"
    assert len(result.values("X-Request-ID")) == 1


def test_capture_sees_the_adapters_body_object_under_a_validator() -> None:
    """A generator body comes back wrapped, and the wrapper has close()."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"x"

    capture = Capture(RequestIdMiddleware(app))
    run_wsgi(validated(capture), make_environ())
    (returned,) = capture.returned
    assert callable(getattr(returned, "close", None))


# --- in-process clients ---------------------------------------------------


@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        pytest.param({"X-Request-ID": "abc-1"}, "abc-1", id="valid"),
        pytest.param({}, None, id="absent"),
        pytest.param({"X-Request-ID": "bad value"}, None, id="invalid"),
        pytest.param({"x-request-id": "abc-1"}, "abc-1", id="lowercase"),
    ],
)
def test_werkzeug_client(request_headers: dict[str, str], expected: str | None) -> None:
    """Through werkzeug's test client the app and the response agree on one id."""
    app = Endpoint()
    client = werkzeug_client(wrap(app))
    response = client.get("/", headers=request_headers)
    try:
        assert response.get_data() == b"ok"
        echoed = response.headers.getlist("X-Request-ID")
    finally:
        response.close()
    assert echoed == [app.request_id]
    assert app.snapshot["HTTP_X_REQUEST_ID"] == app.request_id
    assert app.request_id is not None
    if expected is None:
        assert HEX32.fullmatch(app.request_id)
    else:
        assert app.request_id == expected


def test_werkzeug_client_two_headers_are_joined() -> None:
    """Two X-Request-ID headers through werkzeug's client read as a,b."""
    app = Endpoint()
    client = werkzeug_client(wrap(app, Config(validator=lambda value: True)))
    response = client.get("/", headers=[("X-Request-ID", "a"), ("X-Request-ID", "b")])
    try:
        assert response.headers.getlist("X-Request-ID") == ["a,b"]
    finally:
        response.close()
    assert app.request_id == "a,b"


def test_werkzeug_client_streams_generator_body_with_id() -> None:
    """A streamed body read through werkzeug's client sees the id in every chunk."""
    ids: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for chunk in (b"a", b"b", b"c"):
            ids.append(get_request_id())
            yield chunk

    response = werkzeug_client(wrap(app)).get(
        "/", headers={"X-Request-ID": "abc"}, buffered=False
    )
    try:
        assert response.get_data() == b"abc"
    finally:
        response.close()
    assert ids == ["abc", "abc", "abc"]
    assert get_request_id() is None


@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        pytest.param({"X-Request-ID": "abc-1"}, "abc-1", id="valid"),
        pytest.param({}, None, id="absent"),
        pytest.param({"X-Request-ID": "bad value"}, None, id="invalid"),
        pytest.param({"x-request-id": "abc-1"}, "abc-1", id="lowercase"),
    ],
)
def test_httpx_wsgi_transport(
    request_headers: dict[str, str], expected: str | None
) -> None:
    """Through httpx.WSGITransport the app and the response agree on one id."""
    app = Endpoint()
    with httpx_client(wrap(app)) as client:
        response = client.get("/", headers=request_headers)
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response.headers.get_list("x-request-id") == [app.request_id]
    assert app.request_id is not None
    if expected is None:
        assert HEX32.fullmatch(app.request_id)
    else:
        assert app.request_id == expected


def test_httpx_streams_generator_body_with_id() -> None:
    """A streamed body read through httpx sees the id in every chunk and close."""
    ids: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for chunk in (b"a", b"b", b"c"):
                ids.append(get_request_id())
                yield chunk
        finally:
            ids.append(get_request_id())

    with httpx_client(wrap(app)) as client:
        response = client.get("/", headers={"X-Request-ID": "abc"})
    assert response.content == b"abc"
    assert response.headers.get_list("X-Request-ID") == ["abc"]
    assert ids == ["abc", "abc", "abc", "abc"]
