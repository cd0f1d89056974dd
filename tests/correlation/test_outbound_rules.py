"""``correlation._outbound``: the rules every outbound HTTP integration shares.

The allow-list and the per-hop decision, without any client. What reaches a
real server through each client is in ``integration/test_outbound.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from correlation import bound_request_id
from correlation._outbound import Outbound

MATCHES = [
    # entry, host as a URL gives it, sent?
    ("api.internal", "api.internal", True),
    ("api.internal", "API.Internal", True),
    ("API.INTERNAL", "api.internal", True),
    ("api.internal", "api.internal.", True),
    ("api.internal.", "api.internal", True),
    ("api.internal", "x.api.internal", False),
    ("api.internal", "api.internal.evil", False),
    ("api.internal", "evilapi.internal", False),
    (".internal", "internal", True),
    (".internal", "api.internal", True),
    (".internal", "a.b.internal", True),
    (".internal", "A.B.INTERNAL.", True),
    (".internal", "evilinternal", False),
    (".internal", "internal.evil", False),
    ("*", "anything.example", True),
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.2", False),
    ("[::1]", "::1", True),
    ("[::1]", "[::1]", True),
    ("::1", "[::1]", True),
    ("[::1]", "::2", False),
    # A '.domain' entry matches names under it, never an IP address.
    (".0.0.1", "127.0.0.1", False),
    (".1", "10.0.0.1", False),
    (".1", "::1", False),
    (".example", "1.example", True),
]


@pytest.mark.parametrize(("entry", "host", "sent"), MATCHES)
def test_an_entry_matches_hosts_as_the_contract_says(
    entry: str, host: str, sent: bool
) -> None:
    assert Outbound(hosts=[entry]).sends_to(host) is sent


def test_no_list_sends_everywhere_and_an_empty_one_nowhere() -> None:
    assert Outbound().sends_to("anything.example")
    assert not Outbound(hosts=[]).sends_to("anything.example")
    assert not Outbound(hosts=()).sends_to("127.0.0.1")


def test_several_entries_any_of_them_matches() -> None:
    outbound = Outbound(hosts=["api.internal", ".corp", "[::1]"])
    assert [
        outbound.sends_to(h) for h in ("api.internal", "x.corp", "::1", "other")
    ] == [True, True, True, False]


# --- the per-hop decision ------------------------------------------------------


def test_outside_a_unit_of_work_no_header() -> None:
    assert Outbound().header_value("h", None, None) is None


def test_inside_a_unit_of_work_the_current_id() -> None:
    with bound_request_id("unit-1"):
        assert Outbound().header_value("h", None, None) == "unit-1"


@pytest.mark.parametrize("sent", ["mine", "", "unit-1 "])
def test_the_callers_header_is_kept_on_any_host(sent: str) -> None:
    outbound = Outbound(hosts=["listed"])
    with bound_request_id("unit-1"):
        assert outbound.header_value("listed", sent, None) is sent
        assert outbound.header_value("unlisted", sent, None) is sent
    assert outbound.header_value("listed", sent, None) is sent


def test_our_own_header_from_an_earlier_hop_is_decided_again() -> None:
    outbound = Outbound(hosts=["listed"])
    with bound_request_id("unit-1"):
        assert outbound.header_value("listed", "unit-1", "unit-1") == "unit-1"
        assert outbound.header_value("unlisted", "unit-1", "unit-1") is None
    assert outbound.header_value("listed", "unit-1", "unit-1") is None


def test_a_header_that_differs_from_what_we_added_is_the_callers() -> None:
    with bound_request_id("unit-2"):
        assert Outbound().header_value("h", "changed", "unit-1") == "changed"


def test_idle_only_outside_a_unit_with_nothing_of_ours_on_the_request() -> None:
    outbound = Outbound()
    assert outbound.idle(None)
    assert not outbound.idle("added-earlier")
    with bound_request_id("unit-1"):
        assert not outbound.idle(None)


def test_the_id_is_read_on_each_call() -> None:
    outbound = Outbound()
    with bound_request_id("unit-1"):
        first = outbound.header_value("h", None, None)
    with bound_request_id("unit-2"):
        second = outbound.header_value("h", None, None)
    assert (first, second) == ("unit-1", "unit-2")


# --- construction ----------------------------------------------------------------

BAD = [
    ({"header_name": ""}, ValueError, "header_name must be a non-empty"),
    ({"header_name": 5}, TypeError, "header_name must be a str, got 5"),
    ({"header_name": "X Request"}, ValueError, "header_name must be an RFC 9110"),
    ({"header_name": "cookie"}, ValueError, "header_name must not be a header"),
    ({"hosts": "api.internal"}, TypeError, "hosts must be None or a list"),
    ({"hosts": b"api"}, TypeError, "hosts must be None or a list"),
    ({"hosts": 5}, TypeError, "hosts must be None or a list"),
    ({"hosts": [5]}, TypeError, "hosts entries must be str, got 5"),
    ({"hosts": [""]}, ValueError, "must name a host or a '.domain', got ''"),
    ({"hosts": ["."]}, ValueError, "must name a host or a '.domain', got '.'"),
    ({"hosts": ["..x"]}, ValueError, "must name a host or a '.domain'"),
    ({"hosts": ["http://api"]}, ValueError, "without a scheme, path"),
    ({"hosts": ["api/v1"]}, ValueError, "without a scheme, path"),
    ({"hosts": ["user@api"]}, ValueError, "without a scheme, path, user"),
    ({"hosts": ["api internal"]}, ValueError, "or space, got 'api internal'"),
    ({"hosts": ["*.internal"]}, ValueError, "'.domain' or '\\*'"),
    ({"hosts": ["api:8080"]}, ValueError, r"not hold a port \(.*\), got 'api:8080'"),
    ({"hosts": ["[::1]:8080"]}, ValueError, "must not hold a port"),
    ({"hosts": ["[api]"]}, ValueError, "in brackets must be IPv6 addresses"),
    ({"hosts": ["bücher.de"]}, ValueError, "must be ASCII host names"),
    ({"hosts": ["api\x00"]}, ValueError, "must be ASCII host names"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD)
def test_a_bad_setting_names_the_field_the_rule_and_the_value(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Outbound(**options)


def test_any_collection_of_entries_is_accepted() -> None:
    for hosts in (["a"], ("a",), {"a"}, frozenset({"a"})):
        assert Outbound(hosts=hosts).sends_to("A.")


def test_the_repr_names_the_header_and_the_hosts() -> None:
    assert repr(Outbound()) == "<correlation outbound X-Request-ID to every host>"
    assert repr(Outbound(hosts=[])) == "<correlation outbound X-Request-ID to no host>"
    listed = Outbound("X-Correlation-ID", ["b.example", ".corp", "A.example."])
    assert repr(listed) == (
        "<correlation outbound X-Correlation-ID to a.example, b.example, .corp>"
    )
