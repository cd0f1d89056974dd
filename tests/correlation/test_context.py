"""The ContextVar: binding, restoring, copies, tasks, threads and isolation."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import types

import correlation
from correlation import get_request_id
from correlation._context import (
    bind_request_id,
    current_binding,
    note_request_id,
    unbind,
)


def test_no_request_id_outside_a_request() -> None:
    """get_request_id() is None when no request is bound."""
    assert get_request_id() is None
    assert current_binding() is None


def test_bind_sets_and_unbind_restores() -> None:
    """A bound id is visible until unbind, which restores None."""
    binding = bind_request_id("req-1")
    try:
        assert get_request_id() == "req-1"
        assert current_binding() is binding
    finally:
        unbind(binding)
    assert get_request_id() is None
    assert current_binding() is None


def test_nested_bind_restores_the_outer() -> None:
    """Unbinding an inner binding restores the outer id, not None."""
    outer = bind_request_id("outer")
    try:
        inner = bind_request_id("inner")
        try:
            assert get_request_id() == "inner"
            assert current_binding() is inner
        finally:
            unbind(inner)
        assert get_request_id() == "outer"
        assert current_binding() is outer
    finally:
        unbind(outer)
    assert get_request_id() is None


def test_copied_context_reads_none_after_unbind() -> None:
    """A context copied while bound reads None once the request has ended."""
    binding = bind_request_id("req-copy")
    try:
        copied = contextvars.copy_context()
        assert copied.run(get_request_id) == "req-copy"
        assert copied.run(current_binding) is binding
    finally:
        unbind(binding)
    assert copied.run(get_request_id) is None
    assert copied.run(current_binding) is None


def test_copied_context_of_nested_bind_reads_none_after_inner_unbind() -> None:
    """A copy taken under an inner binding reads None once that binding ends."""
    outer = bind_request_id("outer")
    try:
        inner = bind_request_id("inner")
        try:
            copied = contextvars.copy_context()
        finally:
            unbind(inner)
        assert copied.run(get_request_id) is None
        assert get_request_id() == "outer"
    finally:
        unbind(outer)


def test_context_var_has_package_prefixed_name() -> None:
    """The var holding the binding is named 'correlation.*' in copy_context()."""
    binding = bind_request_id("req-name")
    try:
        names = [
            var.name
            for var, value in contextvars.copy_context().items()
            if value is binding
        ]
    finally:
        unbind(binding)
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

        binding = bind_request_id("req-task")
        try:
            task = asyncio.create_task(child())
            await started.wait()
            assert get_request_id() == "req-task"
        finally:
            unbind(binding)
        ended.set()
        await asyncio.wait_for(task, timeout=10)
        return seen

    assert asyncio.run(main()) == ["req-task", None]


def test_to_thread_sees_the_id() -> None:
    """Sync code run through asyncio.to_thread sees the bound id."""

    async def main() -> tuple[str | None, str | None]:
        binding = bind_request_id("req-thread")
        try:
            inside = await asyncio.wait_for(
                asyncio.to_thread(get_request_id), timeout=10
            )
        finally:
            unbind(binding)
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
            binding = bind_request_id(own)
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
                unbind(binding)
            seen.append(get_request_id())
            return seen

        return await asyncio.wait_for(
            asyncio.gather(*(request(n) for n in range(count))), timeout=30
        )

    results = asyncio.run(main())
    assert results == [[f"req-{n}"] * 4 + [None] for n in range(count)]


def test_context_var_is_not_exported() -> None:
    """No attribute of the correlation package or its public modules is a ContextVar."""
    for module in (correlation, correlation.logging):
        for name in dir(module):
            value = getattr(module, name)
            assert not isinstance(value, contextvars.ContextVar), f"{module}.{name}"
    public_modules = [
        value
        for name in dir(correlation)
        if not name.startswith("_")
        and isinstance(value := getattr(correlation, name), types.ModuleType)
    ]
    assert public_modules == [correlation.logging]


def test_binding_repr_names_the_id_then_ended() -> None:
    """A Binding's repr shows its id while bound and 'ended' afterwards."""
    binding = bind_request_id("repr-1")
    try:
        assert repr(binding) == "<correlation Binding 'repr-1'>"
    finally:
        unbind(binding)
    assert repr(binding) == "<correlation Binding ended>"


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
