"""Units of work that are not HTTP requests, logging through ``RequestIdFilter``.

A Kafka-style consumer: a bounded loop in a worker thread takes messages from
a ``queue.Queue`` and handles each inside ``with bound_request_id(header) as
rid:``, where *header* is the message's raw header bytes (or ``None``). A
CLI or cron job: a function decorated with ``@bound_request_id()``. Both log
through a handler with ``correlation.logging.RequestIdFilter`` on the root
logger, formatting ``%(request_id)s``; the tests read the formatted output
and every record.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from asgi_testing import HEX32, TIMEOUT
from hostile import HOSTILE, MARKER
from log_testing import LogCapture, capture_logs

from correlation import bound_request_id, get_request_id

#: Message header values, as raw bytes, and whether the consumer keeps them:
#: two valid ones, none, and every one-occurrence row of the hostile table.
HEADERS: list[tuple[str, bytes | None, bool]] = [
    ("valid", b"order-42", True),
    ("valid-punctuation", b"kafka:orders/7@31", True),
    ("missing", None, False),
    *(
        (row.name, row.occurrences[0], False)
        for row in HOSTILE
        if len(row.occurrences) == 1
    ),
]

#: The format of the logged output: the filter's attribute first.
LOG_FORMAT = "%(request_id)s %(name)s %(levelname)s %(message)s"


@pytest.fixture
def logged() -> Iterator[LogCapture]:
    """Every record on the root logger at DEBUG, filtered, as ``LOG_FORMAT`` lines.

    DEBUG lets the toolkit's own records (``correlation``, where a rejected
    value is reported without the value) through as well.
    """
    with capture_logs("", level=logging.DEBUG, fmt=LOG_FORMAT) as capture:
        yield capture


# --- a Kafka-style consumer ------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A consumed message: its key and headers, raw bytes as a client gives them."""

    key: str
    headers: dict[str, bytes] = field(default_factory=dict)


class HandlerError(Exception):
    """What the handler raises for a message it cannot process."""


#: Put on the queue to end the consumer's loop.
STOP = Message("stop")


@dataclass
class Consumer:
    """A consumer loop and what it saw, run in a worker thread of its own."""

    inbox: queue.Queue[Message] = field(default_factory=queue.Queue)
    #: (key, the id the block yielded, get_request_id() in the handler)
    handled: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: get_request_id() in the consumer thread before each poll and at the end.
    between: list[str | None] = field(default_factory=list)
    #: Contexts copied inside each handler.
    contexts: list[contextvars.Context] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)

    def handle(self, message: Message, request_id: str) -> None:
        """Process one message: log, call a helper that logs, maybe fail."""
        logging.getLogger("consumer").info("handling %s", message.key)
        self.handled.append((message.key, request_id, get_request_id()))
        self.contexts.append(contextvars.copy_context())
        charge(message.key)
        if message.key == "fails":
            raise HandlerError(message.key)

    def run(self) -> None:
        """Poll until ``STOP``; each message in a ``bound_request_id`` block."""
        while True:
            self.between.append(get_request_id())
            message = self.inbox.get(timeout=TIMEOUT)
            if message is STOP:
                break
            header = message.headers.get("x-request-id")
            try:
                with bound_request_id(header) as request_id:
                    self.handle(message, request_id)
            except HandlerError as exc:
                # The block has ended: what the loop logs carries no id.
                self.failures.append(exc)
                logging.getLogger("consumer").warning("skipped %s", message.key)
        self.between.append(get_request_id())


def charge(key: str) -> None:
    """Library code the handler calls; its log line gets the id too."""
    logging.getLogger("consumer.billing").info("charged %s", key)


def consume(messages: list[Message]) -> Consumer:
    """Run a consumer over *messages*, then ``STOP``, in a thread; bounded."""
    consumer = Consumer()
    for message in [*messages, STOP]:
        consumer.inbox.put(message)
    thread = threading.Thread(target=consumer.run, name="consumer")
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the consumer did not finish"
    return consumer


def test_each_message_is_handled_under_its_own_checked_id(logged: LogCapture) -> None:
    """Valid header bytes are kept, missing or hostile ones replaced by new ids."""
    messages = [
        Message(name, {} if value is None else {"x-request-id": value})
        for name, value, _ in HEADERS
    ]
    consumer = consume(messages)

    assert [key for key, _, _ in consumer.handled] == [name for name, _, _ in HEADERS]
    ids = []
    for (name, value, kept), (_, request_id, seen) in zip(
        HEADERS, consumer.handled, strict=True
    ):
        assert seen == request_id, name
        if kept:
            assert value is not None
            assert request_id == value.decode("ascii"), name
        else:
            assert HEX32.fullmatch(request_id), (name, request_id)
        ids.append(request_id)
    assert len(set(ids)) == len(ids)
    assert consumer.failures == []
    # Each message's log lines carry its own id, in order.
    assert logged.lines("consumer", "consumer.billing") == [
        line
        for (name, _, _), request_id in zip(HEADERS, ids, strict=True)
        for line in (
            f"{request_id} consumer INFO handling {name}",
            f"{request_id} consumer.billing INFO charged {name}",
        )
    ]


def test_hostile_header_bytes_are_written_nowhere(logged: LogCapture) -> None:
    """No log record and no logged line holds any part of a rejected value."""
    hostile = [(name, value) for name, value, kept in HEADERS if not kept and value]
    consumer = consume(
        [Message(name, {"x-request-id": value}) for name, value in hostile]
    )
    assert len(consumer.handled) == len(hostile)
    # The toolkit reported each rejection, on its own logger, without the value.
    assert len(logged.lines("correlation")) == len(hostile)
    output = logged.text()
    assert MARKER not in output
    assert "\x1b" not in output
    assert "\x00" not in output
    assert "forged" not in output
    assert "Injected" not in output
    assert len(output.splitlines()) == len(hostile) * 3
    for text in logged.texts():
        assert MARKER not in text
    for _, request_id, _ in consumer.handled:
        assert MARKER not in request_id


def test_consumer_thread_holds_no_id_between_messages_and_after(
    logged: LogCapture,
) -> None:
    """Between messages and after the loop the thread has no id; copies read None."""
    consumer = consume(
        [
            Message("first", {"x-request-id": b"msg-1"}),
            Message("fails", {"x-request-id": b"msg-2"}),
            Message("no-header"),
            Message("last", {"x-request-id": b"msg-1"}),
        ]
    )
    assert consumer.between == [None] * 6  # five polls, then the end
    for context in consumer.contexts:
        assert context.run(get_request_id) is None
    (failure,) = consumer.failures
    if sys.version_info >= (3, 11):
        assert failure.__notes__ == ["request_id=msg-2"]
    handled = [(key, request_id) for key, request_id, _ in consumer.handled]
    generated = handled[2][1]
    assert handled == [
        ("first", "msg-1"),
        ("fails", "msg-2"),
        ("no-header", generated),
        ("last", "msg-1"),
    ]
    assert HEX32.fullmatch(generated)
    # The loop's own line after the failed message is outside any block.
    assert "- consumer WARNING skipped fails" in logged.lines("consumer")
    assert f"{generated} consumer INFO handling no-header" in logged.lines()


# --- a CLI or cron job -----------------------------------------------------------


def test_decorated_job_gets_a_new_id_on_every_run(logged: LogCapture) -> None:
    """Each run of a @bound_request_id() job logs under a new id; None after."""
    logger = logging.getLogger("cron")

    @bound_request_id()
    def nightly(run: int) -> str | None:
        logger.info("run %d", run)
        charge(f"run-{run}")
        return get_request_id()

    ids = []
    for run in range(3):
        request_id = nightly(run)
        assert get_request_id() is None
        assert request_id is not None
        assert HEX32.fullmatch(request_id)
        ids.append(request_id)
    logger.info("all runs done")

    assert len(set(ids)) == 3
    assert logged.lines("cron", "consumer.billing") == [
        *(
            line
            for run, request_id in enumerate(ids)
            for line in (
                f"{request_id} cron INFO run {run}",
                f"{request_id} consumer.billing INFO charged run-{run}",
            )
        ),
        "- cron INFO all runs done",
    ]


def test_decorated_async_job_gets_a_new_id_on_every_run(logged: LogCapture) -> None:
    """An async @bound_request_id() main: its tasks log its id; each run a new one."""
    logger = logging.getLogger("cron")

    async def step(name: str) -> str | None:
        await asyncio.sleep(0)
        logger.info("step %s", name)
        return get_request_id()

    @bound_request_id()
    async def main() -> list[str | None]:
        own = get_request_id()
        steps = await asyncio.gather(step("a"), step("b"))
        return [own, *steps]

    runs = [asyncio.run(main()) for _ in range(2)]
    assert get_request_id() is None
    ids = []
    for seen in runs:
        request_id = seen[0]
        assert request_id is not None
        assert HEX32.fullmatch(request_id)
        assert seen == [request_id] * 3
        ids.append(request_id)
    assert ids[0] != ids[1]
    assert logged.lines("cron") == [
        f"{request_id} cron INFO step {name}" for request_id in ids for name in "ab"
    ]
