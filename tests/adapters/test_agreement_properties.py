"""Property-based agreement of the ASGI and WSGI adapters on generated requests.

Hypothesis draws the id header's occurrences, a config and the headers the app
sets on its response, and the suite's driver pair (``drivers``) serves them:
the ASGI adapter gets one header tuple per occurrence in a hand-built scope;
the WSGI adapter gets them as a WSGI server hands them over, decoded latin-1
and joined into one ``HTTP_*`` value with ``, `` or ``,``, and runs between
two ``wsgiref.validate`` checks. Both must come to the
same id, store it alike and answer with the same id headers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import drivers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlation import Config, default_validator
from correlation._ids import join_header_values, resolve

#: No example database in the checkout, no deadline; sized to run in seconds.
AGREEMENT = settings(
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)

HEADER_NAMES = ("X-Request-ID", "X-Correlation-ID", "Request-Id")

#: How a name is spelled on the wire or by the app: header names are
#: case-insensitive, so every spelling must count as the id header.
SPELLINGS: dict[str, Callable[[str], str]] = {
    "as-configured": lambda name: name,
    "lower": str.lower,
    "upper": str.upper,
}


def _raising(value: str) -> bool:
    """A validator that raises on values holding "!", else the default rule."""
    if "!" in value:
        raise RuntimeError(f"cannot judge {value}")
    return default_validator(value)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "default": default_validator,
    "permissive": lambda value: True,
    "prefix": lambda value: value.startswith(("a", "gen-")),
    "raising": _raising,
}


@dataclass(frozen=True)
class Request:
    """One generated request and the config to serve it with."""

    header_name: str
    wire_spelling: str
    #: The id header's occurrences as sent, or ``None`` for no header.
    occurrences: list[bytes] | None
    #: How the WSGI server joins occurrences into one environ value.
    joiner: str
    trust_incoming: bool
    response_header: bool
    update_request_header: bool
    validator: str
    #: Id headers the app sets itself: (spelling, value).
    app_headers: list[tuple[str, str]]

    def config(self) -> Config:
        """A fresh config; its counting generator makes the same ids every time."""
        counter = itertools.count()
        return Config(
            header_name=self.header_name,
            trust_incoming=self.trust_incoming,
            generator=lambda: f"gen-{next(counter)}",
            validator=VALIDATORS[self.validator],
            response_header=self.response_header,
            update_request_header=self.update_request_header,
        )

    def wire_name(self) -> str:
        """The id header's name as the client spells it."""
        return SPELLINGS[self.wire_spelling](self.header_name)

    def own_headers(self) -> list[tuple[str, str]]:
        """The id headers the app adds to its response, as (name, value)."""
        return [
            (SPELLINGS[spelling](self.header_name), value)
            for spelling, value in self.app_headers
        ]


@dataclass(frozen=True)
class Outcome:
    """What the two adapters must agree on."""

    #: ``get_request_id()`` inside the app.
    seen_id: str | None
    #: ``scope["state"]["request_id"]`` / ``environ["correlation.request_id"]``.
    stored: str | None
    #: The response's id header values, in order (their count included).
    response_header: tuple[str, ...]


# --- strategies -----------------------------------------------------------------

#: Latin-1 characters with the list syntax and id characters favoured.
_CHAR = st.one_of(
    st.sampled_from(list("ab9-_.:~,! \t")),
    st.characters(min_codepoint=0, max_codepoint=0xFF),
)

#: An id, maybe with blanks around it or a comma after it.
_ID_LIKE = st.builds(
    lambda before, core, after: before + core + after,
    st.sampled_from(["", "", " ", "\t", " \t"]),
    st.text(alphabet="ab9-_.:~", min_size=1, max_size=10),
    st.sampled_from(["", "", " ", ",", ", ", "\t"]),
)

#: One occurrence's bytes: id-like (twice as likely), short mixed text, or a
#: run near the default rule's 128 limit.
OCCURRENCE = st.one_of(
    _ID_LIKE,
    _ID_LIKE,
    st.text(alphabet=_CHAR, max_size=20),
    st.integers(120, 140).map(lambda size: "a" * size),
).map(lambda text: text.encode("latin-1"))

_VISIBLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A request: header occurrences, config and the app's own id headers."""
    return Request(
        header_name=draw(st.sampled_from(HEADER_NAMES)),
        wire_spelling=draw(st.sampled_from(sorted(SPELLINGS))),
        occurrences=draw(
            st.one_of(
                st.none(),
                st.lists(OCCURRENCE, min_size=1, max_size=1),
                st.lists(OCCURRENCE, min_size=2, max_size=6),
            )
        ),
        joiner=draw(st.sampled_from([", ", ","])),
        # Mostly trusted, so the incoming value's path is the common one.
        trust_incoming=draw(st.sampled_from([True, True, True, False])),
        response_header=draw(st.booleans()),
        update_request_header=draw(st.booleans()),
        validator=draw(st.sampled_from(sorted(VALIDATORS))),
        app_headers=draw(
            st.lists(
                st.tuples(
                    st.sampled_from(sorted(SPELLINGS)),
                    st.text(alphabet=_VISIBLE, min_size=1, max_size=12),
                ),
                max_size=2,
            )
        ),
    )


# --- through the driver pair ---------------------------------------------------


def serve(
    through: Callable[[Config | None, drivers.Request], drivers.Served], case: Request
) -> drivers.Served:
    """Serve *case* with a fresh config *through* one of ``drivers``' pair."""
    request = drivers.Request(
        case.occurrences, case.wire_name(), case.joiner, case.own_headers()
    )
    return through(case.config(), request)


def outcome(served: drivers.Served) -> Outcome:
    """What the adapters must agree on, of what one of them served."""
    return Outcome(served.seen_id, served.stored, served.response_header)


def expected_id(request: Request) -> str:
    """The id the core pipeline gives this request's occurrences."""
    incoming = None
    if request.occurrences is not None:
        incoming = join_header_values(
            [value.decode("latin-1") for value in request.occurrences]
        )
    return resolve(request.config(), incoming)


# --- the properties -------------------------------------------------------------


@AGREEMENT
@given(requests())
def test_adapters_agree_on_every_request(case: Request) -> None:
    """ASGI and WSGI see, store and echo the same id, with the same header count."""
    from_asgi = serve(drivers.serve_asgi, case)
    from_wsgi = serve(drivers.serve_wsgi, case)
    assert outcome(from_asgi) == outcome(from_wsgi)


@AGREEMENT
@given(requests())
def test_each_adapter_gives_the_pipeline_id_everywhere(case: Request) -> None:
    """Each adapter uses the core's id for the app, the stored copy and the echo."""
    request_id = expected_id(case)
    own_values = tuple(value for _, value in case.app_headers)
    if own_values:
        echoed = own_values
    elif case.response_header:
        echoed = (request_id,)
    else:
        echoed = ()
    expected = Outcome(request_id, request_id, echoed)
    assert outcome(serve(drivers.serve_asgi, case)) == expected
    assert outcome(serve(drivers.serve_wsgi, case)) == expected


@AGREEMENT
@given(requests())
def test_request_header_seen_by_the_app(case: Request) -> None:
    """The app's request header is the final id, or left as each server sent it."""
    from_asgi = serve(drivers.serve_asgi, case)
    from_wsgi = serve(drivers.serve_wsgi, case)
    request_id = from_asgi.seen_id
    assert request_id is not None
    if case.update_request_header:
        assert from_asgi.request_header == (request_id,)
        assert from_wsgi.request_header == (request_id,)
    elif case.occurrences is None:
        assert from_asgi.request_header == from_wsgi.request_header == ()
    else:
        sent = [value.decode("latin-1") for value in case.occurrences]
        assert from_asgi.request_header == tuple(sent)
        assert from_wsgi.request_header == (case.joiner.join(sent),)
