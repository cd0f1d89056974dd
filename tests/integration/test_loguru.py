"""loguru: ``patcher`` puts the id in every record's ``extra``, with the real library.

A sink formatting ``{extra[request_id]}`` works inside and outside a unit of
work, with no ``KeyError`` (loguru would report one on stderr and drop the
line); a value from ``contextualize`` or ``bind`` is kept; a sink added with
``enqueue=True`` writes the id of the code that logged, not of its own
thread; no record is ever dropped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from framework_testing import get
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from adapters.loguru import patcher
from correlation import bound_request_id
from correlation.threads import Thread

FORMAT = "[{extra[request_id]}] {message}"


#: What loguru writes on stderr when a sink fails (a ``KeyError``, say).
SINK_ERROR = "Logging error in Loguru Handler"


@pytest.fixture
def lines(capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    """The messages of a sink on the patched logger, as an app configures it."""
    written: list[str] = []
    logger.configure(patcher=patcher)
    sink = logger.add(
        lambda message: written.append(message.rstrip("\n")), format=FORMAT
    )
    try:
        yield written
    finally:
        logger.remove(sink)
        logger.configure(patcher=lambda record: None)  # configure() has no "unset"
    assert SINK_ERROR not in capsys.readouterr().err


def test_inside_and_outside_a_unit_of_work(lines: list[str]) -> None:
    logger.info("before")
    with bound_request_id("job-1"):
        logger.warning("during")
    logger.error("after")
    assert lines == ["[-] before", "[job-1] during", "[-] after"]


def test_a_sink_with_the_format_fails_without_the_patcher(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The failure the patcher prevents: loguru reports a KeyError, no line."""
    written: list[str] = []
    sink = logger.add(written.append, format=FORMAT, catch=True)
    try:
        logger.info("no patcher")
    finally:
        logger.remove(sink)
    assert written == []
    error = capsys.readouterr().err
    assert SINK_ERROR in error
    assert "KeyError: 'request_id'" in error


def test_each_request_logs_its_own_id(lines: list[str]) -> None:
    async def order(request: Request) -> PlainTextResponse:
        logger.info("async view")
        return PlainTextResponse("ok")

    def refund(request: Request) -> PlainTextResponse:
        logger.info("sync view")
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(
        Starlette(routes=[Route("/order", order), Route("/refund", refund)])
    )
    given = get(app, "/order", {"X-Request-ID": "req-9"})
    generated = get(app, "/refund")
    assert lines == [
        "[req-9] async view",
        f"[{generated.headers['X-Request-ID']}] sync view",
    ]
    assert given.headers["X-Request-ID"] == "req-9"


@pytest.mark.parametrize("how", ["contextualize", "bind", "call-argument"])
def test_a_value_the_code_gave_is_kept(lines: list[str], how: str) -> None:
    with bound_request_id("current"):
        if how == "contextualize":
            with logger.contextualize(request_id="mine"):
                logger.info("x")
        elif how == "bind":
            logger.bind(request_id="mine").info("x")
        else:
            logger.info("x", request_id="mine")
    assert lines == ["[mine] x"]


def test_contextualize_outside_a_unit_is_kept_too(lines: list[str]) -> None:
    with logger.contextualize(request_id="cli-run"):
        logger.info("x")
    assert lines == ["[cli-run] x"]


def test_logger_patch_serves_one_logger_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``logger.patch(patcher)``: the patched object only, not the global logger."""
    written: list[str] = []
    patched = logger.patch(patcher)
    sink = logger.add(
        written.append,
        format=FORMAT,
        filter=lambda record: "request_id" in record["extra"],
    )
    try:
        with bound_request_id("patched"):
            patched.info("via patch")
            logger.info("plain logger")  # no key: the sink's filter skips it
    finally:
        logger.remove(sink)
    assert [line.rstrip("\n") for line in written] == ["[patched] via patch"]
    assert SINK_ERROR not in capsys.readouterr().err


def test_enqueued_sink_writes_the_id_of_the_code_that_logged(
    lines: list[str],
) -> None:
    """With ``enqueue=True`` the sink runs in loguru's thread: the id is already set."""
    queued: list[tuple[str, int]] = []
    sink = logger.add(
        lambda message: queued.append((message.rstrip("\n"), threading.get_ident())),
        format=FORMAT,
        enqueue=True,
    )
    try:

        def work(n: int) -> None:
            with bound_request_id(f"thread-{n}"):
                logger.info(f"work {n}")

        workers = [Thread(target=work, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=10)
        logger.info("main")
        logger.complete()  # waits until the queue is written
    finally:
        logger.remove(sink)
    assert sorted(text for text, _ in queued) == [
        "[-] main",
        "[thread-0] work 0",
        "[thread-1] work 1",
        "[thread-2] work 2",
        "[thread-3] work 3",
    ]
    assert threading.get_ident() not in {thread for _, thread in queued}


def test_async_tasks_log_their_own_ids(lines: list[str]) -> None:
    async def job(n: int) -> None:
        with bound_request_id(f"task-{n}"):
            await asyncio.sleep(0)
            logger.info(f"job {n}")

    async def main() -> None:
        await asyncio.gather(*(job(n) for n in range(3)))

    asyncio.run(main())
    assert sorted(lines) == ["[task-0] job 0", "[task-1] job 1", "[task-2] job 2"]


def test_no_record_is_dropped(lines: list[str]) -> None:
    """Every level, inside and outside a unit: one line per record."""
    levels = ["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"]
    sink_all: list[str] = []
    sink = logger.add(sink_all.append, format=FORMAT, level="TRACE")
    try:
        for level in levels:
            logger.log(level, level)
            with bound_request_id("r"):
                logger.log(level, level)
    finally:
        logger.remove(sink)
    assert len(sink_all) == 2 * len(levels)
