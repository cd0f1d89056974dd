"""correlation.sources: other headers an id can come from, and their formats."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hostile import MARKER, Hostile, hostile_params
from hypothesis import given, settings
from hypothesis import strategies as st
from log_testing import correlation_logs

from correlation import sources
from correlation.sources import Source

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
VALID_TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
AWS_ROOT = "1-5759e988-bd862e3fe1be46a994272793"

#: What a source may return: a candidate of the documented shape, or None.
_TRACE_SHAPE = re.compile(r"[0-9a-f]{32}")
_AWS_SHAPE = re.compile(r"1-[0-9a-fA-F]{8}-[0-9a-f]{24}")


# --- Source and header() -----------------------------------------------------------


def test_header_offers_the_value_as_it_is() -> None:
    """header(name) reads another header the way header_name is read."""
    source = sources.header("X-Correlation-ID")
    assert source.name == "X-Correlation-ID"
    assert source.candidate("abc-123") == "abc-123"


def test_default_names() -> None:
    """traceparent() and aws_trace_root() read the headers their formats live in."""
    assert sources.traceparent().name == "traceparent"
    assert sources.aws_trace_root().name == "X-Amzn-Trace-Id"
    assert sources.traceparent("X-Trace").name == "X-Trace"


def _raising(value: str) -> str:
    raise ValueError(f"cannot parse {value}")


@pytest.mark.parametrize(
    ("parse", "expected"),
    [
        pytest.param(lambda value: value.upper(), "ABC", id="returns-a-str"),
        pytest.param(lambda value: None, None, id="returns-none"),
        pytest.param(_raising, None, id="raises"),
        pytest.param(lambda value: 42, None, id="returns-an-int"),
        pytest.param(lambda value: value.encode(), None, id="returns-bytes"),
    ],
)
def test_a_user_parse_function_never_raises_into_the_request(
    parse: Any, expected: str | None
) -> None:
    """A parse function that raises or returns a non-str yields no candidate."""
    with correlation_logs() as texts:
        assert Source("X-Custom", parse).candidate("abc") == expected
    # Nothing is logged here: the message of a raising parser may quote the value.
    assert texts == []


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        pytest.param({"name": "X_Id"}, ValueError, "'_'", id="underscore"),
        pytest.param({"name": ""}, ValueError, "non-empty", id="empty"),
        pytest.param({"name": "X Id"}, ValueError, "token", id="space"),
        pytest.param({"name": "Host"}, ValueError, "own", id="reserved"),
        pytest.param({"name": b"X-Id"}, TypeError, "str", id="bytes"),
        pytest.param(
            {"parse": "lower"}, TypeError, "callable", id="parse-not-callable"
        ),
    ],
)
def test_a_source_that_cannot_work_fails_when_made(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    """The name follows header_name's rules, parse must be callable; errors say so."""
    arguments: dict[str, Any] = {"name": "X-Id", "parse": str.strip, **kwargs}
    with pytest.raises(error, match=re.escape(words)) as info:
        Source(**arguments)
    assert str(info.value).startswith("Source ")


def test_a_source_is_frozen() -> None:
    """A Source cannot be changed after it is made."""
    source = sources.header("X-Id")
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.name = "X-Other"  # type: ignore[misc]


# --- traceparent -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(VALID_TRACEPARENT, TRACE_ID, id="version-00"),
        pytest.param(f" \t{VALID_TRACEPARENT} \t", TRACE_ID, id="blanks-around"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-00", TRACE_ID, id="not-sampled"),
        pytest.param(f"01-{TRACE_ID}-{PARENT_ID}-01", TRACE_ID, id="version-01"),
        pytest.param(
            f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-adds",
            TRACE_ID,
            id="higher-version-with-more",
        ),
        pytest.param(f"ff-{TRACE_ID}-{PARENT_ID}-01", None, id="version-ff"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-01-", None, id="version-00-longer"),
        pytest.param(f"01-{TRACE_ID}-{PARENT_ID}-01x", None, id="no-dash-after-flags"),
        pytest.param(f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None, id="upper-case"),
        pytest.param(f"0A-{TRACE_ID}-{PARENT_ID}-01", None, id="upper-version"),
        pytest.param(f"00-{'0' * 32}-{PARENT_ID}-01", None, id="zero-trace-id"),
        pytest.param(f"00-{TRACE_ID}-{'0' * 16}-01", None, id="zero-parent-id"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}-0g", None, id="flags-not-hex"),
        pytest.param(f"00-{TRACE_ID[:-1]}g-{PARENT_ID}-01", None, id="trace-not-hex"),
        pytest.param(f"00_{TRACE_ID}_{PARENT_ID}_01", None, id="wrong-separators"),
        pytest.param(f"00-{TRACE_ID}-{PARENT_ID}", None, id="no-flags"),
        pytest.param(f"{VALID_TRACEPARENT},{VALID_TRACEPARENT}", None, id="two-values"),
        pytest.param("", None, id="empty"),
        pytest.param("garbage", None, id="garbage"),
    ],
)
def test_traceparent_follows_the_w3c_rules(value: str, expected: str | None) -> None:
    """A valid traceparent gives its trace-id; anything invalid gives nothing."""
    assert sources.traceparent().candidate(value) == expected


# --- X-Amzn-Trace-Id ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(f"Root={AWS_ROOT}", AWS_ROOT, id="root-only"),
        pytest.param(
            f"Root={AWS_ROOT};Parent=53995c3f42cd8ad8;Sampled=1",
            AWS_ROOT,
            id="with-parent-and-sampled",
        ),
        pytest.param(
            f"Self=1-67891234-12456789abcdef012345678a;Root={AWS_ROOT};CalledFrom=app",
            AWS_ROOT,
            id="root-not-self",
        ),
        pytest.param(
            f"Root={AWS_ROOT};CalledFrom=a=b", AWS_ROOT, id="equals-in-a-custom-field"
        ),
        pytest.param(f" Root={AWS_ROOT} ; Sampled=1 ", AWS_ROOT, id="blanks"),
        pytest.param(f"Root={AWS_ROOT};", AWS_ROOT, id="trailing-semicolon"),
        pytest.param(
            "Root=1-5759E988-bd862e3fe1be46a994272793",
            "1-5759E988-bd862e3fe1be46a994272793",
            id="upper-case-epoch",
        ),
        pytest.param("Self=1-67891234-12456789abcdef012345678a", None, id="no-root"),
        pytest.param(f"Root={AWS_ROOT};Root={AWS_ROOT}", None, id="two-roots"),
        pytest.param(f"Root={AWS_ROOT};garbage", None, id="field-without-equals"),
        pytest.param(f"root={AWS_ROOT}", None, id="lower-case-key"),
        pytest.param("Root=1-5759e988-BD862E3FE1BE46A994272793", None, id="upper-id"),
        pytest.param("Root=2-5759e988-bd862e3fe1be46a994272793", None, id="version-2"),
        pytest.param("Root=1-5759e98-bd862e3fe1be46a994272793", None, id="short-epoch"),
        pytest.param(f"Root={AWS_ROOT}0", None, id="too-long"),
        pytest.param(f"Root={AWS_ROOT},Root={AWS_ROOT}", None, id="two-values"),
        pytest.param("Root=", None, id="empty-root"),
        pytest.param("", None, id="empty"),
    ],
)
def test_aws_trace_root_takes_the_root_field_only(
    value: str, expected: str | None
) -> None:
    """The Root field, when there is exactly one well-formed; else nothing."""
    assert sources.aws_trace_root().candidate(value) == expected


# --- never an error, never a log line ----------------------------------------------


@settings(database=None, deadline=None, max_examples=300)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet="0123456789abcdef-", max_size=80),
        st.text(alphabet="Root=1-abcdef0123456789;Self ,", max_size=80),
    )
)
def test_the_built_in_sources_never_raise(value: str) -> None:
    """Whatever the value, a built-in source gives None or a candidate of its shape."""
    trace_id = sources.traceparent().candidate(value)
    assert trace_id is None or _TRACE_SHAPE.fullmatch(trace_id)
    root = sources.aws_trace_root().candidate(value)
    assert root is None or _AWS_SHAPE.fullmatch(root)
    assert sources.header("X-Id").candidate(value) == value


@pytest.mark.parametrize("row", hostile_params())
def test_hostile_values_yield_no_candidate_and_no_log(row: Hostile) -> None:
    """The hostile table's values give the format sources nothing, and log nothing."""
    with correlation_logs() as texts:
        for source in (sources.traceparent(), sources.aws_trace_root()):
            assert source.candidate(row.joined(",")) is None
            assert source.candidate(f"Root={row.joined(',')}") is None
    assert not [text for text in texts if MARKER in text]
    assert texts == []
