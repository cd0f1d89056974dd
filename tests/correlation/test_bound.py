"""bound_request_id: an id for a unit of work that is not an HTTP request."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hooks_testing import counting_generator
from hostile import MARKER, Hostile, hostile_params
from log_testing import correlation_logs

from correlation import Config, bound_request_id, get_request_id
from correlation._config import shown

HEX32 = "0123456789abcdef"


def _is_generated(value: str) -> bool:
    return len(value) == 32 and all(c in HEX32 for c in value)


# --- the value: exactly like an incoming header ------------------------------


@pytest.mark.parametrize(
    ("incoming", "expected"),
    [
        pytest.param("job-42", "job-42", id="valid-str"),
        pytest.param(b"job-42", "job-42", id="valid-bytes"),
        pytest.param("  job-42\t", "job-42", id="list-rule-strips"),
        pytest.param(None, None, id="absent"),
        pytest.param("a b", None, id="inner-space"),
        pytest.param("a,b", None, id="two-values"),
        pytest.param("x" * 129, None, id="too-long-for-the-rule"),
        pytest.param("EVIL\r\nSet-Cookie: a=b", None, id="crlf"),
        pytest.param(b"caf\xe9", None, id="non-ascii-bytes"),
        pytest.param(b"\x1b[31mEVIL", None, id="escape-bytes"),
        pytest.param("", None, id="empty"),
    ],
)
def test_value_is_checked_like_a_header(
    incoming: str | bytes | None, expected: str | None
) -> None:
    """A valid value is kept; absent or rejected ones get a generated id."""
    with bound_request_id(incoming) as request_id:
        assert get_request_id() == request_id
    if expected is None:
        assert _is_generated(request_id), request_id
    else:
        assert request_id == expected
    assert get_request_id() is None


def test_untrusted_config_generates_whatever_the_value() -> None:
    """trust_incoming=False replaces even a valid value with the generator's id."""
    config = Config(trust_incoming=False, generator=counting_generator("job"))
    with bound_request_id("valid-id", config=config) as request_id:
        assert request_id == "job-1"


def test_transformer_applies_to_the_value() -> None:
    """The config's transformer rewrites an accepted value, never a generated one."""
    config = Config(transformer=str.lower, generator=counting_generator("JOB"))
    with bound_request_id("Cron-RUN-7", config=config) as request_id:
        assert request_id == get_request_id() == "cron-run-7"
    with bound_request_id(config=config) as generated:
        assert generated == "JOB-1"


def test_custom_validator_and_generator_apply() -> None:
    """The config's validator judges the value and its generator replaces it."""
    config = Config(
        validator=lambda value: value.startswith("svc-"),
        generator=counting_generator("svc"),
    )
    with bound_request_id("svc-7", config=config) as kept:
        assert kept == "svc-7"
    with bound_request_id("other", config=config) as replaced:
        assert replaced == "svc-1"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(42, id="int"),
        pytest.param(["a"], id="list"),
        pytest.param(bytearray(b"a"), id="bytearray"),
        pytest.param(object(), id="object"),
    ],
)
def test_other_types_raise_before_anything_is_bound(value: object) -> None:
    """A value that is not str, bytes or None raises TypeError at the call."""
    with pytest.raises(TypeError, match="bound_request_id") as info:
        bound_request_id(value)  # type: ignore[arg-type]
    assert shown(value) in str(info.value)
    assert get_request_id() is None


def test_config_must_be_a_config() -> None:
    """A config that is not a correlation.Config raises TypeError."""
    with pytest.raises(TypeError, match="config"):
        bound_request_id("a", config={"header_name": "X"})  # type: ignore[arg-type]


@pytest.mark.parametrize("row", hostile_params())
def test_a_rejected_value_is_logged_nowhere(row: Hostile) -> None:
    """The DEBUG line about a rejected value quotes none of it."""
    with correlation_logs() as texts, bound_request_id(row.joined()):
        assert get_request_id() != row.joined()
    assert texts, "the rejection is logged at DEBUG"
    assert all(MARKER not in text for text in texts)


# --- the block's lifetime ----------------------------------------------------


def test_blocks_nest() -> None:
    """The inner id is visible inside the inner block, the outer one after it."""
    with bound_request_id("outer") as outer:
        with bound_request_id("inner") as inner:
            assert get_request_id() == inner == "inner"
        assert get_request_id() == outer == "outer"
    assert get_request_id() is None


def test_copies_made_inside_read_none_afterwards() -> None:
    """A context copied inside the block reads None once the block ended."""
    with bound_request_id("copied"):
        copied = contextvars.copy_context()
        assert copied.run(get_request_id) == "copied"
    assert copied.run(get_request_id) is None


def test_an_exception_propagates_as_the_same_object() -> None:
    """The block's exception leaves it unchanged but for a note (3.11+)."""
    error = LookupError("boom")
    with pytest.raises(LookupError) as info, bound_request_id("failing"):
        raise error
    assert info.value is error
    expected = ["request_id=failing"] if sys.version_info >= (3, 11) else []
    assert getattr(error, "__notes__", []) == expected
    assert get_request_id() is None


def test_copies_read_none_after_an_exception() -> None:
    """A block left by an exception blanks its copies too."""
    copied: list[contextvars.Context] = []

    def fail() -> None:
        with bound_request_id("raising"):
            copied.append(contextvars.copy_context())
            raise ValueError("x")

    with pytest.raises(ValueError, match="x"):
        fail()
    assert copied[0].run(get_request_id) is None


def test_entering_the_same_object_twice_at_once_raises() -> None:
    """One bound_request_id object cannot be entered while it is entered."""
    block = bound_request_id("once")
    with block:
        with pytest.raises(RuntimeError, match="already entered"), block:
            pass  # pragma: no cover - never reached
        assert get_request_id() == "once"
    assert get_request_id() is None


def test_the_same_object_can_be_entered_again_after_it_ended() -> None:
    """Entered one after the other, an object gives a fresh binding each time."""
    block = bound_request_id()
    with block as first:
        copied = contextvars.copy_context()
    with block as second:
        assert get_request_id() == second
        # The first binding stays ended.
        assert copied.run(get_request_id) is None
    assert first != second


def test_async_generator_abandoned_and_finalized_by_the_loop() -> None:
    """An abandoned async generator's block ends when the loop closes it, quietly."""
    errors: list[dict[str, Any]] = []
    copies: list[contextvars.Context] = []

    async def numbers() -> AsyncIterator[int]:
        with bound_request_id("in-generator"):
            copies.append(contextvars.copy_context())
            yield 1
            yield 2  # pragma: no cover - abandoned before

    async def main() -> tuple[str | None, str | None]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: errors.append(context))
        generator = numbers()
        await generator.__anext__()
        during = get_request_id()
        del generator  # abandoned: the loop's finalizer closes it in a new task
        gc.collect()
        for _ in range(20):
            await asyncio.sleep(0)
        return during, get_request_id()

    during, after = asyncio.run(main())
    assert during == "in-generator"
    assert after is None
    assert copies[0].run(get_request_id) is None
    assert errors == []


def test_two_hundred_concurrent_tasks_each_see_their_own_id() -> None:
    """200 tasks, each in its own block, never see another task's id."""
    count = 200

    async def main() -> list[list[str | None]]:
        started = 0
        all_started = asyncio.Event()

        async def task(number: int) -> list[str | None]:
            nonlocal started
            with bound_request_id(f"task-{number}"):
                seen = [get_request_id()]
                started += 1
                if started == count:
                    all_started.set()
                await all_started.wait()
                seen.append(get_request_id())
                seen.append(await asyncio.to_thread(get_request_id))
            seen.append(get_request_id())
            return seen

        return await asyncio.wait_for(
            asyncio.gather(*(task(n) for n in range(count))), timeout=30
        )

    results = asyncio.run(main())
    assert results == [[f"task-{n}"] * 3 + [None] for n in range(count)]


# --- the decorator -------------------------------------------------------------


def test_decorated_function_gets_a_fresh_id_per_call() -> None:
    """Each call of a decorated function runs under a new generated id."""
    seen: list[str | None] = []

    @bound_request_id()
    def job(number: int) -> int:
        seen.append(get_request_id())
        return number * 2

    assert job(1) == 2
    assert job(2) == 4
    first, second = seen
    assert first is not None
    assert second is not None
    assert _is_generated(first)
    assert _is_generated(second)
    assert first != second
    assert get_request_id() is None


def test_decorated_function_with_a_value_uses_it_each_call() -> None:
    """A decorator given a valid value binds that value on every call."""

    @bound_request_id("nightly-report")
    def job() -> str | None:
        return get_request_id()

    assert [job(), job()] == ["nightly-report", "nightly-report"]


def test_decorated_function_keeps_its_metadata() -> None:
    """functools.wraps: the name, docstring and wrapped function are kept."""

    @bound_request_id()
    def job(number: int) -> int:
        """Double it."""
        return number * 2

    assert job.__name__ == "job"
    assert job.__doc__ == "Double it."
    assert job.__wrapped__(3) == 6  # type: ignore[attr-defined]


def test_decorated_function_that_raises_ends_its_binding() -> None:
    """A decorated call that raises ends its binding; the error propagates."""
    copied: list[contextvars.Context] = []

    @bound_request_id("raises")
    def job() -> None:
        copied.append(contextvars.copy_context())
        raise KeyError("k")

    with pytest.raises(KeyError):
        job()
    assert copied[0].run(get_request_id) is None
    assert get_request_id() is None


def test_decorated_coroutine_function_is_bound_for_the_awaited_call() -> None:
    """An async def keeps its id across awaits; its tasks read None after it."""
    tasks: list[asyncio.Task[str | None]] = []
    release = asyncio.Event

    @bound_request_id("async-job")
    async def job(gate: asyncio.Event) -> list[str | None]:
        seen = [get_request_id()]
        await asyncio.sleep(0)
        seen.append(get_request_id())

        async def outlive() -> str | None:
            await gate.wait()
            return get_request_id()

        tasks.append(asyncio.create_task(outlive()))
        return seen

    async def main() -> tuple[list[str | None], str | None, str | None]:
        gate = release()
        seen = await job(gate)
        after = get_request_id()
        gate.set()
        return seen, after, await asyncio.wait_for(tasks[0], timeout=10)

    seen, after, outlived = asyncio.run(main())
    assert seen == ["async-job", "async-job"]
    assert after is None
    assert outlived is None


def test_decorated_coroutine_function_that_raises_notes_and_ends() -> None:
    """An async def that raises: the same error, a note (3.11+), the id ended."""
    copied: list[contextvars.Context] = []
    error = LookupError("async boom")

    @bound_request_id("async-raises")
    async def job() -> None:
        copied.append(contextvars.copy_context())
        await asyncio.sleep(0)
        raise error

    async def main() -> str | None:
        with pytest.raises(LookupError) as info:
            await job()
        assert info.value is error
        return get_request_id()

    assert asyncio.run(main()) is None
    expected = ["request_id=async-raises"] if sys.version_info >= (3, 11) else []
    assert getattr(error, "__notes__", []) == expected
    assert copied[0].run(get_request_id) is None


def test_exit_without_enter_does_nothing() -> None:
    """Leaving a block that was never entered raises nothing and binds nothing."""
    block = bound_request_id("never-entered")
    block.__exit__(None, None, None)
    assert get_request_id() is None


def test_repr_says_whether_the_block_is_entered() -> None:
    """The repr names the public class and its state, never the id."""
    block = bound_request_id("secret-id")
    assert repr(block) == "<correlation.bound_request_id not entered>"
    with block:
        assert repr(block) == "<correlation.bound_request_id entered>"
    assert "secret-id" not in repr(block)


def _generator() -> Iterator[int]:
    yield 1


async def _async_generator() -> AsyncIterator[int]:
    yield 1


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(_generator, id="generator"),
        pytest.param(_async_generator, id="async-generator"),
    ],
)
def test_decorating_a_generator_function_raises(function: Any) -> None:
    """A generator's body runs after the call returns: decorating it is refused."""
    with pytest.raises(TypeError, match="generator"):
        bound_request_id()(function)


def test_decorating_a_non_callable_raises() -> None:
    """Decorating something that cannot be called raises TypeError."""
    with pytest.raises(TypeError, match="callable"):
        bound_request_id()(42)  # type: ignore[type-var]


def test_logged_lines_carry_the_blocks_id() -> None:
    """A record logged in a block gets its id through RequestIdFilter."""
    from log_testing import capture_logs

    with capture_logs("test.bound") as capture:
        logger = logging.getLogger("test.bound")
        logger.warning("outside")
        with bound_request_id("cron-run"):
            logger.warning("inside")
    assert [record.request_id for record in capture.records] == ["-", "cron-run"]  # type: ignore[attr-defined]
