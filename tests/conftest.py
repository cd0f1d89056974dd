"""Fixtures shared by every test level."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest
from recording_http import Recorder, serve_recorder

from correlation import _context

if TYPE_CHECKING:
    from celery_brokers import Runners


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


# --- Celery runners ----------------------------------------------------------------
# Every (broker, way of running) pair a test asks for, started on first use and
# kept until the session ends (``celery_brokers.Runners``); the brokers are the
# ones CORRELATION_TEST_BROKERS names.


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each broker's Celery tests together, in their (random) order.

    Only one in-process worker runs at a time (``celery_brokers.Runners``):
    grouping the tests by broker starts each broker's once.
    """
    slots = [i for i, item in enumerate(items) if _celery_broker(item) is not None]
    ordered = sorted(
        (items[i] for i in slots), key=lambda item: _celery_broker(item) or ""
    )  # stable
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def _celery_broker(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    run = callspec.params.get("runner") if callspec is not None else None
    return run[0] if isinstance(run, tuple) else None


@pytest.fixture(scope="session")
def celery_runners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runners]:
    from celery_brokers import Runners

    with ExitStack() as stack:
        yield Runners(stack, tmp_path_factory.mktemp("celery"))
