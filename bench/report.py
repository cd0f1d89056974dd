"""Turn the JSON results of one run into the Markdown report and its targets.

``python bench/report.py [RESULTS_DIR]`` prints the report of whatever
``micro.json``, ``instructions.json``, ``imports.json``, ``e2e.json``,
``e2e_instructions.json`` and ``breakdown.json`` the directory holds
(``bench/results`` by default) and writes it to ``report.md`` there.
``run.py`` calls it at the end of a run.

All ratios are ratios of medians from the same run, as the targets ask. A
row's *overhead* is the median of its paired differences: each of its samples
minus the bare row's sample of the same round. A ratio of two overheads is
computed in each worker process on its own; the report gives the median of
those ratios and, after it, the lowest and highest: a wide range means the
machine was too noisy for the digits shown.
"""

# A benchmark reports to a person on stdout.
# ruff: noqa: T201

from __future__ import annotations

import json
import math
import statistics
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import _units

HERE = Path(__file__).resolve().parent

Row = dict[str, typing.Any]


@dataclass(frozen=True)
class RatioTarget:
    """*ours*' overhead divided by *other*'s must stay at or below *limit*."""

    group: str
    variant: str
    other: str
    limit: float
    ours: str = "ours"

    @property
    def label(self) -> str:
        """E.g. ``asgi, header: ours / reference``."""
        return f"{self.group}, {self.variant}: {self.ours} / {self.other}"


def _both(
    group: str, other: str, limit: float, ours: str = "ours"
) -> list[RatioTarget]:
    return [RatioTarget(group, v, other, limit, ours) for v in ("header", "generated")]


MICRO_TARGETS = (
    RatioTarget("asgi", "header", "reference", 1.3),
    RatioTarget("asgi", "generated", "reference", 0.8),
    RatioTarget("wsgi", "header", "reference", 1.5),
    RatioTarget("wsgi", "generated", "reference", 0.8),
    *_both("asgi", "asgi-correlation-id", 0.4),
    *_both("flask", "flask-log-request-id", 0.3),
    *_both("django", "django-guid", 0.3),
    *_both("django", "django-log-request-id", 0.3),
    # Issue 12: the Django middleware alone at most half the cheaper peer's
    # overhead, so at most half of each.
    *_both("django", "django-guid", 0.5, ours="ours-django-middleware"),
    *_both("django", "django-log-request-id", 0.5, ours="ours-django-middleware"),
)

E2E_MIN_RATIO = 0.97
IMPORT_MAX_MS = 20.0

GROUP_TITLES = {
    "asgi": "ASGI, bare app",
    "wsgi": "WSGI, bare app",
    "flask": "Flask (WSGI callable)",
    "django": "Django (WSGIHandler)",
}
CANDIDATE_ORDER = (
    "bare",
    "reference",
    "ours",
    "ours+2-fallbacks",
    "ours-django-middleware",
    "asgi-correlation-id",
    "flask-log-request-id",
    "django-guid",
    "django-log-request-id",
)


# --- micro -------------------------------------------------------------------


def _flat(row: Row) -> list[float]:
    return [value for process in row["cpu_ns"] for value in process]


def median_us(row: Row, process: int | None = None) -> float:
    """A row's median CPU cost per request in µs, pooled or of one process."""
    values = _flat(row) if process is None else row["cpu_ns"][process]
    return statistics.median(values) / 1000 if values else math.nan


def spread_pct(row: Row) -> float:
    """Interquartile range of a row's samples, in percent of its median."""
    values = _flat(row)
    if len(values) < 4:
        return math.nan
    q1, _, q3 = statistics.quantiles(values, n=4)
    return 100 * (q3 - q1) / statistics.median(values)


def _row(data: Row, group: str, candidate: str, variant: str) -> Row | None:
    row: Row | None = data["cases"].get(f"{group}/{candidate}/{variant}")
    return row


def _paired(top: Row, bottom: Row, process: int | None) -> list[float]:
    """Sample-by-sample differences of two rows measured in the same rounds."""
    processes = range(len(top["cpu_ns"])) if process is None else [process]
    return [
        high - low
        for p in processes
        for high, low in zip(top["cpu_ns"][p], bottom["cpu_ns"][p], strict=True)
    ]


def overhead_us(
    data: Row, group: str, candidate: str, variant: str, process: int | None = None
) -> float:
    """A candidate's overhead in µs: the median of its paired differences.

    Each sample of the candidate minus the bare app's sample of the same
    round (same group and variant), pooled over processes or of one process.
    """
    row = _row(data, group, candidate, variant)
    bare = _row(data, group, "bare", variant)
    if row is None or bare is None:
        return math.nan
    differences = _paired(row, bare, process)
    return statistics.median(differences) / 1000 if differences else math.nan


def overhead_ratio(
    data: Row, group: str, variant: str, top: str, bottom: str
) -> tuple[float, float, float]:
    """``top``'s overhead over ``bottom``'s: the median, lowest and highest.

    The ratio of the two overheads is taken in each process on its own, and
    the median of those ratios is the result: processes ran at different
    speeds (the machine's load changes), and a ratio of medians pooled over
    all of them would mix those speeds unevenly into top and bottom.
    """
    processes = data["settings"]["processes"]
    each = [
        _divide(
            overhead_us(data, group, top, variant, process),
            overhead_us(data, group, bottom, variant, process),
        )
        for process in range(processes)
    ]
    each = [value for value in each if not math.isnan(value)]
    if not each:
        return math.nan, math.nan, math.nan
    return statistics.median(each), min(each), max(each)


def _divide(top: float, bottom: float) -> float:
    if math.isnan(top) or math.isnan(bottom) or bottom <= 0:
        return math.nan
    return top / bottom


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _variants(data: Row, group: str) -> list[str]:
    seen: list[str] = []
    for row in data["cases"].values():
        if row["group"] == group and row["variant"] not in seen:
            seen.append(row["variant"])
    return seen


def _candidates(data: Row, group: str) -> list[str]:
    present = {
        row["candidate"] for row in data["cases"].values() if row["group"] == group
    }
    return [name for name in CANDIDATE_ORDER if name in present]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append(
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"
    )
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def render_group(data: Row, group: str) -> list[str]:
    """One group's rows: cost, overhead, and overhead ratios."""
    candidates = _candidates(data, group)
    rows: list[list[str]] = []
    for variant in _variants(data, group):
        for candidate in candidates:
            row = _row(data, group, candidate, variant)
            if row is None:
                continue
            over = overhead_us(data, group, candidate, variant)
            to_ref = ours_to = ""
            if candidate != "bare":
                to_ref = _fmt(
                    overhead_ratio(data, group, variant, candidate, "reference")[0]
                )
            if candidate not in ("bare", "ours"):
                ratio, low, high = overhead_ratio(
                    data, group, variant, "ours", candidate
                )
                ours_to = f"{_fmt(ratio)} ({_fmt(low)} to {_fmt(high)})"
            rows.append(
                [
                    f"{candidate}, {variant}",
                    _fmt(median_us(row)),
                    _fmt(spread_pct(row), 0),
                    "" if candidate == "bare" else _fmt(over),
                    to_ref,
                    ours_to,
                ]
            )
    header = [
        "row",
        "µs/request",
        "IQR %",
        "overhead µs",
        "overhead ÷ reference's",
        "ours ÷ this row's overhead (per-process range)",
    ]
    return [f"### {GROUP_TITLES.get(group, group)}", "", *_table(header, rows), ""]


def per_chunk_us(
    data: Row, group: str, candidate: str, minus_bare: bool = False
) -> float:
    """Cost per streamed chunk: paired (K chunks - 1 chunk) / (K - 1).

    With *minus_bare*, the bare app's own per-chunk cost of the same round is
    subtracted first: the middleware's overhead per chunk.
    """
    few, many, extra = _stream_variants(data, group)
    low = _row(data, group, candidate, few)
    high = _row(data, group, candidate, many)
    if low is None or high is None or extra <= 0:
        return math.nan
    steps = _paired(high, low, None)
    if minus_bare:
        bare_low = _row(data, group, "bare", few)
        bare_high = _row(data, group, "bare", many)
        if bare_low is None or bare_high is None:
            return math.nan
        bare_steps = _paired(bare_high, bare_low, None)
        steps = [mine - bare for mine, bare in zip(steps, bare_steps, strict=True)]
    return statistics.median(steps) / 1000 / extra if steps else math.nan


def _stream_variants(data: Row, group: str) -> tuple[str, str, int]:
    variants = sorted(_variants(data, group), key=lambda v: int(v.partition("=")[2]))
    if len(variants) < 2:
        return "", "", 0
    few, many = variants[0], variants[-1]
    return few, many, int(many.partition("=")[2]) - int(few.partition("=")[2])


def render_stream(data: Row, group: str) -> list[str]:
    """Cost per streamed chunk, for each candidate, and its overhead."""
    few, many, extra = _stream_variants(data, group)
    if extra <= 0:
        return []
    rows: list[list[str]] = []
    for candidate in _candidates(data, group):
        low = _row(data, group, candidate, few)
        high = _row(data, group, candidate, many)
        if low is None or high is None:
            continue
        rows.append(
            [
                candidate,
                _fmt(median_us(low)),
                _fmt(median_us(high)),
                _fmt(per_chunk_us(data, group, candidate), 3),
                ""
                if candidate == "bare"
                else _fmt(per_chunk_us(data, group, candidate, minus_bare=True), 3),
            ]
        )
    title = "ASGI" if group.startswith("asgi") else "WSGI"
    header = [
        "candidate",
        f"µs/request, {few.replace('=', ' = ')}",
        f"µs/request, {many.replace('=', ' = ')}",
        "µs per chunk",
        "overhead per chunk µs",
    ]
    return [f"### {title} streaming, cost per chunk", "", *_table(header, rows), ""]


def _units_key(name: str) -> str:
    return f"units/{name}/{_units.VARIANT}"


_UNITS_TEXT = (
    "Each row runs one unit of work around an empty function (`bench/_units.py`),"
    " and the last column is what it adds to its baseline, the row it would"
    " otherwise be: `bound_request_id`'s enter and exit over an empty `with`"
    " block, a decorated or carried call over the plain call (carrying: a fresh"
    " copy of the captured context, the id bound and ended in it), the carrying"
    " executor's submit over the standard library's."
)


def render_micro_units(data: Row) -> list[str]:
    """The ``units`` rows: CPU time per unit, and what each adds to its baseline."""
    rows: list[list[str]] = []
    for name, (what, baseline) in _units.ROWS.items():
        row = data["cases"].get(_units_key(name))
        if row is None:
            continue
        base = data["cases"].get(_units_key(baseline)) if baseline else None
        added = ""
        if base is not None:
            differences = _paired(row, base, None)
            added = _fmt(statistics.median(differences) / 1000, 3)
        rows.append([f"{name}: {what}", _fmt(median_us(row), 3), baseline, added])
    if not rows:
        return []
    return [
        "### Units of work outside requests (one CPU)",
        "",
        _UNITS_TEXT + " Added: the median of paired differences, µs.",
        "",
        *_table(["row", "µs/unit", "baseline", "added to it µs"], rows),
        "",
    ]


def micro_targets(data: Row) -> list[tuple[str, float, str, bool | None, str]]:
    """Each ratio target: label, value, limit text, pass (None: not measured), range."""
    results = []
    for target in MICRO_TARGETS:
        value, low, high = overhead_ratio(
            data, target.group, target.variant, target.ours, target.other
        )
        passed = None if math.isnan(value) else value <= target.limit
        results.append(
            (
                target.label,
                value,
                f"≤ {target.limit}",
                passed,
                f"{_fmt(low)} to {_fmt(high)}",
            )
        )
    return results


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "not run"}[passed]


def render_micro(data: Row) -> str:
    """The micro benchmark's tables and its targets, as Markdown."""
    settings = data["settings"]
    lines = [
        "## In-process cost per request (CPU time, median)",
        "",
        f"{settings['processes']} processes per group x {settings['rounds']} rounds"
        f" x one ~{settings['sample_ms']:g} ms sample per row and round;"
        f" load average after: {data.get('load_after')}.",
        "",
    ]
    walls = [
        statistics.median(_flat_wall(row)) / statistics.median(_flat(row))
        for row in data["cases"].values()
        if _flat(row)
    ]
    if walls:
        lines += [
            f"Wall time ÷ CPU time, median over rows: {statistics.median(walls):.2f}"
            " (above ~1.05 other processes were taking this one's core).",
            "",
        ]
    for group in ("asgi", "wsgi", "flask", "django"):
        if any(row["group"] == group for row in data["cases"].values()):
            lines += render_group(data, group)
    for group in ("asgi-stream", "wsgi-stream"):
        lines += render_stream(data, group)
    lines += render_micro_units(data)
    lines += ["### Targets (ratios of overheads)", ""]
    rows = [
        [label, _fmt(value), limit, _mark(passed), spread]
        for label, value, limit, passed, spread in micro_targets(data)
    ]
    lines += _table(
        ["target", "measured", "limit", "status", "per-process range"], rows
    )
    return "\n".join(lines) + "\n"


def _flat_wall(row: Row) -> list[float]:
    return [value for process in row["wall_ns"] for value in process]


# --- imports, e2e, breakdown -------------------------------------------------


def render_imports(data: Row) -> str:
    """The import-cost measurement and its target."""
    delta = data["delta_ms"]
    passed = delta < IMPORT_MAX_MS and not data["frameworks"]
    rows = [
        [
            title,
            _fmt(data[f"bare_{key}_ms"], 1),
            _fmt(data[f"import_{key}_ms"], 1),
            _fmt(data[f"{key}_delta_ms"], 1),
            _fmt(data[f"{key}_delta_min_ms"], 1),
        ]
        for title, key in (
            ("-X importtime, top-level total", "importtime"),
            ("CPU time of the process", "cpu"),
            ("wall time of the process", "wall"),
        )
    ]
    heaviest = [
        [name, _fmt(own, 1), _fmt(cumulative, 1)]
        for name, own, cumulative in data["heaviest"]
    ]
    lines = [
        "## Import cost",
        "",
        f"Measured {data['machine']['date']}.",
        "",
        f"`{data['statement']}`: {data['repeat']} interpreter starts with it and"
        f" {data['repeat']} without, alternating; milliseconds, median;"
        f" load average after: {data.get('load_after')}.",
        "",
        *_table(
            ["measure (ms)", "bare start", "with the imports", "added", "added, min"],
            rows,
        ),
        "",
        f"Target: added < {IMPORT_MAX_MS:g} ms (-X importtime, median) and no"
        f" framework: **{_mark(passed)}** ({_fmt(delta, 1)} ms).",
        "",
        f"Framework modules loaded: {', '.join(data['frameworks']) or 'none'}.",
        "",
        "Costliest added modules (median ms, -X importtime):",
        "",
        *_table(["module", "self", "cumulative"], heaviest),
        "",
        f"All {len(data['added_modules'])} added modules:"
        f" {', '.join(data['added_modules'])}.",
    ]
    return "\n".join(lines) + "\n"


def e2e_ratio(data: Row, server: str, variant: str, app: str = "ours") -> float:
    """Median throughput with a middleware (*app*) over median without."""
    runs = [run for run in data["runs"] if run["server"] == server]
    with_app = [r["rps"] for r in runs if r["app"] == app and r["variant"] == variant]
    bare = [r["rps"] for r in runs if r["app"] == "bare" and r["variant"] == variant]
    if not with_app or not bare:
        return math.nan
    return float(statistics.median(with_app) / statistics.median(bare))


def render_e2e(data: Row) -> str:
    """Throughput through real servers, with and without the adapter."""
    rows = []
    for server in data["servers"]:
        for variant in data["variants"]:
            runs = [
                r
                for r in data["runs"]
                if r["server"] == server and r["variant"] == variant
            ]
            bare = [r for r in runs if r["app"] == "bare"]
            ours = [r for r in runs if r["app"] == "ours"]
            reference = [r for r in runs if r["app"] == "reference"]
            if not bare or not ours:
                continue
            ratio = e2e_ratio(data, server, variant)
            pairs = [
                o["rps"] / b["rps"]
                for b, o in zip(bare, ours, strict=False)
                if b["rps"]
            ]
            cpu = [
                statistics.median(r.get("server_cpu_us", math.nan) for r in rows_)
                if rows_
                else math.nan
                for rows_ in (bare, ours, reference)
            ]
            rows.append(
                [
                    f"{server}, {variant}",
                    f"{statistics.median(r['rps'] for r in bare):,.0f}",
                    f"{statistics.median(r['rps'] for r in ours):,.0f}",
                    _fmt(ratio, 3),
                    f"{_fmt(min(pairs), 2)} to {_fmt(max(pairs), 2)}",
                    _mark(ratio >= E2E_MIN_RATIO),
                    _fmt(e2e_ratio(data, server, variant, "reference"), 3),
                    " / ".join(_fmt(value, 1) for value in cpu),
                    _fmt(_divide(cpu[0], cpu[1]), 3),
                ]
            )
    lines = [
        "## End to end: requests per second on 127.0.0.1",
        "",
        f"Measured {data['machine']['date']}.",
        "",
        f"Load generator: {data['client']}. Per server and request kind,"
        f" {data['reps']} loads of each app (bare, with the adapter, with the"
        " reference middleware), the order reversed every other round,"
        f" {data['duration_s']:g} s each; medians;"
        f" load average after: {data.get('load_after')}. The reference's"
        " ratio shows the least a request-id middleware costs on that server."
        " The last two columns are the server's own CPU time per request (its"
        " process tree, from /proc), which other processes on the machine"
        " disturb far less than throughput: bare ÷ ours is the throughput"
        " ratio a CPU-bound server on a dedicated core would see.",
        "",
        *_table(
            [
                "server, request",
                "bare req/s",
                "with adapter req/s",
                f"ratio (target ≥ {E2E_MIN_RATIO})",
                "range of paired ratios",
                "status",
                "reference's ratio",
                "server CPU µs/request, bare / ours / reference",
                "CPU ratio bare ÷ ours",
            ],
            rows,
        ),
    ]
    return "\n".join(lines) + "\n"


def e2e_instructions(data: Row, server: str, variant: str) -> dict[str, float]:
    """Instructions per request of each app on *server*, by app name."""
    return {
        row["app"]: float(row["instructions"])
        for row in data["rows"]
        if row["server"] == server and row["variant"] == variant
    }


def e2e_counted_ratio(data: Row, server: str, variant: str) -> float:
    """Instructions per request without a middleware over those with ours."""
    counts = e2e_instructions(data, server, variant)
    return _divide(counts.get("bare", math.nan), counts.get("ours", math.nan))


def render_e2e_instructions(data: Row) -> str:
    """Each server's instructions per request, with and without the adapter."""
    rows = []
    for server in data["servers"]:
        for variant in data["variants"]:
            counts = e2e_instructions(data, server, variant)
            if "bare" not in counts or "ours" not in counts:
                continue
            bare = counts["bare"]
            ratio = _divide(bare, counts["ours"])
            rows.append(
                [
                    f"{server}, {variant}",
                    f"{bare:,.0f}",
                    f"{counts.get('echo', math.nan) - bare:+,.0f}",
                    f"{counts.get('reference', math.nan) - bare:+,.0f}",
                    f"{counts['ours'] - bare:+,.0f}",
                    _fmt(_divide(bare, counts.get("reference", math.nan)), 3),
                    _fmt(ratio, 3),
                    _mark(ratio >= E2E_MIN_RATIO),
                ]
            )
    lines = [
        "## End to end, counted: server instructions per request",
        "",
        f"Measured {data['machine']['date']} with {data['tool']}: each server"
        f" (all its processes) under valgrind, warmed up with {data['warmup']}"
        f" requests, then {data['requests']} counted over one keep-alive"
        " connection. The same counts on every run, whatever else the machine"
        " does. For a CPU-bound server throughput is the inverse of the work per"
        " request, so bare ÷ ours is the throughput ratio free of noise (without"
        " cache misses and system calls). *echo* is the bare app sending a"
        " constant X-Request-ID itself: what the server charges for the header"
        " any request-id middleware adds.",
        "",
        *_table(
            [
                "server, request",
                "bare",
                "+ echo (header only)",
                "+ reference",
                "+ ours",
                "reference's ratio",
                f"ratio bare ÷ ours (target ≥ {E2E_MIN_RATIO})",
                "status",
            ],
            rows,
        ),
    ]
    return "\n".join(lines) + "\n"


def render_breakdown(data: Row) -> str:
    """Where our adapters spend their time, component by component."""
    lines = [
        "## Profile hint: the core's seams and units of work, timed alone",
        "",
        f"Measured {data['machine']['date']}. CPU time per call, less an empty"
        " call's; each line marked 'for comparison' is what the lines after it"
        " replace or add to. The executor lines run on one CPU.",
        "",
        *_table(
            ["component", "ns per call"],
            [[name, f"{ns:,.0f}"] for name, ns in data["components"].items()],
        ),
        "",
    ]
    for title, text in data.get("profiles", {}).items():
        lines += [
            f"cProfile, {title} (top by own time):",
            "",
            "```text",
            text,
            "```",
            "",
        ]
    return "\n".join(lines)


def instructions_overhead(data: Row, group: str, candidate: str, variant: str) -> float:
    """A row's instructions per request minus the bare row's (same variant)."""
    rows = data["rows"]
    row = rows.get(f"{group}/{candidate}/{variant}")
    bare = rows.get(f"{group}/bare/{variant}")
    if row is None or bare is None:
        return math.nan
    return float(row["per_request"] - bare["per_request"])


def _render_units(rows: dict[str, typing.Any]) -> list[str]:
    """The ``units`` group: what a block, a carried call and a submit add."""
    if _units_key("bare") not in rows:
        return []
    table = []
    for name, (what, baseline) in _units.ROWS.items():
        row = rows.get(_units_key(name))
        if row is None:
            continue
        base = rows.get(_units_key(baseline)) if baseline else None
        added = (
            "" if base is None else f"{row['per_request'] - base['per_request']:+,.0f}"
        )
        table.append([f"{name}: {what}", f"{row['per_request']:,.0f}", baseline, added])
    return [
        "### Units of work outside requests",
        "",
        _UNITS_TEXT,
        "",
        *_table(["row", "instructions/unit", "baseline", "added to it"], table),
        "",
    ]


def render_instructions(data: Row) -> str:
    """Instructions per request (callgrind): the noise-free cross-check."""
    lines = [
        "## Instructions per request (valgrind callgrind)",
        "",
        f"Measured {data['machine']['date']}. Each row served two request counts"
        " in its own process under callgrind; instructions per request is the"
        " difference of the totals over the difference of the counts. The same"
        " program gives the same count whatever else the machine does, so these"
        " ratios carry no noise. They leave out cache misses and the time spent"
        " in the kernel, which CPU time includes: the system call that reads"
        " random bits (uuid4, os.urandom) is most of what generating an id"
        " costs, so the generated rows favour the reference here.",
        "",
    ]
    rows = data["rows"]
    for group, title in GROUP_TITLES.items():
        variants = [v for v in ("header", "generated") if f"{group}/bare/{v}" in rows]
        if not variants:
            continue
        table = []
        for variant in variants:
            reference = instructions_overhead(data, group, "reference", variant)
            ours = instructions_overhead(data, group, "ours", variant)
            for candidate in CANDIDATE_ORDER:
                row = rows.get(f"{group}/{candidate}/{variant}")
                if row is None:
                    continue
                overhead = instructions_overhead(data, group, candidate, variant)
                other = candidate not in ("bare", "ours")
                table.append(
                    [
                        f"{candidate}, {variant}",
                        f"{row['per_request']:,.0f}",
                        "" if candidate == "bare" else f"{overhead:,.0f}",
                        ""
                        if candidate == "bare"
                        else _fmt(_divide(overhead, reference)),
                        _fmt(_divide(ours, overhead)) if other else "",
                    ]
                )
        lines += [
            f"### {title}",
            "",
            *_table(
                [
                    "row",
                    "instructions/request",
                    "overhead",
                    "overhead ÷ reference's",
                    "ours ÷ this row's overhead",
                ],
                table,
            ),
            "",
        ]
    lines += _render_units(rows)
    checks = []
    for target in MICRO_TARGETS:
        ratio = _divide(
            instructions_overhead(data, target.group, target.ours, target.variant),
            instructions_overhead(data, target.group, target.other, target.variant),
        )
        if not math.isnan(ratio):
            checks.append([target.label, _fmt(ratio), f"≤ {target.limit:g}"])
    if checks:
        lines += [
            "### The in-process targets, counted in instructions",
            "",
            *_table(
                ["target", "instructions ratio", "limit (judged on CPU time)"], checks
            ),
            "",
        ]
    lines += render_floor(data)
    return "\n".join(lines)


def render_floor(data: Row) -> list[str]:
    """The floor: the reference with the contract's duties added one by one."""
    rows = data["rows"]
    lines: list[str] = []
    # [[rung, what it adds], ...] per group, saved by instructions.py.
    for group, ladder in data.get("floors", {}).items():
        for variant in ("header", "generated"):
            if f"{group}/{ladder[-1][0]}/{variant}" not in rows:
                continue
            reference = instructions_overhead(data, group, "reference", variant)
            ours = instructions_overhead(data, group, "ours", variant)
            table = []
            for candidate, duty in [
                ("reference", "(the reference middleware)"),
                *ladder,
                ("ours", "(this toolkit's adapter)"),
            ]:
                overhead = instructions_overhead(data, group, candidate, variant)
                table.append(
                    [
                        candidate,
                        duty,
                        f"{overhead:,.0f}",
                        _fmt(_divide(overhead, reference)),
                        "" if candidate == "ours" else _fmt(_divide(ours, overhead)),
                    ]
                )
            lines += [
                f"### The floor, {group.upper()}, {variant}",
                "",
                *_table(
                    [
                        "row",
                        "adds",
                        "overhead",
                        "÷ reference's",
                        "ours ÷ this row's",
                    ],
                    table,
                ),
                "",
                *_seams_line(data, group, variant, [name for name, _ in ladder]),
            ]
    if lines:
        lines[:0] = [
            "### The floor: the reference plus each duty of the contract",
            "",
            "The `floor` row does what the reference does, structured so that"
            " duties can be switched on; each `floor+` row has one more of the"
            " contract's duties than the row above, written inline in the"
            " simplest way (`bench/_floor.py`). The last inline row does what"
            " the adapter does for these requests: what those duties cost"
            f" written plainly. `{SEAMS_RUNG}` adds no duty: it does the same"
            " ones the way the adapters do, through the core's seams"
            " (`_ids.resolve`, `_context.begin`/`end`, `hide`/`restore`) and a"
            " per-request object instead of closures, so its difference from"
            " the row above is what calling the seams costs over the cheapest"
            " inline floor, and `ours ÷` on its line compares the adapter with"
            " the same design minus its hardening. `ours ÷` below 1 means the"
            " adapter does them for less.",
            "",
        ]
    return lines


#: The floor's last rung: the inline duties again, through the core's seams.
SEAMS_RUNG = "floor+seams"


def _seams_line(data: Row, group: str, variant: str, rungs: list[str]) -> list[str]:
    """One sentence: what the seams rung costs over the inline rung above it."""
    if SEAMS_RUNG not in rungs or rungs.index(SEAMS_RUNG) == 0:
        return []
    inline = rungs[rungs.index(SEAMS_RUNG) - 1]
    seams = instructions_overhead(data, group, SEAMS_RUNG, variant)
    floor = instructions_overhead(data, group, inline, variant)
    ours = instructions_overhead(data, group, "ours", variant)
    return [
        f"Calling the seams instead of inlining ({SEAMS_RUNG} over {inline}):"
        f" {seams - floor:+,.0f} instructions per request"
        f" ({_fmt(100 * _divide(seams - floor, floor), 1)} % of the inline"
        f" floor's overhead); the adapter over the seams rung:"
        f" {ours - seams:+,.0f}.",
        "",
    ]


def render_machine(machine: Row) -> str:
    """One paragraph: CPU, cores, OS, Python, load, versions."""
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    return (
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['platform']};"
        f" {machine['python']}; {machine['date']};"
        f" load average at start {machine['load_average']}.\n\nVersions: {versions}.\n"
    )


def render_all(results: Path) -> str:
    """The whole report for a results directory."""
    parts = ["# Benchmark report", ""]
    loaded: dict[str, Row] = {}
    for name in (
        "micro",
        "instructions",
        "imports",
        "e2e",
        "e2e_instructions",
        "breakdown",
    ):
        path = results / f"{name}.json"
        if path.exists():
            loaded[name] = json.loads(path.read_text())
    if "micro" in loaded:
        parts.append(render_machine(loaded["micro"]["machine"]))
        parts.append(render_micro(loaded["micro"]))
    if "instructions" in loaded:
        parts.append(render_instructions(loaded["instructions"]))
    if "e2e" in loaded:
        parts.append(render_e2e(loaded["e2e"]))
    if "e2e_instructions" in loaded:
        parts.append(render_e2e_instructions(loaded["e2e_instructions"]))
    if "imports" in loaded:
        parts.append(render_imports(loaded["imports"]))
    if "breakdown" in loaded:
        parts.append(render_breakdown(loaded["breakdown"]))
    return "\n".join(parts)


def _e2e_targets(
    data: Row, ratio: typing.Callable[[Row, str, str], float], tag: str
) -> list[tuple[str, bool]]:
    found = []
    for server in data["servers"]:
        for variant in data["variants"]:
            value = ratio(data, server, variant)
            if not math.isnan(value):
                label = f"e2e {server}, {variant}{tag}: ratio >= {E2E_MIN_RATIO}"
                found.append((label, value >= E2E_MIN_RATIO))
    return found


def all_targets(results: Path) -> list[tuple[str, bool]]:
    """Every target measured in a results directory, and whether it passed."""
    found: list[tuple[str, bool]] = []
    micro = results / "micro.json"
    if micro.exists():
        for label, _, limit, passed, _ in micro_targets(json.loads(micro.read_text())):
            if passed is not None:
                found.append((f"{label} {limit}", passed))
    for name, ratio, tag in (
        ("e2e", e2e_ratio, ""),
        ("e2e_instructions", e2e_counted_ratio, ", counted"),
    ):
        path = results / f"{name}.json"
        if path.exists():
            found.extend(_e2e_targets(json.loads(path.read_text()), ratio, tag))
    imports = results / "imports.json"
    if imports.exists():
        data = json.loads(imports.read_text())
        passed = data["delta_ms"] < IMPORT_MAX_MS and not data["frameworks"]
        found.append((f"imports < {IMPORT_MAX_MS:g} ms, no framework", passed))
    return found


def main(argv: list[str]) -> int:
    """Print and save the report of a results directory."""
    results = Path(argv[0]) if argv else HERE / "results"
    text = render_all(results)
    (results / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
