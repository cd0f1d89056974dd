"""``adapters.requests``: what only the requests integration has.

Retries by urllib3, the ``HTTPAdapter`` settings ``propagate`` keeps, pickling,
the lazy import. The shared contract runs in ``test_outbound.py``.
"""

from __future__ import annotations

import pickle
import sys
import uuid

import pytest
import requests
from recording_http import Recorder
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from adapters.requests import RequestIdAdapter, propagate
from correlation import bound_request_id

NAME = "X-Request-ID"
TIMEOUT = 10.0


def retry_on_503() -> Retry:
    return Retry(total=2, status_forcelist=[503], backoff_factor=0)


def test_a_urllib3_retry_resends_the_id(first: Recorder) -> None:
    session = requests.Session()
    session.mount("http://", RequestIdAdapter(max_retries=retry_on_503()))
    with bound_request_id("job-1"), session:
        url = f"{first.url}/fail-once?key={uuid.uuid4().hex}"
        assert session.get(url, timeout=TIMEOUT).status_code == 200
    assert [seen.values(NAME) for seen in first.seen()] == [["job-1"], ["job-1"]]


def test_propagate_keeps_the_mounted_adapters_settings(first: Recorder) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry_on_503(), pool_maxsize=3))
    with propagate(session) as propagating, bound_request_id("job-2"):
        adapter = propagating.get_adapter("http://x/")
        assert isinstance(adapter, RequestIdAdapter)
        assert adapter._pool_maxsize == 3
        url = f"{first.url}/fail-once?key={uuid.uuid4().hex}"
        assert propagating.get(url, timeout=TIMEOUT).status_code == 200
    assert [seen.values(NAME) for seen in first.seen()] == [["job-2"], ["job-2"]]


def test_propagate_is_idempotent_and_returns_the_session(first: Recorder) -> None:
    session = requests.Session()
    assert propagate(session) is session
    assert propagate(session, header_name="X-Correlation-ID") is session
    with bound_request_id("job-3"), session:
        session.get(f"{first.url}/ok", timeout=TIMEOUT)
    (seen,) = first.seen()
    assert seen.values("X-Correlation-ID") == ["job-3"]
    assert seen.values(NAME) == []


def test_a_pickled_session_keeps_the_rules(first: Recorder) -> None:
    session = propagate(requests.Session(), hosts=["127.0.0.2"])
    restored = pickle.loads(pickle.dumps(session))
    with bound_request_id("job-4"), restored:
        restored.get(f"{first.url}/ok", timeout=TIMEOUT)
    assert [seen.values(NAME) for seen in first.seen()] == [[]]
    assert "127.0.0.2" in repr(restored.get_adapter("http://x/"))


def test_a_header_given_as_bytes_is_the_callers(first: Recorder) -> None:
    with bound_request_id("job-5"), propagate(requests.Session()) as session:
        session.get(f"{first.url}/ok", headers={NAME: b"as-bytes"}, timeout=TIMEOUT)
    assert [seen.values(NAME) for seen in first.seen()] == [["as-bytes"]]


@pytest.mark.parametrize("thing", [object(), "http://x", None])
def test_propagate_refuses_what_is_not_a_session(thing: object) -> None:
    with pytest.raises(TypeError, match=r"takes a requests\.Session"):
        propagate(thing)  # type: ignore[arg-type]


def test_propagate_refuses_to_replace_an_adapter_it_cannot_copy() -> None:
    session = requests.Session()
    session.mount("https://", requests.adapters.BaseAdapter())
    with pytest.raises(TypeError, match=r"'https://', which is not an HTTPAdapter"):
        propagate(session)


def test_without_requests_the_adapter_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Importing the module works; the adapter's name says what to install."""
    import adapters.requests

    monkeypatch.setitem(sys.modules, "requests", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "adapters._requests_adapter")
    monkeypatch.delitem(vars(adapters.requests), "RequestIdAdapter", raising=False)
    with pytest.raises(ImportError, match=r"correlation-toolkit\[requests\]"):
        adapters.requests.RequestIdAdapter  # noqa: B018 - the lookup is the test


def test_another_import_error_is_not_disguised(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.requests

    monkeypatch.setitem(sys.modules, "adapters._requests_adapter", None)
    monkeypatch.delitem(vars(adapters.requests), "RequestIdAdapter", raising=False)
    with pytest.raises(ImportError) as raised:
        adapters.requests.RequestIdAdapter  # noqa: B018 - the lookup is the test
    assert "correlation-toolkit" not in str(raised.value)


def test_a_missing_name_is_an_attribute_error() -> None:
    import adapters.requests

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        adapters.requests.Nothing  # noqa: B018 - the lookup is the test


def test_propagate_mounts_where_nothing_was_mounted(first: Recorder) -> None:
    session = requests.Session()
    del session.adapters["http://"]
    with bound_request_id("job-6"), propagate(session):
        session.get(f"{first.url}/ok", timeout=TIMEOUT)
    assert [seen.values(NAME) for seen in first.seen()] == [["job-6"]]


def test_dir_lists_the_lazy_name() -> None:
    import adapters.requests

    assert {"RequestIdAdapter", "propagate"} <= set(dir(adapters.requests))
