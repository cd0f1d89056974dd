"""The timing harness: calibrated, interleaved, CPU-time samples.

Why not one pyperf benchmark per row: the numbers the targets use are ratios of
*differences* (candidate minus bare) of a few microseconds, on a shared
machine whose speed drifts by more than that within a minute. pyperf runs its
benchmarks one after another, so drift lands on some rows and not on others.
Here each process measures all rows of its group in rounds. A round visits the
*blocks* (the rows that are compared with each other: one group and variant,
or one streaming group) in a shuffled order and, inside a block, the rows in a
shuffled order, one short sample each, so the samples a ratio compares were
taken tens of milliseconds apart. Overheads are then taken *paired*: the
median, over rounds, of a row's sample minus the bare row's sample of the same
round. Several processes give different memory layouts and hash seeds, as
pyperf's workers do. Time is process CPU time, which leaves out the time the
process waited for a core that another process held. The samples are also
saved as a pyperf suite, so ``python -m pyperf stats`` and ``compare_to`` work.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """One benchmark row: a candidate driven with one kind of request.

    Args:
        group: The table the row belongs to (``asgi``, ``wsgi``, ``flask``...).
        candidate: ``bare``, ``reference``, ``ours`` or a peer's name.
        variant: ``header`` (a valid id arrives), ``generated`` (none does,
            so one is generated) or ``chunks=K`` for the streaming rows.
        run: Serves *loops* requests in a row.
        before: Called before each sample, outside the timed region (to
            connect a peer's signal receivers only while it is measured).
        after: Called after each sample, outside the timed region.
        block: The rows measured next to each other in a round; by default
            the rows of the same group and variant.
    """

    group: str
    candidate: str
    variant: str
    run: Callable[[int], None]
    block: str = ""
    before: Callable[[], None] | None = field(default=None, compare=False)
    after: Callable[[], None] | None = field(default=None, compare=False)

    @property
    def block_key(self) -> str:
        """The block this row is measured in (see ``block``)."""
        return self.block or f"{self.group}/{self.variant}"

    @property
    def name(self) -> str:
        """The row's key in the results: ``group/candidate/variant``."""
        return f"{self.group}/{self.candidate}/{self.variant}"


@dataclass
class Samples:
    """What one process measured for one case: per-request times in ns."""

    loops: int
    cpu_ns: list[float] = field(default_factory=list)
    wall_ns: list[float] = field(default_factory=list)


def _sample(case: Case, loops: int) -> tuple[float, float]:
    """Time *loops* requests; return CPU and wall ns per request."""
    if case.before is not None:
        case.before()
    run = case.run
    wall0 = time.perf_counter_ns()
    cpu0 = time.process_time_ns()
    run(loops)
    cpu1 = time.process_time_ns()
    wall1 = time.perf_counter_ns()
    if case.after is not None:
        case.after()
    return (cpu1 - cpu0) / loops, (wall1 - wall0) / loops


def calibrate(case: Case, sample_s: float) -> int:
    """Return a loop count that makes one sample last about *sample_s* CPU."""
    _sample(case, 8)  # warm up: caches, the adaptive interpreter's specialising
    loops = 8
    while True:
        cpu_ns, _ = _sample(case, loops)
        elapsed = cpu_ns * loops / 1e9
        if elapsed >= sample_s / 4:
            return max(1, round(loops * sample_s / max(elapsed, 1e-9)))
        loops *= 4


def measure(
    cases: list[Case], *, rounds: int, sample_s: float, seed: int
) -> dict[str, Samples]:
    """Measure every case *rounds* times, block by block, in shuffled orders.

    The i-th sample of every case is from round i, which is what pairing
    relies on. The garbage collector stays on (a middleware that allocates
    more triggers it more often, which is part of its cost), but everything
    built before the first sample is frozen out of its sight, so each
    collection costs what the requests themselves left behind.
    """
    results = {case.name: Samples(calibrate(case, sample_s)) for case in cases}
    blocks: dict[str, list[Case]] = {}
    for case in cases:
        blocks.setdefault(case.block_key, []).append(case)
    order = list(blocks.values())
    shuffle = random.Random(seed).shuffle
    gc.collect()
    gc.freeze()
    for _ in range(rounds):
        shuffle(order)
        for block in order:
            shuffle(block)
            for case in block:
                samples = results[case.name]
                cpu_ns, wall_ns = _sample(case, samples.loops)
                samples.cpu_ns.append(cpu_ns)
                samples.wall_ns.append(wall_ns)
    gc.unfreeze()
    return results
