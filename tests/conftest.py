"""Fixtures shared by every test level."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from recording_http import Recorder, serve_recorder

from correlation import _context


@pytest.fixture(autouse=True)
def _request_id_unset() -> Iterator[None]:
    """Every test starts and ends with the ContextVar unset in its context."""
    assert _context._BINDING.get() is None, "a request id leaked into this test"
    yield
    assert _context._BINDING.get() is None, "the test left a request id bound"


# --- the two recording hosts ---------------------------------------------------
# ``first`` (127.0.0.1) and ``second`` (127.0.0.2) are recording HTTP servers
# (``recording_http``) on two loopback addresses, which an allow-list sees as
# two hosts. Each starts once per session, when a test first asks for it;
# every test gets it with nothing recorded yet.


@pytest.fixture(scope="session")
def _first_host() -> Iterator[Recorder]:
    with serve_recorder("127.0.0.1") as recorder:
        yield recorder


@pytest.fixture(scope="session")
def _second_host() -> Iterator[Recorder]:
    with serve_recorder("127.0.0.2") as recorder:
        yield recorder


@pytest.fixture
def first(_first_host: Recorder) -> Recorder:
    """The recording server on 127.0.0.1, with nothing recorded yet."""
    _first_host.clear()
    return _first_host


@pytest.fixture
def second(_second_host: Recorder) -> Recorder:
    """The recording server on 127.0.0.2 (another host), with nothing recorded yet."""
    _second_host.clear()
    return _second_host
