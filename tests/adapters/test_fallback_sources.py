"""Config.fallback_sources through both adapters: one table, identical results.

Each row of the shared table (``header_sets``, which the Django middleware's
tests run too) is a request's headers: the id header (``X-Request-ID``) present,
absent or rejected, and the fallback sources' headers (``X-Correlation-ID``,
``traceparent``, ``X-Amzn-Trace-Id``) valid, invalid, repeated or absent.
The driver pair serves it through the ASGI and the WSGI adapter; both must
give the row's id, echo it under ``header_name`` only, rewrite only that
request header, and hand the fallback headers to the app as they came.
"""

from __future__ import annotations

from typing import Any

import pytest
from drivers import DRIVERS, Request, Served, serve_asgi, serve_wsgi
from header_sets import CORR, GEN, TABLE, TP, TRACEPARENT, config
from hooks_testing import counting_generator

from correlation import Config, sources


def outcome(served: Served) -> tuple[object, ...]:
    """What both adapters must agree on."""
    return (
        served.seen_id,
        served.stored,
        served.request_header,
        served.response_header,
    )


@pytest.mark.parametrize(("primary", "others", "expected"), TABLE)
def test_both_adapters_give_the_same_id(
    primary: list[bytes] | None, others: list[tuple[str, bytes]], expected: str
) -> None:
    """The row's id, the same through both adapters, under header_name only."""
    request = Request(primary, other_headers=others)
    from_asgi = serve_asgi(config(), request)
    from_wsgi = serve_wsgi(config(), request)
    assert outcome(from_asgi) == outcome(from_wsgi)
    assert outcome(from_asgi) == (expected, expected, (expected,), (expected,))


@pytest.mark.parametrize("serve", DRIVERS)
def test_fallback_headers_reach_the_app_unchanged(serve: Any) -> None:
    """Only header_name is rewritten; the header the id came from is left alone."""
    served = serve(config(), Request(None, other_headers=[(CORR, b"corr-7")]))
    assert served.seen_id == "corr-7"
    assert "corr-7" in served.app_view  # the X-Correlation-ID header, as sent
    assert served.request_header == ("corr-7",)  # X-Request-ID, added


@pytest.mark.parametrize("serve", DRIVERS)
def test_untrusted_config_reads_no_source(serve: Any) -> None:
    """trust_incoming=False generates whatever the fallback headers hold."""
    served = serve(
        config(trust_incoming=False),
        Request([b"primary-1"], other_headers=[(CORR, b"corr-1"), (TP, TRACEPARENT)]),
    )
    assert served.seen_id == GEN


@pytest.mark.parametrize("serve", DRIVERS)
def test_a_raising_source_is_passed_over(serve: Any) -> None:
    """A user's parse function that raises offers nothing; the request goes on."""

    def broken(value: str) -> str:
        raise RuntimeError(f"cannot parse {value}")

    served = serve(
        Config(
            generator=counting_generator(),
            fallback_sources=(sources.Source("X-Broken", broken), CORR),
        ),
        Request(None, other_headers=[("X-Broken", b"b-1"), (CORR, b"corr-1")]),
    )
    assert served.seen_id == "corr-1"
