"""Celery on real brokers: the id from the publisher reaches every task.

Each test runs on every broker ``CORRELATION_TEST_BROKERS`` names and every
way of running a task there (``celery_brokers.MODES``): an eager call, a
worker in this process, and ``celery worker`` processes with the prefork,
solo and threads pools. The probe tasks (``celery_app``) return the id they
ran under; the worker processes log with ``RequestIdFilter`` to a file.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from celery import chain, chord, group
from celery_app import LOG_FORMAT, copied_contexts
from celery_brokers import Runner, Runners, modes_for, requested_brokers
from hostile import MARKER, needles, select
from log_testing import LogCapture, capture_logs
from servers import wait_until

from adapters.celery import DEFAULT_HEADER_KEY
from correlation import bound_request_id, get_request_id

#: Seconds to wait for a task's result.
TIMEOUT = 30

#: Every (broker, way of running) pair this run covers.
PAIRS = [(broker, mode) for broker in requested_brokers() for mode in modes_for(broker)]


def runs(*modes: str) -> list[Any]:
    """The pairs whose way of running is one of *modes* (all when none given)."""
    return [
        pytest.param(pair, id="-".join(pair))
        for pair in PAIRS
        if not modes or pair[1] in modes
    ]


RUNS = runs()
QUEUED_RUNS = runs("in-process", "prefork", "solo", "threads")
IN_PROCESS_RUNS = runs("in-process")
EAGER_RUNS = runs("eager")

GENERATED = re.compile(r"[0-9a-f]{32}")

#: Hostile header values: what HTTP clients send at worst, and what no header
#: holds (a message header can hold any JSON value).
HOSTILE_VALUES = [
    *[
        pytest.param(row.joined(), id=row.name)
        for row in select()
        if row.name in ("crlf", "lf-log-line", "ansi-colour", "utf-8", "1025-chars")
    ],
    pytest.param("EVIL two words", id="space"),
    pytest.param("EVIL,other", id="comma"),
    pytest.param(12345, id="int"),
    pytest.param(["EVIL"], id="list"),
    pytest.param({"EVIL": "EVIL"}, id="dict"),
    pytest.param(True, id="bool"),
]


@pytest.fixture
def runner(request: pytest.FixtureRequest, celery_runners: Runners) -> Runner:
    broker, mode = request.param
    return celery_runners.get(broker, mode)


@pytest.fixture
def test_logs() -> Iterator[LogCapture]:
    """Records logged in this process meanwhile (eager and in-process runs)."""
    with capture_logs("", level=logging.INFO, fmt=LOG_FORMAT) as capture:
        yield capture


def log_lines(runner: Runner, capture: LogCapture) -> list[str]:
    """What the runner's worker logged: its log file, or this process's records."""
    return capture.lines() if runner.in_test_process else runner.log_lines()


def lines_once_done(runner: Runner, capture: LogCapture, task_id: str) -> list[str]:
    """The log lines, once the worker has logged that task *task_id* succeeded.

    Celery stores a task's result before it logs the success, so a result can
    arrive first (seen with the threads pool and Redis's push of results).
    """
    done = f"[{task_id}] succeeded"

    def logged() -> list[str] | None:
        lines = log_lines(runner, capture)
        return lines if any(done in line for line in lines) else None

    found = wait_until(logged, timeout=TIMEOUT, what=f"the log line {done!r}")
    assert found is not None  # wait_until returns only a truthy value
    return found


def get(result: Any) -> Any:
    # A result backend without push (the file one) is polled; every 0.5 s
    # unless told otherwise.
    return result.get(timeout=TIMEOUT, interval=0.01)


def assert_generated(value: object) -> None:
    assert isinstance(value, str)
    assert GENERATED.fullmatch(value), value


# --- publish inside and outside a unit of work ------------------------------------


@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_a_task_published_inside_a_unit_of_work_runs_under_its_id(
    runner: Runner,
) -> None:
    with bound_request_id() as request_id:
        result = runner.task("whoami").delay()
    assert get(result) == request_id
    assert get_request_id() is None


@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_tasks_published_outside_get_a_fresh_id_each(runner: Runner) -> None:
    whoami = runner.task("whoami")
    seen = [get(whoami.delay()) for _ in range(3)]
    for value in seen:
        assert_generated(value)
    assert len(set(seen)) == 3


@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_an_explicit_header_is_kept(runner: Runner) -> None:
    with bound_request_id("outer-id"):
        result = runner.task("whoami").apply_async(
            headers={DEFAULT_HEADER_KEY: "explicit-id"}
        )
    assert get(result) == "explicit-id"


# --- what the first task publishes keeps its id -----------------------------------


@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_chains_groups_and_chords_keep_the_first_id(runner: Runner) -> None:
    trail, whoami, collect = (runner.task(n) for n in ("trail", "whoami", "collect"))
    with bound_request_id() as request_id:
        chained = chain(trail.s(), trail.s(), trail.s()).apply_async()
        grouped = group(whoami.s(), whoami.s(), whoami.s()).apply_async()
        chorded = chord([whoami.s(), whoami.s()], collect.s()).apply_async()
    assert get(chained) == [request_id] * 3
    assert get(grouped) == [request_id] * 3
    assert get(chorded) == [request_id, [request_id, request_id]]


@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_a_retry_keeps_the_id(runner: Runner) -> None:
    with bound_request_id() as request_id:
        result = runner.task("retried").delay()
    assert get(result) == request_id


@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_a_task_published_from_a_task_keeps_the_id(runner: Runner) -> None:
    with bound_request_id() as request_id:
        result = runner.task("spawn").delay()
    child = runner.app.AsyncResult(get(result))
    assert get(child) == request_id


# --- hostile header values --------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("runner", RUNS, indirect=True)
def test_a_hostile_header_value_gets_a_generated_id_and_is_logged_nowhere(
    runner: Runner, value: object, test_logs: LogCapture
) -> None:
    marker = f"EVIL{id(value):x}"
    value = _with_marker(value, marker)
    result = runner.task("whoami").apply_async(headers={DEFAULT_HEADER_KEY: value})
    seen = get(result)
    assert_generated(seen)
    lines = lines_once_done(runner, test_logs, str(result.id))
    # The task's own line names the id it was given instead.
    assert any(f"|{seen}|probe|probe.whoami runs" in line for line in lines)
    text = "\n".join([*lines, *test_logs.texts()])
    forms = needles([value.encode("utf-8")], marker) if isinstance(value, str) else {}
    for form in {marker, *forms}:
        assert form not in text


def _with_marker(value: object, marker: str) -> object:
    """*value* with a marker of this test's own in place of ``MARKER``."""
    if isinstance(value, str):
        return value.replace(MARKER, marker)
    if isinstance(value, list):
        return [_with_marker(item, marker) for item in value]
    if isinstance(value, dict):
        return {
            str(_with_marker(key, marker)): _with_marker(item, marker)
            for key, item in value.items()
        }
    return value


# --- after a task -----------------------------------------------------------------


@pytest.mark.parametrize("runner", QUEUED_RUNS, indirect=True)
def test_the_worker_logs_the_next_task_without_the_previous_id(
    runner: Runner, test_logs: LogCapture
) -> None:
    """The worker's line for the next task, logged before it starts, has no id."""
    whoami = runner.task("whoami")
    with bound_request_id() as first_id:
        assert get(whoami.delay()) == first_id
    second = whoami.delay()
    second_id = get(second)
    lines = lines_once_done(runner, test_logs, str(second.id))
    received = [line for line in lines if f"[{second.id}] received" in line]
    assert len(received) == 1, lines
    assert received[0].split("|")[1] == "-"
    succeeded = [line for line in lines if f"[{second.id}] succeeded" in line]
    assert len(succeeded) == 1, lines
    assert succeeded[0].split("|")[1] == second_id
    assert not any(first_id in line for line in lines if second.id in line)


@pytest.mark.parametrize("runner", IN_PROCESS_RUNS, indirect=True)
def test_context_copies_made_during_a_task_hold_no_id_after_it(runner: Runner) -> None:
    """A copy made in the task reads None once it is over.

    That the worker thread itself holds no id afterwards shows in the worker's
    line for the next task, logged in that same thread before the task runs
    (``test_the_worker_logs_the_next_task_without_the_previous_id``).
    """
    with bound_request_id() as request_id:
        result = runner.task("copy_context").delay()
    assert get(result) == request_id
    copied = copied_contexts.pop(str(result.id))
    # The result is stored before the task's run ends (task_postrun), so it
    # may arrive first: wait for the end, which must come.
    wait_until(
        lambda: copied.run(get_request_id) is None,
        timeout=TIMEOUT,
        what="the end of the task's id in the copy",
    )


# --- eager calls ------------------------------------------------------------------


@pytest.mark.parametrize("runner", EAGER_RUNS, indirect=True)
def test_eager_without_the_header_runs_under_the_callers_id_and_keeps_it(
    runner: Runner,
) -> None:
    whoami = runner.task("whoami")
    with bound_request_id() as request_id:
        assert whoami.apply().get() == request_id
        assert whoami.delay().get() == request_id  # task_always_eager
        assert get_request_id() == request_id
        # The caller's id is still live, in the caller's context and copies.
        assert contextvars.copy_context().run(get_request_id) == request_id


@pytest.mark.parametrize("runner", EAGER_RUNS, indirect=True)
def test_eager_with_the_header_runs_under_it_then_restores_the_callers(
    runner: Runner,
) -> None:
    copy_context = runner.task("copy_context")
    with bound_request_id() as request_id:
        result = copy_context.apply(headers={DEFAULT_HEADER_KEY: "explicit-id"})
        assert result.get() == "explicit-id"
        assert get_request_id() == request_id
        # A copy made during the task reads None once the task is over.
        assert copied_contexts.pop(str(result.id)).run(get_request_id) is None


@pytest.mark.parametrize("headers", [None, {DEFAULT_HEADER_KEY: "explicit-id"}])
@pytest.mark.parametrize("runner", EAGER_RUNS, indirect=True)
def test_eager_task_that_raises_leaves_the_callers_id_intact(
    runner: Runner, headers: dict[str, str] | None
) -> None:
    fails = runner.task("fails")
    with bound_request_id() as request_id:
        expected = request_id if headers is None else "explicit-id"
        failed = fails.apply(headers=headers)
        assert isinstance(failed.result, LookupError)
        assert str(failed.result) == f"probe.fails ran under {expected}"
        assert get_request_id() == request_id
        with pytest.raises(LookupError, match=f"ran under {expected}$"):
            fails.apply(headers=headers, throw=True)
        assert get_request_id() == request_id


@pytest.mark.parametrize("runner", EAGER_RUNS, indirect=True)
def test_eager_outside_a_unit_of_work_gets_a_fresh_id_and_leaves_none(
    runner: Runner,
) -> None:
    seen = runner.task("whoami").apply().get()
    assert_generated(seen)
    assert get_request_id() is None
