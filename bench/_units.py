"""Units of work outside requests: what a block, a carried call and a submit cost.

The ``units`` group of ``micro.py`` (CPU time) and ``instructions.py``
(instructions): each row runs one unit of work around an empty function, and
each is compared with its *baseline*, the row it would otherwise be:

- ``with bound_request_id(value)`` (and without a value, so generating) with
  an empty ``with`` block of a trivial context manager: what the block adds
  on entry and exit, an id resolved, a binding begun and ended;
- a ``@bound_request_id()`` function's call and a ``carry(fn)`` call with the
  plain call: the decorator's per-call binding, and what carrying adds per
  call (a fresh copy of the captured context, the id bound and ended in it);
- the toolkit's ``ThreadPoolExecutor.submit(fn).result()`` with the standard
  library's, each with one warm worker: what carrying adds per submit (the
  context captured at submit, then the carried call in the worker).

Only public names are used. The project is imported when the rows are built,
not with this module, so ``report.py`` (run without the project) can read
``ROWS``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib

from _harness import Case

#: The id the rows bind: 32 hex, as the request rows' header (``_apps``).
VALUE = "0f8fad5bd9cb469fa16570867728950e"

#: The variant of every row: one unit of work per loop.
VARIANT = "call"

#: Each row, in report order: what it runs, and its baseline ("" for none).
ROWS: dict[str, tuple[str, str]] = {
    "bare": ("a plain call of an empty function", ""),
    "empty-with": (
        "the call in an empty with block (contextlib.nullcontext())",
        "bare",
    ),
    "bound_request_id": (
        "the call in with bound_request_id(value)",
        "empty-with",
    ),
    "bound_request_id-generated": (
        "the call in with bound_request_id(), generating",
        "empty-with",
    ),
    "decorated": ("a call of a @bound_request_id() function", "bare"),
    "carried": ("a call of carry(fn), carried from a block", "bare"),
    "plain-submit": (
        "concurrent.futures.ThreadPoolExecutor: submit(fn).result()",
        "bare",
    ),
    "carried-submit": (
        "correlation.threads.ThreadPoolExecutor: submit(fn).result(), in a block",
        "plain-submit",
    ),
}


def _empty() -> None:
    return None


def build_units() -> list[Case]:
    """The ``units`` rows, one per entry of ``ROWS``, each with a warm pool.

    Time the submit rows on one CPU (``_machine.one_cpu``), with the pools'
    worker threads started there: see why there.
    """
    from correlation import bound_request_id, threads

    stock = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    ours = threads.ThreadPoolExecutor(max_workers=1)
    atexit.register(stock.shutdown)
    atexit.register(ours.shutdown)
    decorated = bound_request_id()(_empty)
    with bound_request_id(VALUE):
        carried = threads.carry(_empty)

    def bare(loops: int) -> None:
        for _ in range(loops):
            _empty()

    def empty_with(loops: int) -> None:
        for _ in range(loops):
            with contextlib.nullcontext():
                _empty()

    def block(loops: int) -> None:
        for _ in range(loops):
            with bound_request_id(VALUE):
                _empty()

    def block_generated(loops: int) -> None:
        for _ in range(loops):
            with bound_request_id():
                _empty()

    def call_decorated(loops: int) -> None:
        for _ in range(loops):
            decorated()

    def call_carried(loops: int) -> None:
        for _ in range(loops):
            carried()

    def plain_submit(loops: int) -> None:
        for _ in range(loops):
            stock.submit(_empty).result()

    def carried_submit(loops: int) -> None:
        with bound_request_id(VALUE):
            for _ in range(loops):
                ours.submit(_empty).result()

    runs = {
        "bare": bare,
        "empty-with": empty_with,
        "bound_request_id": block,
        "bound_request_id-generated": block_generated,
        "decorated": call_decorated,
        "carried": call_carried,
        "plain-submit": plain_submit,
        "carried-submit": carried_submit,
    }
    # Start each pool's worker now, in the caller's CPU setting.
    stock.submit(_empty).result()
    ours.submit(_empty).result()
    return [Case("units", name, VARIANT, runs[name]) for name in ROWS]
