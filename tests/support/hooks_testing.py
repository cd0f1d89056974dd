"""Scripted ``Config`` hooks: generators and validators that change behaviour.

Not a test module. ``Config`` draws ``GENERATOR_SAMPLES`` ids from its
generator at construction, and asks the validator about each. A hook that is
meant to misbehave only while requests are served (to test request-time
failures) answers those construction calls with a fixed sample first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from correlation._config import GENERATOR_SAMPLES

__all__ = [
    "CONSTRUCTION_CALLS",
    "AfterConstruction",
    "counting_generator",
    "sequence_generator",
]

#: How many times ``Config`` calls the generator (and the validator) at
#: construction.
CONSTRUCTION_CALLS = GENERATOR_SAMPLES


class AfterConstruction:
    """A hook that returns *sample* for ``Config``'s construction calls.

    Later calls return *then()*, or raise *then* if it is an exception.
    """

    def __init__(self, sample: Any, then: Callable[[], Any] | BaseException) -> None:
        self.sample = sample
        self.then = then
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls <= CONSTRUCTION_CALLS:
            return self.sample
        if isinstance(self.then, BaseException):
            raise self.then
        return self.then()


def counting_generator(prefix: str = "gen") -> Callable[[], str]:
    """Return a generator of ids ``prefix-1``, ``prefix-2``, ... for requests.

    ``Config``'s construction calls get ``prefix-0``, so the first request
    served gets ``prefix-1``.
    """
    counter = itertools.count(1)
    return AfterConstruction(f"{prefix}-0", lambda: f"{prefix}-{next(counter)}")


def sequence_generator(sample: str, *outputs: object) -> Callable[[], str]:
    """A generator giving *sample* at construction, then *outputs* in turn.

    An exception instance among *outputs* is raised when its turn comes.
    """
    remaining = iter(outputs)

    def next_output() -> Any:
        output = next(remaining)
        if isinstance(output, BaseException):
            raise output
        return output

    return AfterConstruction(sample, next_output)
