"""Fixtures shared by every test level."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from correlation import _context


@pytest.fixture(autouse=True)
def _request_id_unset() -> Iterator[None]:
    """Every test starts and ends with the ContextVar unset in its context."""
    assert _context._BINDING.get() is None, "a request id leaked into this test"
    yield
    assert _context._BINDING.get() is None, "the test left a request id bound"
