"""correlation.threads: carry the id into threads and work that outlives it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from correlation import bound_request_id, get_request_id
from correlation.threads import Thread, ThreadPoolExecutor, carry

#: Seconds any wait in these tests may take.
TIMEOUT = 10

_OTHER: contextvars.ContextVar[str] = contextvars.ContextVar("test.other", default="")


# --- carry -------------------------------------------------------------------


def test_carry_captures_the_id_when_called() -> None:
    """The id current at carry() time is the one the call sees, later, elsewhere."""
    with bound_request_id("captured"):
        carried = carry(get_request_id)
    with bound_request_id("later"):
        assert carried() == "captured"
    assert carried() == "captured"
    assert get_request_id() is None


def test_carry_captures_other_context_variables() -> None:
    """Other variables of the captured context travel with the id."""
    token = _OTHER.set("tenant-7")
    try:
        carried = carry(_OTHER.get)
    finally:
        _OTHER.reset(token)
    assert carried() == "tenant-7"


def test_each_call_runs_in_a_fresh_copy() -> None:
    """A variable one call sets is not seen by the next call."""

    def set_and_read() -> str:
        before = _OTHER.get()
        _OTHER.set("set-by-a-call")
        return before

    with bound_request_id("fresh"):
        carried = carry(set_and_read)
    assert carried() == ""
    assert carried() == ""
    assert _OTHER.get() == ""


def test_the_id_is_bound_for_the_call_only() -> None:
    """A context copied inside a carried call reads None once the call returned."""
    with bound_request_id("per-call"):
        carried = carry(contextvars.copy_context)
    copied = carried()
    assert copied.run(get_request_id) is None


def test_the_id_ends_when_the_call_raises() -> None:
    """A carried call that raises ends its binding; the error propagates."""
    copies: list[contextvars.Context] = []

    def fail() -> None:
        copies.append(contextvars.copy_context())
        raise KeyError("k")

    with bound_request_id("raising"):
        carried = carry(fail)
    with pytest.raises(KeyError):
        carried()
    assert copies[0].run(get_request_id) is None


def test_one_carried_callable_runs_fifty_times_at_once() -> None:
    """The same carried callable, run by 50 threads together, sees the id in each."""
    count = 50
    barrier = threading.Barrier(count, timeout=TIMEOUT)

    def work() -> str | None:
        barrier.wait()
        return get_request_id()

    with bound_request_id("shared"):
        carried = carry(work)
    results: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(carried())) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert results == ["shared"] * count


def test_fire_and_forget_after_the_unit_ended() -> None:
    """Carried work that runs after its unit ended sees the id; its copies end."""
    copies: list[contextvars.Context] = []

    def late_work() -> str | None:
        copies.append(contextvars.copy_context())
        return get_request_id()

    with bound_request_id("finished-unit"):
        carried = carry(late_work)
        inside = contextvars.copy_context()
    assert inside.run(get_request_id) is None  # the unit has ended
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(carried).result(TIMEOUT) == "finished-unit"
    assert copies[0].run(get_request_id) is None


def test_outside_a_unit_of_work_nothing_is_bound() -> None:
    """Carried outside any unit of work, the function runs with no id."""
    carried = carry(get_request_id)
    with bound_request_id("caller"):
        assert carried() is None


def test_carry_keeps_the_signature_and_metadata() -> None:
    """functools.wraps: name, docstring and signature are the function's."""

    def send_report(order: int, *, urgent: bool = False) -> str:
        """Send it."""
        return f"{order}{urgent}"

    carried = carry(send_report)
    assert carried.__name__ == "send_report"
    assert carried.__doc__ == "Send it."
    assert inspect.signature(carried) == inspect.signature(send_report)
    assert carried(3, urgent=True) == "3True"


async def _coroutine_function() -> None:
    return None


def _generator_function() -> Iterator[int]:
    yield 1


async def _async_generator_function() -> AsyncIterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("value", "words"),
    [
        pytest.param(_coroutine_function, "coroutine", id="coroutine-function"),
        pytest.param(_generator_function, "generator", id="generator-function"),
        pytest.param(_async_generator_function, "generator", id="async-generator"),
        pytest.param(42, "callable", id="not-callable"),
    ],
)
def test_carry_refuses_what_it_cannot_carry(value: Any, words: str) -> None:
    """Coroutine and generator functions and non-callables raise TypeError."""
    with pytest.raises(TypeError, match=words):
        carry(value)


# --- ThreadPoolExecutor --------------------------------------------------------


def test_submit_and_map_carry() -> None:
    """The toolkit's executor carries the submitter's id into submit and map."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        with bound_request_id("submitted"):
            future = pool.submit(get_request_id)
            mapped = pool.map(lambda _: get_request_id(), range(3), timeout=TIMEOUT)
        assert future.result(TIMEOUT) == "submitted"
        assert list(mapped) == ["submitted"] * 3
        assert pool.submit(get_request_id).result(TIMEOUT) is None


@pytest.mark.parametrize(
    "executor_type",
    [
        pytest.param(concurrent.futures.ThreadPoolExecutor, id="stock-executor"),
        pytest.param(ThreadPoolExecutor, id="toolkit-executor"),
    ],
)
def test_a_worker_thread_never_keeps_an_id(
    executor_type: type[concurrent.futures.ThreadPoolExecutor],
) -> None:
    """Carried and plain tasks alternating on one worker: the plain ones see None."""
    seen: list[tuple[str, str | None]] = []
    threads: set[int] = set()

    def record(kind: str) -> None:
        threads.add(threading.get_ident())
        seen.append((kind, get_request_id()))

    with executor_type(max_workers=1) as pool:
        for number in range(5):
            with bound_request_id(f"unit-{number}"):
                pool.submit(carry(record), "carried").result(TIMEOUT)
            # Submitted outside any unit: nothing to carry.
            pool.submit(record, "plain").result(TIMEOUT)
    assert len(threads) == 1
    assert seen == [
        pair
        for number in range(5)
        for pair in [("carried", f"unit-{number}"), ("plain", None)]
    ]


def test_plain_submit_on_a_stock_executor_sees_no_id() -> None:
    """Python's own executor does not carry: the reason for the helpers."""
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool,
        bound_request_id("not-carried"),
    ):
        assert pool.submit(get_request_id).result(TIMEOUT) is None


def test_default_executor_makes_run_in_executor_carry() -> None:
    """With the toolkit's executor as the loop's default, run_in_executor carries."""

    async def main() -> tuple[str | None, str | None, str | None]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=2))
        with bound_request_id("in-executor"):
            carried = await asyncio.wait_for(
                loop.run_in_executor(None, get_request_id), TIMEOUT
            )
            to_thread = await asyncio.wait_for(
                asyncio.to_thread(get_request_id), TIMEOUT
            )
        outside = await asyncio.wait_for(
            loop.run_in_executor(None, get_request_id), TIMEOUT
        )
        return carried, to_thread, outside

    assert asyncio.run(main()) == ("in-executor", "in-executor", None)


# --- Thread ------------------------------------------------------------------------


def _run(thread: threading.Thread) -> None:
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_thread_captures_at_start_not_at_construction() -> None:
    """The id current when start() is called is the one the target sees."""
    seen: list[str | None] = []
    thread = Thread(target=lambda: seen.append(get_request_id()))
    with bound_request_id("at-start"):
        _run(thread)
    assert seen == ["at-start"]


def test_thread_subclass_overriding_run_is_carried() -> None:
    """A subclass's own run() is carried too."""

    class Worker(Thread):
        seen: str | None = None

        def run(self) -> None:
            self.seen = get_request_id()

    worker = Worker()
    with bound_request_id("subclass"):
        _run(worker)
    assert worker.seen == "subclass"


def test_thread_with_run_set_on_the_instance_is_carried_and_restored() -> None:
    """A run() assigned to the instance is carried, and is still there after."""
    seen: list[str | None] = []

    def own_run() -> None:
        seen.append(get_request_id())

    thread = Thread()
    thread.run = own_run  # type: ignore[method-assign]
    with bound_request_id("instance-run"):
        _run(thread)
    assert seen == ["instance-run"]
    assert vars(thread)["run"] is own_run


def test_thread_ends_its_binding_with_run() -> None:
    """A context copied in the thread reads None once run() returned."""
    copies: list[contextvars.Context] = []
    with bound_request_id("thread-copy"):
        _run(Thread(target=lambda: copies.append(contextvars.copy_context())))
    assert copies[0].run(get_request_id) is None


def test_thread_started_outside_a_unit_sees_no_id() -> None:
    """A thread started outside any unit of work runs with no id."""
    seen: list[str | None] = []
    thread = Thread(target=lambda: seen.append(get_request_id()))
    _run(thread)
    assert seen == [None]


def test_thread_is_freed_by_reference_counting() -> None:
    """Once joined, the thread object is freed without the cyclic collector."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with bound_request_id("freed"):
            thread = Thread(target=get_request_id)
            _run(thread)
        gone = weakref.ref(thread)
        del thread
        assert gone() is None
    finally:
        if enabled:
            gc.enable()


def test_thread_started_twice_still_raises() -> None:
    """start() on a started thread raises RuntimeError, as threading's does."""
    thread = Thread(target=get_request_id)
    _run(thread)
    with pytest.raises(RuntimeError, match="once"):
        thread.start()


def test_thread_passes_target_arguments() -> None:
    """args and kwargs reach the target, as with threading.Thread."""
    seen: list[tuple[Any, ...]] = []

    def target(*args: Any, **kwargs: Any) -> None:
        seen.append((args, kwargs, get_request_id()))

    with bound_request_id("args"):
        _run(Thread(target=target, args=(1, 2), kwargs={"k": 3}))
    assert seen == [((1, 2), {"k": 3}, "args")]
