"""One conformance table, run against both adapters, proving they answer alike.

Each row is a request (the id header's occurrences, the config, the headers the
app sets on its response) and the ``Outcome`` the contract demands. Two small
drivers, the suite's driver pair (``drivers``), serve the row and report what
the app saw and what the response carried. Every row runs through each driver
on its own, and through both at once to check they agree. The hostile rows
are the suite's hostile table (``hostile``).

The ASGI driver hands the middleware one header tuple per occurrence, as ASGI
servers do. The WSGI driver joins the occurrences into one ``HTTP_*`` environ
value, with ``,`` or ``, `` (servers differ here, so it runs under both),
decodes it latin-1 and checks both sides of the middleware with
``wsgiref.validate``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

import pytest
from asgi_testing import (
    HEX32,
    counting_generator,
    http_scope,
    response_start,
    serve,
    values_of,
)
from drivers import Request, Served, serve_asgi, serve_wsgi
from hooks_testing import AfterConstruction
from hostile import needles, select

from adapters import asgi, wsgi
from correlation import Config, get_request_id

if TYPE_CHECKING:
    from adapters._types import Receive, Scope, Send

#: What a counting generator gives the first request (``Config``'s
#: construction samples are all ``gen-0``).
GEN = "gen-1"

#: A validator that accepts whatever passes the hard floor.
ALLOW_ALL: dict[str, Any] = {"validator": lambda value: True}


def _refuse_boom(value: str) -> bool:
    """A validator that raises on values starting with ``boom``."""
    if value.startswith("boom"):
        raise RuntimeError(f"cannot judge {value}")
    return True


def _refuse_boom_transform(value: str) -> str:
    """A transformer that raises on every value."""
    raise RuntimeError(f"cannot transform {value}")


def _reject_nope(value: str) -> bool:
    """A validator that rejects values starting with ``nope``."""
    return not value.startswith("nope")


# --- the two drivers --------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one request through an adapter came to."""

    #: ``get_request_id()`` inside the app.
    seen_id: str | None
    #: The request's own ``header_name`` values as the app saw them.
    request_header: tuple[str, ...]
    #: ASGI ``scope["state"]["request_id"]``; WSGI
    #: ``environ["correlation.request_id"]``.
    stored: str | None
    #: The response's ``header_name`` values.
    response_header: tuple[str, ...]

    def texts(self) -> list[str]:
        """Return every string this outcome holds."""
        return [
            *(t for t in (self.seen_id, self.stored) if t is not None),
            *self.request_header,
            *self.response_header,
        ]


def final(request_id: str) -> Outcome:
    """The outcome when *request_id* is the id and every default is on."""
    return Outcome(request_id, (request_id,), request_id, (request_id,))


class Driver(Protocol):
    """Serve one request through an adapter and report its ``Outcome``."""

    def __call__(
        self,
        config: Config | None,
        header_values: list[bytes] | None,
        app_headers: list[tuple[str, str]] | None = None,
        *,
        wire_name: str | None = None,
    ) -> Outcome: ...


def _driver(serve: Callable[[Config | None, Request], Served], joiner: str) -> Driver:
    """A ``Driver`` that serves through *serve* (``drivers``) and keeps the outcome."""

    def run(
        config: Config | None,
        header_values: list[bytes] | None,
        app_headers: list[tuple[str, str]] | None = None,
        *,
        wire_name: str | None = None,
    ) -> Outcome:
        request = Request(header_values, wire_name, joiner, app_headers or ())
        served = serve(config, request)
        return Outcome(
            served.seen_id, served.request_header, served.stored, served.response_header
        )

    return run


run_asgi = _driver(serve_asgi, ", ")
#: For a server that joins occurrences with ``,``.
run_wsgi_comma = _driver(serve_wsgi, ",")
#: For a server that joins occurrences with ``, ``.
run_wsgi_comma_space = _driver(serve_wsgi, ", ")

WSGI_DRIVERS = [
    pytest.param(run_wsgi_comma, id="wsgi-comma"),
    pytest.param(run_wsgi_comma_space, id="wsgi-comma-space"),
]


@pytest.fixture(params=[pytest.param(run_asgi, id="asgi"), *WSGI_DRIVERS])
def driver(request: pytest.FixtureRequest) -> Driver:
    """Each adapter's driver in turn (WSGI under both ways of joining)."""
    return cast(Driver, request.param)


@pytest.fixture(params=WSGI_DRIVERS)
def wsgi_driver(request: pytest.FixtureRequest) -> Driver:
    """The WSGI driver, under both ways servers join header occurrences."""
    return cast(Driver, request.param)


# --- the table ----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request and the outcome the contract demands of every adapter."""

    header_values: list[bytes] | None
    expected: Outcome
    #: ``Config`` keywords; every run gets a fresh counting ``generator``.
    options: dict[str, Any] = field(default_factory=dict)
    app_headers: list[tuple[str, str]] | None = None
    wire_name: str | None = None

    def config(self) -> Config:
        """A fresh config whose first request generates ``gen-1``."""
        return Config(generator=counting_generator(), **self.options)

    def run(self, driver: Driver) -> Outcome:
        """Serve this case through *driver*."""
        return driver(
            self.config(),
            self.header_values,
            self.app_headers,
            wire_name=self.wire_name,
        )


HEADER_CASES = [
    pytest.param(Case([b"abc-123"], final("abc-123")), id="valid-kept"),
    pytest.param(
        Case([b"a-b_c.d:e/f+g=h@i~j"], final("a-b_c.d:e/f+g=h@i~j")),
        id="default-rule-punctuation-kept",
    ),
    pytest.param(Case([b"x" * 128], final("x" * 128)), id="128-chars-kept"),
    pytest.param(Case(None, final(GEN)), id="absent-generated"),
    pytest.param(Case([b""], final(GEN)), id="empty-generated"),
    pytest.param(Case([b" \t "], final(GEN)), id="whitespace-only-generated"),
    pytest.param(Case([b" abc\t"], final("abc")), id="surrounding-blanks-stripped"),
    pytest.param(Case([b"a", b"b"], final(GEN)), id="two-occurrences-rejected"),
    pytest.param(Case([b"a, b"], final(GEN)), id="comma-list-rejected"),
    pytest.param(
        Case([b"a", b"b"], final("a,b"), ALLOW_ALL), id="two-occurrences-permissive"
    ),
    pytest.param(
        Case([b"a, b"], final("a,b"), ALLOW_ALL), id="comma-space-list-permissive"
    ),
    pytest.param(Case([b"a,b"], final("a,b"), ALLOW_ALL), id="comma-list-permissive"),
    pytest.param(
        Case([b" a ,\tb", b"c "], final("a,b,c"), ALLOW_ALL),
        id="blanks-around-pieces-permissive",
    ),
    pytest.param(
        Case([b"abc"], final("abc"), wire_name="X-REQUEST-ID"), id="name-uppercase"
    ),
    pytest.param(
        Case([b"abc"], final("abc"), wire_name="X-Request-ID"), id="name-canonical"
    ),
    pytest.param(
        Case([b"abc"], final("abc"), {"header_name": "X-Correlation-ID"}),
        id="custom-header-name",
    ),
    pytest.param(
        Case(
            [b"abc"],
            final(GEN),
            {"header_name": "X-Correlation-ID"},
            wire_name="X-Request-ID",
        ),
        id="custom-header-name-ignores-default-header",
    ),
    pytest.param(
        Case([b"abc"], final(GEN), {"trust_incoming": False}),
        id="untrusted-generated",
    ),
    pytest.param(
        Case([b"x" * 1024], final("x" * 1024), ALLOW_ALL),
        id="1024-chars-permissive-kept",
    ),
    pytest.param(
        Case([b"nope-1"], final(GEN), {"validator": _reject_nope}),
        id="validator-rejects-generated",
    ),
    pytest.param(
        Case([b"fine-1"], final("fine-1"), {"validator": _refuse_boom}),
        id="raising-validator-accepts-other",
    ),
    pytest.param(
        Case([b"boom-1"], final(GEN), {"validator": _refuse_boom}),
        id="validator-raises-generated",
    ),
    # The transformer: accepted values rewritten, then judged again.
    pytest.param(
        Case([b"ABC-1"], final("abc-1"), {"transformer": str.lower}),
        id="transformer-lowercases",
    ),
    pytest.param(
        Case([b" Abc ", b"x"], final(GEN), {"transformer": str.lower}),
        id="transformer-never-sees-a-rejected-list",
    ),
    pytest.param(
        Case(None, final(GEN), {"transformer": lambda value: "t-" + value}),
        id="transformer-not-on-generated-ids",
    ),
    pytest.param(
        Case([b"abc"], final(GEN), {"transformer": lambda value: value + " x"}),
        id="transformer-result-fails-the-floor",
    ),
    pytest.param(
        Case([b"abc"], final(GEN), {"transformer": _refuse_boom_transform}),
        id="transformer-raises",
    ),
]

RESPONSE_CASES = [
    pytest.param(Case([b"abc"], final("abc"), app_headers=[]), id="one-added"),
    *(
        pytest.param(
            Case(
                [b"abc"],
                replace(final("abc"), response_header=("app-set",)),
                app_headers=[(name, "app-set")],
            ),
            id=f"app-set-{name}",
        )
        for name in ("X-Request-ID", "x-request-id", "X-REQUEST-ID")
    ),
    pytest.param(
        Case(
            [b"abc"],
            replace(final("abc"), response_header=("app-set",)),
            {"header_name": "X-Correlation-ID"},
            app_headers=[("x-correlation-id", "app-set")],
        ),
        id="app-set-custom-name",
    ),
    pytest.param(
        Case(
            [b"abc"],
            replace(final("abc"), response_header=()),
            {"response_header": False},
        ),
        id="response-header-off",
    ),
    pytest.param(
        Case(
            None,
            replace(final(GEN), response_header=()),
            {"response_header": False},
        ),
        id="response-header-off-generated",
    ),
    pytest.param(
        Case(
            [b"abc"],
            replace(final("abc"), response_header=("app-set",)),
            {"response_header": False},
            app_headers=[("X-Request-ID", "app-set")],
        ),
        id="response-header-off-app-set-kept",
    ),
    pytest.param(
        Case(
            [b" abc\t"],
            Outcome("abc", (" abc\t",), "abc", ("abc",)),
            {"update_request_header": False},
        ),
        id="request-header-unchanged-valid",
    ),
    pytest.param(
        Case(None, Outcome(GEN, (), GEN, (GEN,)), {"update_request_header": False}),
        id="request-header-unchanged-absent",
    ),
    pytest.param(
        Case(
            [b"not,one"],
            Outcome(GEN, ("not,one",), GEN, (GEN,)),
            {"update_request_header": False},
        ),
        id="request-header-unchanged-rejected",
    ),
    pytest.param(
        Case(
            [b"abc"],
            Outcome(GEN, ("abc",), GEN, (GEN,)),
            {"update_request_header": False, "trust_incoming": False},
        ),
        id="request-header-unchanged-untrusted",
    ),
]

#: Every row of the hostile table under the default rule, and the rows the
#: hard floor rejects under a validator that accepts anything.
HOSTILE_CASES = [
    *(
        pytest.param(Case(list(row.occurrences), final(GEN)), id=row.name)
        for row in select()
    ),
    *(
        pytest.param(
            Case(list(row.occurrences), final(GEN), ALLOW_ALL),
            id=f"{row.name}-permissive",
        )
        for row in select(fails_floor=True)
    ),
]

ALL_CASES = [*HEADER_CASES, *RESPONSE_CASES, *HOSTILE_CASES]


def log_texts(records: Iterable[logging.LogRecord]) -> list[str]:
    """Return every record fully formatted, traceback and raw args included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [f"{formatter.format(r)} {r.args!r} {r.msg!r}" for r in records]


# --- every row through every driver -------------------------------------------


@pytest.mark.parametrize("case", [*HEADER_CASES, *RESPONSE_CASES])
def test_row_gives_contract_outcome(driver: Driver, case: Case) -> None:
    """Each header and response-header row gives exactly the contract's outcome."""
    assert case.run(driver) == case.expected


@pytest.mark.parametrize("case", HOSTILE_CASES)
def test_hostile_value_is_replaced_and_found_nowhere(
    driver: Driver, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    """A hostile value yields the generated id and leaves no trace, logs included."""
    caplog.set_level(logging.DEBUG)
    outcome = case.run(driver)
    assert outcome == final(GEN)
    texts = outcome.texts() + log_texts(caplog.records) + [caplog.text]
    for needle in needles(case.header_values or []):
        for text in texts:
            assert needle not in text, (needle[:40], text[:200])


@pytest.mark.parametrize("case", ALL_CASES)
def test_adapters_agree(wsgi_driver: Driver, case: Case) -> None:
    """ASGI and WSGI give equal outcomes for the same row, each with a fresh config."""
    assert case.run(run_asgi) == case.run(wsgi_driver)


# --- defaults and failing hooks: random built-in ids ---------------------------


def id_shape(outcome: Outcome) -> Outcome:
    """Replace a 32-hex id by ``<hex>`` so random ids compare by position."""

    def mask(text: str | None) -> str | None:
        if text is not None and HEX32.fullmatch(text):
            return "<hex>"
        return text

    def mask_all(texts: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(cast(str, mask(t)) for t in texts)

    return Outcome(
        mask(outcome.seen_id),
        mask_all(outcome.request_header),
        mask(outcome.stored),
        mask_all(outcome.response_header),
    )


def assert_builtin_id(outcome: Outcome) -> None:
    """Check every field holds the same built-in 32-hex id."""
    assert outcome.seen_id is not None
    assert HEX32.fullmatch(outcome.seen_id), outcome
    assert outcome == final(outcome.seen_id)


def raising_after_first() -> Callable[[], str]:
    """A generator that works at construction, then raises on every call."""
    return AfterConstruction("gen-0", RuntimeError("generator broke"))


def returning_after_first(bad: str) -> Callable[[], str]:
    """A generator that works at construction, then returns *bad*."""
    return AfterConstruction("gen-0", lambda: bad)


FAILING_GENERATORS = [
    pytest.param(raising_after_first, id="raises"),
    *(
        pytest.param(lambda bad=bad: returning_after_first(bad), id=name)
        for name, bad in [
            ("empty", ""),
            ("space", "gen 1"),
            ("crlf", "gen\r\n1"),
            ("non-ascii", "gén-1"),
            ("1025-chars", "g" * 1025),
        ]
    ),
]


@pytest.mark.parametrize("make_generator", FAILING_GENERATORS)
@pytest.mark.parametrize(
    "header_values",
    [pytest.param(None, id="absent"), pytest.param([b"a b"], id="rejected")],
)
def test_failing_generator_falls_back_to_builtin(
    driver: Driver,
    make_generator: Callable[[], Callable[[], str]],
    header_values: list[bytes] | None,
) -> None:
    """A generator failing at request time is replaced by the built-in one."""
    config = Config(generator=make_generator())
    assert_builtin_id(driver(config, header_values))


@pytest.mark.parametrize("make_generator", FAILING_GENERATORS)
def test_adapters_agree_on_failing_generator(
    wsgi_driver: Driver, make_generator: Callable[[], Callable[[], str]]
) -> None:
    """Both adapters fall back to the built-in generator the same way."""
    asgi_outcome = run_asgi(Config(generator=make_generator()), None)
    wsgi_outcome = wsgi_driver(Config(generator=make_generator()), None)
    assert id_shape(asgi_outcome) == id_shape(wsgi_outcome) == final("<hex>")


@pytest.mark.parametrize(
    "header_values",
    [
        pytest.param(None, id="absent"),
        pytest.param([b"a", b"b"], id="two-occurrences"),
        pytest.param([b"EVIL\r\nx"], id="crlf"),
    ],
)
def test_default_config_generates_builtin_id(
    driver: Driver, header_values: list[bytes] | None
) -> None:
    """config=None generates one 32-hex id, used everywhere."""
    assert_builtin_id(driver(None, header_values))


def test_default_config_keeps_valid_id_in_both_adapters(wsgi_driver: Driver) -> None:
    """config=None keeps a valid id, identically in both adapters."""
    assert run_asgi(None, [b"abc-123"]) == wsgi_driver(None, [b"abc-123"])
    assert run_asgi(None, [b"abc-123"]) == final("abc-123")


# --- where the adapters differ by nature -----------------------------------------


def test_asgi_unchanged_request_keeps_every_occurrence() -> None:
    """ASGI, update_request_header=False: the app sees each occurrence as sent."""
    config = Config(generator=counting_generator(), update_request_header=False)
    outcome = run_asgi(config, [b"a", b" b"])
    assert outcome == Outcome(GEN, ("a", " b"), GEN, (GEN,))


def test_wsgi_unchanged_request_keeps_server_joined_value(wsgi_driver: Driver) -> None:
    """WSGI, update_request_header=False: the app sees the server's joined value."""
    config = Config(generator=counting_generator(), update_request_header=False)
    outcome = wsgi_driver(config, [b"a", b"b"])
    assert outcome.request_header in {("a,b",), ("a, b",)}
    assert outcome == Outcome(GEN, outcome.request_header, GEN, (GEN,))


def test_asgi_mixed_case_occurrences_are_one_header() -> None:
    """ASGI: occurrences under differently cased names are read as one list."""
    config = Config(generator=counting_generator(), validator=lambda value: True)
    scope_headers = [(b"X-Request-ID", b"a"), (b"x-request-id", b"b")]
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(get_request_id())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = serve(
        asgi.RequestIdMiddleware(app, config=config), http_scope(scope_headers)
    )
    assert seen == ["a,b"]
    assert values_of(response_start(sent)["headers"], b"x-request-id") == [b"a,b"]


@pytest.mark.parametrize(
    "middleware",
    [
        pytest.param(asgi.RequestIdMiddleware, id="asgi"),
        pytest.param(wsgi.RequestIdMiddleware, id="wsgi"),
    ],
)
@pytest.mark.parametrize(
    "config",
    [
        pytest.param("x", id="str"),
        pytest.param({"header_name": "X-Request-ID"}, id="dict"),
        pytest.param(Config, id="the-class-itself"),
    ],
)
def test_config_of_wrong_kind_raises_type_error_naming_config(
    middleware: Callable[..., object], config: object
) -> None:
    """Both adapters refuse a config that is not a Config (or None), naming it."""
    with pytest.raises(TypeError, match="config") as info:
        middleware(lambda *args: None, config=config)
    assert repr(config) in str(info.value)
