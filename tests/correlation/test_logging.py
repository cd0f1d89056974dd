"""RequestIdFilter: the id on every record, its default outside, nothing dropped."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import correlation
from correlation import bound_request_id
from correlation._context import begin, end
from correlation.logging import RequestIdFilter

# Where the imported package lives, so a subprocess imports the same code.
IMPORT_ROOT = str(Path(correlation.__file__).resolve().parent.parent)

LEVELS = [
    pytest.param(logging.DEBUG, id="debug"),
    pytest.param(logging.INFO, id="info"),
    pytest.param(logging.WARNING, id="warning"),
    pytest.param(logging.ERROR, id="error"),
    pytest.param(logging.CRITICAL, id="critical"),
    pytest.param(5, id="custom-level-5"),
]


def _record(level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("test", level, __file__, 1, "hello", None, None)
    record.__dict__.update(extra)
    return record


def _run_python(code: str) -> str:
    """Run *code* in a fresh interpreter that imports this checkout's packages."""
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\nsys.path.insert(0, {IMPORT_ROOT!r})\n"
            + textwrap.dedent(code),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture
def logger_and_stream() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A fresh logger whose one handler has the filter and a request-id format."""
    logger = logging.getLogger(f"tests.correlation.logging.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(request_id)s %(message)s"))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_sets_request_id_inside_a_request() -> None:
    """Inside a bound request, record.request_id is the id."""
    record = _record()
    binding = begin("req-1")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        end(binding)
    assert record.__dict__["request_id"] == "req-1"


def test_sets_dash_outside_a_request() -> None:
    """Outside any request, record.request_id is '-'."""
    record = _record()
    assert RequestIdFilter().filter(record)
    assert record.__dict__["request_id"] == "-"


@pytest.mark.parametrize(
    "bound", [pytest.param(True, id="in-request"), pytest.param(False, id="outside")]
)
def test_keeps_request_id_passed_in_extra(bound: bool) -> None:
    """A request_id passed through extra= is kept, inside a request or not."""
    record = _record(request_id="x")
    binding = begin("req-1") if bound else None
    try:
        assert RequestIdFilter().filter(record)
    finally:
        if binding is not None:
            end(binding)
    assert record.__dict__["request_id"] == "x"


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "bound", [pytest.param(True, id="in-request"), pytest.param(False, id="outside")]
)
def test_never_drops_a_record(level: int, bound: bool) -> None:
    """filter() returns a truthy value for records of every level."""
    binding = begin("req-1") if bound else None
    try:
        assert RequestIdFilter().filter(_record(level))
        assert RequestIdFilter().filter(_record(level, request_id="x"))
    finally:
        if binding is not None:
            end(binding)


def test_handler_format_inside_and_outside_a_request(
    logger_and_stream: tuple[logging.Logger, io.StringIO],
) -> None:
    """'%(request_id)s %(message)s' renders the id, or '-' outside a request."""
    logger, stream = logger_and_stream
    logger.info("before")
    binding = begin("req-42")
    try:
        logger.debug("during")
        logger.error("kept", extra={"request_id": "explicit"})
    finally:
        end(binding)
    logger.critical("after")
    assert stream.getvalue() == "- before\nreq-42 during\nexplicit kept\n- after\n"


def test_handler_filter_covers_child_loggers(
    logger_and_stream: tuple[logging.Logger, io.StringIO],
) -> None:
    """On a handler, the filter also stamps records propagated from child loggers."""
    logger, stream = logger_and_stream
    child = logger.getChild("child")
    binding = begin("req-child")
    try:
        child.warning("from child")
    finally:
        end(binding)
    assert stream.getvalue() == "req-child from child\n"


def test_importable_after_plain_import_correlation() -> None:
    """After 'import correlation', correlation.logging.RequestIdFilter is reachable."""
    out = _run_python(
        """
        import logging
        import correlation
        cls = correlation.logging.RequestIdFilter
        print(issubclass(cls, logging.Filter), cls.__module__)
        """
    )
    assert out == "True correlation.logging\n"


def test_works_with_dict_config() -> None:
    """dictConfig builds the filter from '()': 'correlation.logging.RequestIdFilter'."""
    out = _run_python(
        """
        import logging
        import logging.config
        import sys

        logging.config.dictConfig({
            "version": 1,
            "filters": {
                "request_id": {"()": "correlation.logging.RequestIdFilter"},
            },
            "formatters": {
                "plain": {"format": "%(request_id)s %(levelname)s %(message)s"},
            },
            "handlers": {
                "out": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "plain",
                    "filters": ["request_id"],
                },
            },
            "root": {"level": "DEBUG", "handlers": ["out"]},
        })

        from correlation._context import begin, end

        log = logging.getLogger("app")
        log.info("outside")
        binding = begin("req-dict")
        try:
            log.debug("inside")
        finally:
            end(binding)
        """
    )
    assert out == "- INFO outside\nreq-dict DEBUG inside\n"


# --- default=: what a record outside a unit of work shows --------------------


@pytest.mark.parametrize(
    "default",
    [
        pytest.param("-", id="dash"),
        pytest.param("", id="empty"),
        pytest.param("none", id="none-text"),
        pytest.param(None, id="None"),
    ],
)
def test_default_is_what_a_record_outside_shows(default: str | None) -> None:
    """Outside a unit of work, record.request_id is *default*, set, not left out."""
    record = _record()
    assert RequestIdFilter(default=default).filter(record)
    assert "request_id" in record.__dict__
    assert record.__dict__["request_id"] == default


def test_default_without_the_argument_is_a_dash() -> None:
    """RequestIdFilter() and RequestIdFilter(default="-") give the same lines."""
    lines = []
    for made in (RequestIdFilter(), RequestIdFilter(default="-")):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(made)
        handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
        handler.handle(_record())
        lines.append(stream.getvalue())
    assert lines == ["[-] hello\n", "[-] hello\n"]


@pytest.mark.parametrize(
    "default",
    [
        pytest.param("", id="empty"),
        pytest.param("none", id="none-text"),
        pytest.param(None, id="None"),
    ],
)
def test_default_never_replaces_an_id_or_extra(default: str | None) -> None:
    """Inside a unit of work the id wins over *default*; extra= wins over both."""
    inside, given_inside = _record(), _record(request_id="x")
    with bound_request_id("req-default"):
        for record in (inside, given_inside):
            assert RequestIdFilter(default=default).filter(record)
    given_outside = _record(request_id="y")
    assert RequestIdFilter(default=default).filter(given_outside)
    assert inside.__dict__["request_id"] == "req-default"
    assert given_inside.__dict__["request_id"] == "x"
    assert given_outside.__dict__["request_id"] == "y"


def test_default_none_is_null_for_a_structured_formatter() -> None:
    """With default=None a JSON formatter writes null; %-style text writes None."""

    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps(
                {
                    "message": record.getMessage(),
                    "request_id": record.__dict__["request_id"],
                }
            )

    json_out, text_out = io.StringIO(), io.StringIO()
    json_handler = logging.StreamHandler(json_out)
    json_handler.setFormatter(JsonFormatter())
    text_handler = logging.StreamHandler(text_out)
    text_handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
    for handler in (json_handler, text_handler):
        handler.addFilter(RequestIdFilter(default=None))
        handler.handle(_record())
        with bound_request_id("req-json"):
            handler.handle(_record())
    assert json_out.getvalue().splitlines() == [
        '{"message": "hello", "request_id": null}',
        '{"message": "hello", "request_id": "req-json"}',
    ]
    assert text_out.getvalue() == "[None] hello\n[req-json] hello\n"


@pytest.mark.parametrize(
    "default",
    [
        pytest.param(0, id="int"),
        pytest.param(b"-", id="bytes"),
        pytest.param(1.5, id="float"),
        pytest.param(False, id="bool"),
        pytest.param(["-"], id="list"),
        pytest.param(object(), id="object"),
    ],
)
def test_default_of_another_type_is_a_type_error(default: object) -> None:
    """A default that is neither a str nor None raises TypeError naming it."""
    with pytest.raises(TypeError, match=r"^default must be a str or None, got "):
        RequestIdFilter(default=default)  # type: ignore[arg-type]


def test_default_is_keyword_only() -> None:
    """A positional argument is refused, not taken as logging.Filter's name."""
    with pytest.raises(TypeError):
        RequestIdFilter("none")  # type: ignore[call-arg]


def test_first_filter_sets_the_value_later_handlers_keep() -> None:
    """Two handlers of one record: the second keeps what the first filter set.

    A record is one object for every handler that writes it, and a filter
    keeps a ``request_id`` that is already there (as one passed with
    ``extra=``). So, outside a unit of work, the first handler's default is
    the one every later handler shows.
    """
    logger = logging.getLogger(f"tests.correlation.logging.{uuid.uuid4().hex}")
    logger.propagate = False
    streams = []
    for default in ("-", None):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(RequestIdFilter(default=default))
        handler.setFormatter(logging.Formatter("%(request_id)r"))
        logger.addHandler(handler)
        streams.append(stream)
    try:
        logger.warning("outside")
        with bound_request_id("req-both"):
            logger.warning("inside")
    finally:
        for added in list(logger.handlers):
            logger.removeHandler(added)
            added.close()
    assert [stream.getvalue() for stream in streams] == [
        "'-'\n'req-both'\n",
        "'-'\n'req-both'\n",
    ]


def test_dict_config_passes_default() -> None:
    """dictConfig passes "default" to the filter: a text, and JSON's null."""
    out = _run_python(
        """
        import json
        import logging
        import logging.config

        logging.config.dictConfig(json.loads('''{
            "version": 1,
            "filters": {
                "text": {
                    "()": "correlation.logging.RequestIdFilter",
                    "default": "none"
                },
                "null": {
                    "()": "correlation.logging.RequestIdFilter",
                    "default": null
                }
            },
            "formatters": {"plain": {"format": "%(request_id)r %(message)s"}},
            "handlers": {
                "text": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "plain",
                    "filters": ["text"]
                },
                "null": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "plain",
                    "filters": ["null"]
                }
            },
            "loggers": {
                "text": {"level": "INFO", "handlers": ["text"]},
                "null": {"level": "INFO", "handlers": ["null"]}
            }
        }'''))

        from correlation import bound_request_id

        for name in ("text", "null"):
            logging.getLogger(name).info("outside")
            with bound_request_id("req-dict"):
                logging.getLogger(name).info("inside")
        """
    )
    assert out.splitlines() == [
        "'none' outside",
        "'req-dict' inside",
        "None outside",
        "'req-dict' inside",
    ]


def test_dict_config_reports_a_bad_default() -> None:
    """dictConfig fails on a default of another type, the TypeError as cause."""
    out = _run_python(
        """
        import logging.config

        try:
            logging.config.dictConfig({
                "version": 1,
                "filters": {
                    "request_id": {
                        "()": "correlation.logging.RequestIdFilter",
                        "default": 0,
                    },
                },
            })
        except ValueError as error:
            print(type(error.__cause__).__name__, error.__cause__)
        """
    )
    assert out == "TypeError default must be a str or None, got 0\n"


# --- behind a QueueHandler ---------------------------------------------------


@contextmanager
def _queued(
    *, on_queue_handler: bool, on_target: bool
) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger feeding a QueueHandler, its listener thread writing to a stream.

    The filter goes on the QueueHandler (run by the thread that logs), on the
    handler behind the listener (run by the listener's thread), or both.
    """
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    queue_handler = logging.handlers.QueueHandler(records)
    if on_queue_handler:
        queue_handler.addFilter(RequestIdFilter())
    if on_target:
        target.addFilter(RequestIdFilter())
    listener = logging.handlers.QueueListener(records, target)
    logger = logging.getLogger(f"tests.correlation.logging.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(queue_handler)
    listener.start()
    try:
        yield logger, stream
    finally:
        listener.stop()  # writes what is queued, then joins the thread
        logger.removeHandler(queue_handler)
        target.close()


@pytest.mark.parametrize(
    "on_target",
    [pytest.param(False, id="queue-handler"), pytest.param(True, id="both")],
)
def test_queue_handler_filter_carries_the_id_to_the_listener(on_target: bool) -> None:
    """On the QueueHandler the filter runs where the id is current.

    The record that reaches the handler behind the listener (a copy, on
    Python 3.12+, made by ``QueueHandler.prepare``) keeps the attribute, and a
    filter there too keeps it. A traceback still reaches the line.
    """
    with _queued(on_queue_handler=True, on_target=on_target) as (logger, stream):
        logger.info("before")
        with bound_request_id("q-1"):
            logger.info("inside")
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("failed")
        logger.info("after")
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["[-] before", "[q-1] inside", "[q-1] failed"]
    assert lines[3] == "Traceback (most recent call last):"
    assert "RuntimeError: boom" in lines
    assert lines[-1] == "[-] after"


def test_filter_behind_the_listener_sees_no_id() -> None:
    """Only behind the listener, the filter runs in the listener's thread: '-'.

    No id is current in that thread, so even a record logged inside a unit of
    work shows the default there.
    """
    with (
        _queued(on_queue_handler=False, on_target=True) as (logger, stream),
        bound_request_id("q-2"),
    ):
        logger.info("inside")
    assert stream.getvalue() == "[-] inside\n"


def test_queue_handler_keeps_each_threads_id() -> None:
    """Threads logging at once through one QueueHandler: each line, its own id."""
    threads_count, per_thread = 8, 25
    start = threading.Barrier(threads_count, timeout=10)

    def work(number: int) -> None:
        with bound_request_id(f"t-{number}"):
            start.wait()
            for index in range(per_thread):
                logger.info("%d %d", number, index)

    with _queued(on_queue_handler=True, on_target=False) as (logger, stream):
        threads = [
            threading.Thread(target=work, args=(number,))
            for number in range(threads_count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in threads)
    lines = stream.getvalue().splitlines()
    assert len(lines) == threads_count * per_thread
    for line in lines:
        request_id, number, _ = line.split(" ")
        assert request_id == f"[t-{number}]", line


def test_dict_config_queue_handler_from_python_3_12() -> None:
    """Python 3.12+ dictConfig builds a QueueHandler and its listener; older refuse.

    Listed in the QueueHandler entry's "filters", the filter runs where the
    record is logged, so the handler behind the listener writes the id.
    """
    out = _run_python(
        """
        import logging
        import logging.config

        try:
            logging.config.dictConfig({
                "version": 1,
                "filters": {
                    "request_id": {"()": "correlation.logging.RequestIdFilter"},
                },
                "formatters": {"plain": {"format": "[%(request_id)s] %(message)s"}},
                "handlers": {
                    "out": {
                        "class": "logging.StreamHandler",
                        "stream": "ext://sys.stdout",
                        "formatter": "plain",
                    },
                    "queue": {
                        "class": "logging.handlers.QueueHandler",
                        "handlers": ["out"],
                        "filters": ["request_id"],
                    },
                },
                "root": {"handlers": ["queue"], "level": "INFO"},
            })
        except ValueError as error:
            print("refused:", type(error.__cause__).__name__)
            raise SystemExit(0)

        from correlation import bound_request_id

        listener = logging.getHandlerByName("queue").listener
        listener.start()
        try:
            logging.getLogger("app").info("outside")
            with bound_request_id("q-dict"):
                logging.getLogger("app").info("inside")
        finally:
            listener.stop()
        """
    )
    if sys.version_info >= (3, 12):
        assert out == "[-] outside\n[q-dict] inside\n"
    else:
        assert out == "refused: TypeError\n"
