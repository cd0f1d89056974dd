"""``bound_request_id``: an id for a unit of work that is not an HTTP request.

A CLI run, a cron job, a queue message, a test: each gets its own id with the
same rules and the same lifetime guarantee as a request, through the same
seams the adapters use (``correlation._ids.resolve``, ``correlation._context``).
"""

from __future__ import annotations

import sys

from correlation import _context, _ids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType, TracebackType
    from typing import Any, TypeVar

    from correlation._config import Config

    _F = TypeVar("_F", bound=Callable[..., Any])
del TYPE_CHECKING

__all__ = ["bound_request_id", "check_plain_function", "is_coroutine_function"]


class bound_request_id:
    """Bind an id for a block of code or each call of a function.

    ``request_id`` is treated exactly like an incoming header value: a ``str``,
    or ``bytes`` decoded as latin-1 (a message header, say), read as an
    RFC 9110 list, then checked against the hard floor and
    ``config.validator``. A rejected or absent value, or any value when
    ``config.trust_incoming`` is ``False``, is replaced by
    ``config.generator()``'s id. A rejected value is logged nowhere:

        with bound_request_id(message.headers.get("x-request-id")) as request_id:
            handle(message)

        @bound_request_id()
        def main() -> None:  # each call gets a new id
            ...

    As a decorator, each call of a plain function gets a binding for the
    length of the call, and each call of an ``async def`` function for the
    whole awaited call. Blocks nest: the inner id is visible inside the inner
    block, the outer one again after it. When a block ends, however it ends,
    every context copied inside it reads ``None`` from then on, and the
    context it was entered in holds what it held before. Leaving a block never
    raises; an exception from the block propagates as the same object, noting
    the id on Python 3.11+ (``add_note``).

    A request served in-process inside a block (a test client call, say) is a
    request of its own: adapters never adopt a block's id.

    Args:
        request_id: The incoming value, or ``None`` to generate one.
        config: The rules to apply; ``None`` means ``Config()``.

    Raises:
        TypeError: *request_id* is not a ``str``, ``bytes`` or ``None``,
            *config* is not a ``Config``, or (decorating) the function is a
            generator or async generator function, or not callable.
        RuntimeError: The same object is entered again while it is entered.
    """

    __slots__ = ("_binding", "_config", "_incoming")

    def __init__(
        self, request_id: str | bytes | None = None, /, *, config: Config | None = None
    ) -> None:
        if isinstance(request_id, bytes):
            request_id = request_id.decode("latin-1")
        elif request_id is not None and not isinstance(request_id, str):
            from correlation._config import shown

            raise TypeError(
                f"bound_request_id() takes a str, bytes or None as the request id,"
                f" got {shown(request_id)}"
            )
        self._incoming = request_id
        self._config = _config_or_default(config)
        self._binding: _context.Binding | None = None

    def __enter__(self) -> str:
        if self._binding is not None:
            raise RuntimeError(
                "this bound_request_id() is already entered; enter a new"
                " bound_request_id(...) for each block that runs at the same time"
            )
        request_id = _ids.resolve(self._config, self._incoming)
        self._binding = _context.begin(request_id)
        return request_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        binding, self._binding = self._binding, None
        if binding is None:
            return
        if isinstance(exc, Exception):
            _context.note_request_id(exc, binding.request_id)
        _context.end(binding)

    def __call__(self, function: _F) -> _F:
        """Decorate *function*: each call runs in a binding of its own."""
        import functools

        check_plain_function(function, "bound_request_id()")
        config, incoming = self._config, self._incoming

        if is_coroutine_function(function):

            async def bound_call_async(*args: Any, **kwargs: Any) -> Any:
                binding = _context.begin(_ids.resolve(config, incoming))
                try:
                    return await function(*args, **kwargs)
                except Exception as exc:
                    _context.note_request_id(exc, binding.request_id)
                    raise
                finally:
                    _context.end(binding)

            return functools.wraps(function)(bound_call_async)  # type: ignore[return-value]

        def bound_call(*args: Any, **kwargs: Any) -> Any:
            binding = _context.begin(_ids.resolve(config, incoming))
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                _context.note_request_id(exc, binding.request_id)
                raise
            finally:
                _context.end(binding)

        return functools.wraps(function)(bound_call)  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "entered" if self._binding is not None else "not entered"
        return f"<correlation.bound_request_id {state}>"


def _config_or_default(config: Config | None) -> Config:
    """``correlation._config.config_or_default``, imported on first use.

    ``correlation._config`` loads dataclasses, most of the package's import
    cost, so it is not imported with this module; an import statement per
    block would cost a fifth of the block (measured: 0.3 of 1.3 us).
    """
    global _config_or_default
    from correlation._config import config_or_default

    _config_or_default = config_or_default
    return config_or_default(config)


def _inspect() -> ModuleType:
    """The inspect module, imported on first use (it costs 10 ms to import)."""
    global _inspect_module
    if _inspect_module is None:
        import inspect

        _inspect_module = inspect
    return _inspect_module


_inspect_module: ModuleType | None = None


def check_plain_function(function: object, user: str) -> None:
    """Raise ``TypeError`` unless *function* is a callable whose call is the work.

    A generator or async generator function returns at once and does its work
    later, outside the call that would carry the id.
    """
    inspect = _inspect()
    if not callable(function):
        raise TypeError(f"{user} takes a callable, got {function!r}")
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        raise TypeError(
            f"{user} cannot wrap the generator function {function!r}: its body"
            f" runs after the call returns; bind the id inside it instead"
        )


def is_coroutine_function(function: object) -> bool:
    """Whether calling *function* returns a coroutine to await.

    ``inspect`` reads ``async def`` and, from Python 3.12, functions marked with
    ``inspect.markcoroutinefunction``. On 3.10 and 3.11 asgiref marks its
    ``sync_to_async`` wrappers with asyncio's own mark, which only asyncio
    reads (and asyncio is loaded wherever such a function exists).
    """
    if _inspect().iscoroutinefunction(function):
        return True
    asyncio = sys.modules.get("asyncio")
    if sys.version_info < (3, 12) and asyncio is not None:  # pragma: no cover - <3.12
        return bool(asyncio.iscoroutinefunction(function))
    return False
