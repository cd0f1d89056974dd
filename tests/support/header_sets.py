"""The shared table of header sets for ``Config.fallback_sources``.

Not a test module. Each row is a request's headers: the id header
(``X-Request-ID``) present, absent, rejected or repeated, and the fallback
sources' headers (``X-Correlation-ID``, ``traceparent``, ``X-Amzn-Trace-Id``)
valid, invalid, repeated or absent, with the id the request must get under
``config()``. The ASGI and WSGI adapters (``tests/adapters``) and the Django
middleware (``tests/integration``) run every row and must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hooks_testing import counting_generator

from correlation import Config, sources

__all__ = ["AMZN", "CORR", "GEN", "ROOT", "TABLE", "TP", "TRACEPARENT", "config"]

#: What the counting generator gives the first request.
GEN = "gen-1"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01".encode()
ROOT = "1-5759e988-bd862e3fe1be46a994272793"
AMZN = f"Self=1-67891234-abcdef012345678912345678;Root={ROOT};Sampled=1".encode()

CORR = "X-Correlation-ID"
TP = "traceparent"
AWS = "X-Amzn-Trace-Id"


def config(**options: Any) -> Config:
    """The table's config: three fallbacks after X-Request-ID, known ids."""
    return Config(
        generator=counting_generator(),
        fallback_sources=(CORR, sources.traceparent(), sources.aws_trace_root()),
        **options,
    )


#: (primary occurrences, other headers, the id the request must get)
TABLE = [
    pytest.param([b"primary-1"], [(CORR, b"corr-1")], "primary-1", id="primary-wins"),
    pytest.param(None, [(CORR, b"corr-1")], "corr-1", id="primary-absent"),
    pytest.param([b"a b"], [(CORR, b"corr-1")], "corr-1", id="primary-rejected"),
    pytest.param([b"a", b"b"], [(CORR, b"corr-1")], "corr-1", id="primary-repeated"),
    pytest.param(None, [(CORR, b" corr-1 ")], "corr-1", id="fallback-blanks"),
    pytest.param(None, [(TP, TRACEPARENT)], TRACE_ID, id="traceparent"),
    pytest.param(
        None, [(CORR, b"<x>"), (TP, TRACEPARENT)], TRACE_ID, id="first-rejected"
    ),
    pytest.param(
        None,
        [(CORR, b"c1"), (CORR, b"c2"), (TP, TRACEPARENT)],
        TRACE_ID,
        id="fallback-repeated",
    ),
    pytest.param(
        None, [(TP, TRACEPARENT), (TP, TRACEPARENT)], GEN, id="two-traceparents"
    ),
    pytest.param(
        None, [(TP, b"ff" + TRACEPARENT[2:]), (AWS, AMZN)], ROOT, id="aws-root"
    ),
    pytest.param(
        None,
        [(AWS, b"Self=1-67891234-abcdef012345678912345678")],
        GEN,
        id="aws-no-root",
    ),
    pytest.param(
        None,
        [(AWS, f"Root={ROOT};CalledFrom=a=b".encode())],
        ROOT,
        id="aws-custom-field",
    ),
    pytest.param(
        None, [(CORR, b"EVIL\r\nSet-Cookie: a=b")], GEN, id="hostile-fallback"
    ),
    pytest.param(None, [], GEN, id="nothing"),
]
