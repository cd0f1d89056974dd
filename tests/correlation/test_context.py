"""The ContextVar: binding, restoring, copies, tasks, threads and isolation."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import types
from collections.abc import AsyncIterator

import pytest

import correlation
import correlation.logging
import correlation.sources
import correlation.threads
from correlation import _context, get_request_id
from correlation._context import begin, end, note_request_id


def current_binding() -> _context.Binding | None:
    """The binding this context holds if it is live (read in white-box tests)."""
    binding = _context._BINDING.get()
    return binding if binding is not None and binding.request_id else None


def test_no_request_id_outside_a_request() -> None:
    """get_request_id() is None when no request is bound."""
    assert get_request_id() is None
    assert current_binding() is None


def test_bind_sets_and_unbind_restores() -> None:
    """A bound id is visible until end, which restores None."""
    binding = begin("req-1")
    try:
        assert get_request_id() == "req-1"
        assert current_binding() is binding
    finally:
        end(binding)
    assert get_request_id() is None
    assert current_binding() is None


def test_nested_bind_restores_the_outer() -> None:
    """Unbinding an inner binding restores the outer id, not None."""
    outer = begin("outer")
    try:
        inner = begin("inner")
        try:
            assert get_request_id() == "inner"
            assert current_binding() is inner
        finally:
            end(inner)
        assert get_request_id() == "outer"
        assert current_binding() is outer
    finally:
        end(outer)
    assert get_request_id() is None


def test_copied_context_reads_none_after_unbind() -> None:
    """A context copied while bound reads None once the request has ended."""
    binding = begin("req-copy")
    try:
        copied = contextvars.copy_context()
        assert copied.run(get_request_id) == "req-copy"
        assert copied.run(current_binding) is binding
    finally:
        end(binding)
    assert copied.run(get_request_id) is None
    assert copied.run(current_binding) is None


def test_copied_context_of_nested_bind_reads_none_after_inner_unbind() -> None:
    """A copy taken under an inner binding reads None once that binding ends."""
    outer = begin("outer")
    try:
        inner = begin("inner")
        try:
            copied = contextvars.copy_context()
        finally:
            end(inner)
        assert copied.run(get_request_id) is None
        assert get_request_id() == "outer"
    finally:
        end(outer)


def test_context_var_has_package_prefixed_name() -> None:
    """The var holding the binding is named 'correlation.*' in copy_context()."""
    binding = begin("req-name")
    try:
        names = [
            var.name
            for var, value in contextvars.copy_context().items()
            if value is binding
        ]
    finally:
        end(binding)
    assert len(names) == 1
    assert names[0].startswith("correlation.")


def test_created_task_sees_id_only_while_bound() -> None:
    """A task spawned while bound sees the id, and None once the request ended."""

    async def main() -> list[str | None]:
        seen: list[str | None] = []
        started = asyncio.Event()
        ended = asyncio.Event()

        async def child() -> None:
            seen.append(get_request_id())
            started.set()
            await ended.wait()
            seen.append(get_request_id())

        binding = begin("req-task")
        try:
            task = asyncio.create_task(child())
            await started.wait()
            assert get_request_id() == "req-task"
        finally:
            end(binding)
        ended.set()
        await asyncio.wait_for(task, timeout=10)
        return seen

    assert asyncio.run(main()) == ["req-task", None]


def test_to_thread_sees_the_id() -> None:
    """Sync code run through asyncio.to_thread sees the bound id."""

    async def main() -> tuple[str | None, str | None]:
        binding = begin("req-thread")
        try:
            inside = await asyncio.wait_for(
                asyncio.to_thread(get_request_id), timeout=10
            )
        finally:
            end(binding)
        after = await asyncio.wait_for(asyncio.to_thread(get_request_id), timeout=10)
        return inside, after

    assert asyncio.run(main()) == ("req-thread", None)


def test_concurrent_tasks_each_see_their_own_id() -> None:
    """Many concurrent tasks, each bound to its own id, never see another's."""
    count = 100

    async def main() -> list[list[str | None]]:
        all_bound = asyncio.Event()
        bound = 0

        async def request(number: int) -> list[str | None]:
            nonlocal bound
            own = f"req-{number}"
            seen: list[str | None] = []
            binding = begin(own)
            try:
                seen.append(get_request_id())
                bound += 1
                if bound == count:
                    all_bound.set()
                # Every task is bound before any reads again.
                await all_bound.wait()
                seen.append(get_request_id())
                await asyncio.sleep(0)
                seen.append(await asyncio.to_thread(get_request_id))
                seen.append(get_request_id())
            finally:
                end(binding)
            seen.append(get_request_id())
            return seen

        return await asyncio.wait_for(
            asyncio.gather(*(request(n) for n in range(count))), timeout=30
        )

    results = asyncio.run(main())
    assert results == [[f"req-{n}"] * 4 + [None] for n in range(count)]


def test_context_var_is_not_exported() -> None:
    """No attribute of the correlation package or its public modules is a ContextVar."""
    public = (
        correlation,
        correlation.logging,
        correlation.sources,
        correlation.threads,
    )
    for module in public:
        for name in dir(module):
            value = getattr(module, name)
            assert not isinstance(value, contextvars.ContextVar), f"{module}.{name}"
    public_modules = [
        value
        for name in dir(correlation)
        if not name.startswith("_")
        and isinstance(value := getattr(correlation, name), types.ModuleType)
    ]
    assert sorted(m.__name__ for m in public_modules) == [
        "correlation.logging",
        "correlation.sources",
        "correlation.threads",
    ]


def test_binding_repr_names_the_id_then_ended() -> None:
    """A Binding's repr shows its kind, and its id while bound, 'ended' after."""
    binding = begin("repr-1")
    try:
        assert repr(binding) == "<correlation Binding unit of work 'repr-1'>"
    finally:
        end(binding)
    assert repr(binding) == "<correlation Binding unit of work ended>"
    request = begin("repr-2", "asgi")
    end(request)
    assert repr(request) == "<correlation Binding asgi ended>"


def test_note_request_id_adds_nothing_once_the_request_ended() -> None:
    """note_request_id with None (an ended request) leaves the exception alone."""
    exc = ValueError("x")
    note_request_id(exc, None)
    assert getattr(exc, "__notes__", []) == []


def test_note_request_id_adds_the_note_once() -> None:
    """The same exception passing two adapters gets one note (none before 3.11)."""
    exc = ValueError("x")
    note_request_id(exc, "n-1")
    note_request_id(exc, "n-1")
    expected = ["request_id=n-1"] if sys.version_info >= (3, 11) else []
    assert getattr(exc, "__notes__", []) == expected


# --- end(): never raises, whatever context it runs in ------------------------


def test_end_twice_is_a_no_op() -> None:
    """A second end() of the same binding changes nothing and raises nothing."""
    outer = begin("outer")
    try:
        inner = begin("inner")
        end(inner)
        end(inner)
        assert get_request_id() == "outer"
    finally:
        end(outer)
    assert get_request_id() is None


def test_end_from_a_copied_context_marks_it_ended_without_raising() -> None:
    """end() run in a copy taken inside ends it everywhere and raises nothing."""
    entered = contextvars.copy_context()
    binding = entered.run(begin, "copied-end")
    copy = entered.run(contextvars.copy_context)
    copy.run(end, binding)
    assert binding.request_id is None
    assert entered.run(get_request_id) is None
    assert copy.run(get_request_id) is None


def test_end_from_an_unrelated_context_leaves_that_context_alone() -> None:
    """end() in a context that does not hold the binding only marks it ended."""
    entered = contextvars.copy_context()
    binding = entered.run(begin, "elsewhere")
    other = begin("here")
    try:
        end(binding)
        assert get_request_id() == "here"
        assert entered.run(get_request_id) is None
    finally:
        end(other)


def test_end_does_not_reset_a_context_now_holding_another_binding() -> None:
    """Ending an outer binding while an inner one is current leaves the inner."""
    outer = begin("outer")
    inner = begin("inner")
    end(outer)
    assert get_request_id() == "inner"
    end(inner)
    # The inner token restores the (ended) outer binding, which reads None.
    assert get_request_id() is None
    _context._BINDING.set(None)  # leave this test's context unset


def test_an_ended_binding_keeps_no_reference_to_its_context() -> None:
    """end() drops the reset token, which would keep the whole context alive."""
    context = contextvars.copy_context()
    binding = context.run(begin, "dropped")
    assert binding._token is not None
    end(binding)
    assert binding._token is None


def test_async_generator_finalized_by_the_loop_ends_its_binding() -> None:
    """A binding begun in an abandoned async generator ends when the loop closes it."""
    errors: list[dict[str, object]] = []

    async def numbers() -> AsyncIterator[int]:
        binding = begin("in-generator")
        try:
            yield 1
            yield 2
        finally:
            end(binding)

    async def main() -> tuple[str | None, str | None, contextvars.Context]:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: errors.append(context)
        )
        generator = numbers()
        await generator.__anext__()
        copied = contextvars.copy_context()
        during = get_request_id()
        del generator  # abandoned: the loop's finalizer closes it in a new task
        gc.collect()
        for _ in range(10):
            await asyncio.sleep(0)
        return during, get_request_id(), copied

    during, after, copied = asyncio.run(main())
    assert during == "in-generator"
    assert after is None
    assert copied.run(get_request_id) is None
    assert errors == []


# --- outer_binding(): only a live adapter binding of this very request -------


@pytest.mark.parametrize(
    ("protocol", "mark_is_binding", "bridged", "adopted"),
    [
        pytest.param("asgi", True, False, True, id="asgi-marked"),
        pytest.param("wsgi", True, False, True, id="wsgi-marked"),
        pytest.param("asgi", True, True, True, id="asgi-marked-bridged"),
        pytest.param("asgi", False, False, False, id="asgi-unmarked"),
        pytest.param("asgi", False, True, True, id="asgi-unmarked-bridged"),
        pytest.param("wsgi", False, True, False, id="wsgi-unmarked-bridged"),
        pytest.param(None, True, False, False, id="unit-of-work-marked"),
        pytest.param(None, False, True, False, id="unit-of-work-bridged"),
    ],
)
def test_outer_binding_rules(
    protocol: str | None, mark_is_binding: bool, bridged: bool, adopted: bool
) -> None:
    """A live adapter binding is adopted when marked, or ASGI across a bridge."""
    binding = begin("outer", protocol)
    try:
        mark = binding if mark_is_binding else None
        expected = binding if adopted else None
        assert _context.outer_binding(mark, bridged) is expected
    finally:
        end(binding)


def test_outer_binding_refuses_a_mark_of_another_binding() -> None:
    """A mark naming a binding other than the current one is not followed."""
    elsewhere = contextvars.copy_context().run(begin, "elsewhere", "asgi")
    binding = begin("here", "asgi")
    try:
        assert _context.outer_binding(elsewhere) is None
        assert _context.outer_binding(elsewhere, True) is None
    finally:
        end(binding)


def test_outer_binding_refuses_an_ended_binding() -> None:
    """A binding that ended, left in a copied context, is never adopted."""
    binding = begin("ended", "asgi")
    copied = contextvars.copy_context()
    end(binding)
    assert copied.run(_context.outer_binding, binding) is None
    assert copied.run(_context.outer_binding, None, True) is None


def test_outer_binding_with_nothing_bound() -> None:
    """With no binding in the context there is no outer adapter."""
    assert _context.outer_binding(None) is None
    assert _context.outer_binding(None, True) is None


# --- hide() and restore() ----------------------------------------------------


def test_hide_shows_no_id_until_restore() -> None:
    """hide() makes get_request_id() None, and a copy taken then holds no binding."""
    binding = begin("hidden")
    try:
        token = _context.hide()
        try:
            assert get_request_id() is None
            copied = contextvars.copy_context()
        finally:
            _context.restore(token)
        assert get_request_id() == "hidden"
    finally:
        end(binding)
    assert copied.run(_context._BINDING.get) is None
