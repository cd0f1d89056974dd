"""Units of work outside requests: what a block, a carried call and a submit cost.

The ``units`` group of ``instructions.py``: each row runs one unit of work
around an empty function, next to the plain call (``bare``) and the empty
``with`` block it would otherwise be. The difference is what the toolkit adds
per unit: ``bound_request_id`` resolves an id, begins and ends a binding;
``carry`` copies the captured context and binds the id for the call; the
toolkit's ``ThreadPoolExecutor`` carries each submitted callable.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib

from _harness import Case

from correlation import bound_request_id, threads

#: The id the rows bind; 32 hex, as the request rows' header.
VALUE = "0f8fad5bd9cb469fa16570867728950e"

#: Each row's name and what it runs, in report order.
ROWS = {
    "bare": "a plain call of an empty function",
    "empty-with": "the call inside an empty with block (contextlib.nullcontext)",
    "bound_request_id": "the call inside with bound_request_id(value)",
    "bound_request_id-generated": "the call inside with bound_request_id()",
    "decorated": "a call of a @bound_request_id() function",
    "carried": "a call of carry(fn), carried from a block",
    "plain-submit": "concurrent.futures submit(fn).result(), one warm worker",
    "carried-submit": "threads.ThreadPoolExecutor submit(fn).result(), in a block",
}


def _empty() -> None:
    return None


def build_units() -> list[Case]:
    """The ``units`` rows, one per entry of ``ROWS``."""
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
    return [Case("units", name, "call", runs[name]) for name in ROWS]
