"""structlog: ``add_request_id`` puts the id in the event dict, with the real library.

The processor runs in structlog's own chain, where the event is logged:
inside a request the rendered line holds the request's id, outside it holds
no ``request_id`` key; an id the code bound itself is kept; async log methods
(run in a thread with a copy of the context) and standard-library records
formatted by ``ProcessorFormatter`` get it too.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from framework_testing import get
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from adapters.structlog import add_request_id
from correlation import bound_request_id, get_request_id
from correlation.threads import ThreadPoolExecutor


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """structlog configured as an app would, rendering JSON lines to a buffer."""
    buffer = io.StringIO()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.PrintLoggerFactory(buffer),
        cache_logger_on_first_use=True,
    )
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def events(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_inside_a_unit_the_event_has_the_id_outside_no_key(output: io.StringIO) -> None:
    log = structlog.get_logger()
    log.info("before")
    with bound_request_id("job-7"):
        log.info("during", order=3)
    log.info("after")
    assert events(output) == [
        {"event": "before", "level": "info"},
        {"event": "during", "level": "info", "order": 3, "request_id": "job-7"},
        {"event": "after", "level": "info"},
    ]


def test_each_request_logs_its_own_id_through_a_cached_logger(
    output: io.StringIO,
) -> None:
    """A logger made at import time (and cached) reads the id per event."""
    log = structlog.get_logger("shop")
    log.info("imported")  # the first use caches the bound logger

    async def order(request: Request) -> PlainTextResponse:
        log.info("order received")
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/order", order)]))
    first = get(app, "/order", {"X-Request-ID": "req-1"})
    second = get(app, "/order")
    assert [event.get("request_id") for event in events(output)] == [
        None,
        "req-1",
        second.headers["X-Request-ID"],
    ]
    assert first.headers["X-Request-ID"] == "req-1"
    assert second.headers["X-Request-ID"] != "req-1"


@pytest.mark.parametrize(
    "how", ["bind", "call-argument", "bind_contextvars", "new-and-bind"]
)
def test_an_id_the_code_gave_itself_is_kept(output: io.StringIO, how: str) -> None:
    log = structlog.get_logger()
    with bound_request_id("current"):
        if how == "bind":
            log.bind(request_id="mine").info("x")
        elif how == "call-argument":
            log.info("x", request_id="mine")
        elif how == "bind_contextvars":
            with structlog.contextvars.bound_contextvars(request_id="mine"):
                log.info("x")
        else:
            log.new(request_id="mine").info("x")
    assert [event["request_id"] for event in events(output)] == ["mine"]


def test_a_none_the_code_bound_is_kept_too(output: io.StringIO) -> None:
    """The key is there, so the processor does not touch it."""
    with bound_request_id("current"):
        structlog.get_logger().bind(request_id=None).info("x")
    assert events(output)[0]["request_id"] is None


def test_async_log_methods_see_the_request_id(output: io.StringIO) -> None:
    """``await log.ainfo()`` runs the chain in a thread, with the caller's context."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )
    log = structlog.get_logger()

    async def order(request: Request) -> PlainTextResponse:
        await log.ainfo("async event")
        await log.adebug("filtered out")
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/order", order)]))
    response = get(app, "/order")
    assert events(output) == [
        {
            "event": "async event",
            "level": "info",
            "request_id": response.headers["X-Request-ID"],
        }
    ]


def test_threads_the_request_hands_work_to_log_its_id(output: io.StringIO) -> None:
    log = structlog.get_logger()
    with bound_request_id("pool-1"), ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda n: log.info("item", n=n), range(3)))
    assert sorted((e["n"], e["request_id"]) for e in events(output)) == [
        (0, "pool-1"),
        (1, "pool-1"),
        (2, "pool-1"),
    ]


def test_standard_library_records_through_processor_formatter() -> None:
    """``foreign_pre_chain`` gives records from ``logging`` the id as well."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[add_request_id, structlog.stdlib.add_log_level],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        )
    )
    logger = logging.getLogger(f"tests.structlog.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def view(request: Request) -> PlainTextResponse:  # a sync view: a thread
        logger.warning("from logging, id %s", get_request_id())
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/", view)]))
    try:
        logger.info("outside")
        get(app, "/", {"X-Request-ID": "std-1"})
    finally:
        logger.removeHandler(handler)
    assert events(buffer) == [
        {"event": "outside", "level": "info"},
        {"event": "from logging, id std-1", "level": "warning", "request_id": "std-1"},
    ]


def test_structlog_events_routed_to_logging_keep_the_id() -> None:
    """structlog's own events through ``wrap_for_formatter`` carry the id they had."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        )
    )
    name = f"tests.structlog.{uuid.uuid4().hex}"
    stdlib_logger = logging.getLogger(name)
    stdlib_logger.addHandler(handler)
    stdlib_logger.setLevel(logging.INFO)
    stdlib_logger.propagate = False
    structlog.configure(
        processors=[
            add_request_id,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    try:
        with bound_request_id("routed-1"):
            structlog.get_logger(name).info("through logging")
    finally:
        structlog.reset_defaults()
        stdlib_logger.removeHandler(handler)
    assert events(buffer) == [{"event": "through logging", "request_id": "routed-1"}]
