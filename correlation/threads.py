"""Carry the current id into other threads, and into work that outlives it.

``executor.submit``, ``loop.run_in_executor`` and ``threading.Thread`` do not
carry context variables (before Python 3.14), so code they run sees no id.
These helpers carry it explicitly::

    from correlation.threads import ThreadPoolExecutor, carry

    executor.submit(carry(send_report), order)   # any executor

    with ThreadPoolExecutor() as pool:            # every submit carries
        pool.submit(send_report, order)

    loop.set_default_executor(ThreadPoolExecutor())  # run_in_executor(None, ...)

Each carried call runs in a fresh copy of the context it was carried from, with
the id bound for that call only: the worker thread itself never holds an id,
and a carried call that runs after its request has ended still sees the id.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import threading

from correlation import _bound, _context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import ParamSpec, TypeVar

    _P = ParamSpec("_P")
    _R = TypeVar("_R")
del TYPE_CHECKING

__all__ = ["Thread", "ThreadPoolExecutor", "carry"]


def carry(fn: Callable[_P, _R], /) -> Callable[_P, _R]:
    """Return *fn* carrying the current context and id to wherever it runs.

    The context and the id are captured now, when ``carry`` is called. Each
    call of the returned callable, in any thread and at any time, runs *fn* in
    a fresh copy of the captured context with the captured id bound for that
    call only: ended when it returns or raises, so contexts copied inside read
    ``None`` afterwards. The same carried callable may run many times at once.

    This is how work meant to outlive the response keeps its id: a carried
    function that runs after the request has ended still sees it. Outside any
    unit of work, *fn* runs with no id.

    Raises:
        TypeError: *fn* is not callable, or is a coroutine, generator or async
            generator function (the call would return before the work runs).
    """
    _bound.check_plain_function(fn, "carry()")
    if _bound.is_coroutine_function(fn):
        raise TypeError(
            f"carry() cannot wrap the coroutine function {fn!r}: its body runs"
            f" when the coroutine is awaited; await it in a task instead, which"
            f" copies the context"
        )
    return functools.wraps(fn)(_carried(fn))


def _carried(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``carry`` without its checks and without copying *fn*'s metadata.

    For the executor and ``Thread``, which take any callable as the standard
    library's do, and whose wrapped callable nobody sees: the checks and
    ``functools.wraps`` cost 1.5 us per submit, more than carrying itself.
    """
    context = contextvars.copy_context()
    request_id = _context.get_request_id()

    def carried(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        # A fresh copy per call: one Context cannot be entered by two threads
        # at once, and nothing one call sets is seen by the next.
        return context.copy().run(_call_bound, request_id, fn, *args, **kwargs)

    return carried


def _call_bound(
    request_id: str | None, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
) -> _R:
    """Call *fn* with *request_id* bound for the call (nothing bound for None)."""
    if request_id is None:
        return fn(*args, **kwargs)
    binding = _context.begin(request_id)
    try:
        return fn(*args, **kwargs)
    finally:
        _context.end(binding)


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``concurrent.futures.ThreadPoolExecutor`` whose ``submit`` carries.

    Every callable submitted (``submit``, and so ``map``) is carried as
    ``carry`` does, from the moment it is submitted; like the standard
    library's executor it takes any callable. Set it as an event loop's
    default executor
    so that ``loop.run_in_executor(None, fn)`` carries too:

        loop.set_default_executor(ThreadPoolExecutor())
    """

    def submit(
        self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> concurrent.futures.Future[_R]:
        """Schedule ``carry(fn)(*args, **kwargs)``; see ``carry``."""
        return super().submit(_carried(fn), *args, **kwargs)


class Thread(threading.Thread):
    """A ``threading.Thread`` whose ``run`` is carried from ``start()``.

    The context and the id current when ``start()`` is called are carried
    into the thread, as ``carry`` does, whether the work is a ``target`` or a
    subclass's own ``run``, and the same on every supported Python whatever
    ``sys.flags.thread_inherit_context`` says.
    """

    def start(self) -> None:
        """Capture the context and the id, then start the thread."""
        if self.ident is None:  # not started yet; Thread.start refuses a second
            own_run = vars(self).get("run")
            carried_run = _carried(self.run)

            def run() -> None:
                try:
                    carried_run()
                finally:
                    # Drop the reference cycle thread -> run -> thread, as
                    # Thread.run drops its target.
                    if own_run is None:
                        vars(self).pop("run", None)
                    else:
                        vars(self)["run"] = own_run

            vars(self)["run"] = run
        super().start()
