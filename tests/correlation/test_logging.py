"""RequestIdFilter: the id on every record, '-' outside a request, nothing dropped."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import correlation
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
