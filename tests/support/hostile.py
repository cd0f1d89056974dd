"""The hostile-input table: id header values no output may ever carry.

Not a test module. Every level of the suite draws its hostile values from
``HOSTILE``: the core's ``resolve`` and ``bound_request_id``, the driver
pair, each framework, each real server over a raw socket, a queue consumer.
A test picks the rows it can send (``plain_http`` ones through an HTTP
client; all of them through a raw socket or a hand-built scope) and, where it
uses a permissive validator, the rows the hard floor rejects
(``fails_floor``).

Each row is the header's occurrences as raw bytes, each holding ``MARKER``,
which no legitimate output contains; ``with_marker`` swaps in a fresh marker
per test. Wherever a server might split a value (at CR, LF or NUL), the part
before the split holds a space, so it is not a valid id either: whatever a
server makes of the row, the marker has no business coming back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["HOSTILE", "MARKER", "Hostile", "hostile_params", "needles", "select"]

#: In every hostile value; no legitimate output contains it.
MARKER = "EVIL"
_MARK = MARKER.encode("ascii")
#: Large enough that anything quadratic in it would show.
_KB300 = 300 * 1024


@dataclass(frozen=True)
class Hostile:
    """One hostile header: its occurrences and what they are."""

    name: str
    #: The occurrences as a client sends them, one header line each.
    occurrences: tuple[bytes, ...]
    #: The hard floor rejects it, so any validator does (else only the
    #: default rule does, and a permissive validator may keep it).
    fails_floor: bool
    #: Plain HTTP within every server's limits: an HTTP client sends it and
    #: every server must hand it to the app. The others (control characters,
    #: non-ASCII bytes, huge or countless headers) a client refuses to send
    #: and a server may refuse to take.
    plain_http: bool = False

    def with_marker(self, marker: bytes) -> tuple[bytes, ...]:
        """The occurrences with *marker* in place of ``MARKER``."""
        return tuple(value.replace(_MARK, marker) for value in self.occurrences)

    def joined(self, joiner: str = ", ") -> str:
        """The one value a WSGI server files the occurrences under (latin-1)."""
        return joiner.join(value.decode("latin-1") for value in self.occurrences)


def _row(
    name: str, *occurrences: bytes, floor: bool = True, plain: bool = False
) -> Hostile:
    return Hostile(name, occurrences, fails_floor=floor, plain_http=plain)


HOSTILE: tuple[Hostile, ...] = (
    # Injection: a second header, a forged log line, a truncated value.
    _row("crlf", b"EVIL x\r\nSet-Cookie: a=EVIL"),
    _row("bare-cr", b"EVIL x\rSet-Cookie: a=EVIL"),
    _row("bare-lf", b"EVIL x\nSet-Cookie: a=EVIL"),
    _row("lf-log-line", b"EVIL x\n2024-01-01 INFO forged EVIL"),
    _row("nul", b"EVIL x\x00tail"),
    # An obsolete line fold: a server may unfold it into one value.
    _row("obs-fold", b"EVIL x\r\n Set-Cookie: a=EVIL"),
    # Terminal control: colours, a window title, a cleared screen.
    _row("ansi-colour", b"\x1b[31mEVIL\x1b[0m"),
    _row("osc-window-title", b"\x1b]0;EVIL\x07"),
    _row("ansi-clear-screen", b"\x1b[2J\x1b[HEVIL"),
    _row("del", b"EVIL\x7f"),
    _row("tab", b"EVIL\tx"),
    # Outside visible ASCII.
    _row("utf-8", "EVIL-caf\u00e9".encode(), plain=True),
    _row("latin-1-bytes", b"EVIL\xff\xfe"),
    # Visible, but no id.
    _row("space", b"EVIL two words", plain=True),
    # An adapter reads a list as one value without the blanks: "EVIL,other".
    _row("comma-space", b"EVIL, other", floor=False, plain=True),
    _row("comma", b"EVIL,other", floor=False, plain=True),
    _row("semicolon", b"EVIL;x", floor=False, plain=True),
    _row("markup", b"<script>EVIL</script>", floor=False, plain=True),
    _row("129-chars", b"EVIL" + b"x" * 125, floor=False, plain=True),
    _row("1025-chars", b"EVIL" + b"x" * 1021, plain=True),
    _row("2000-chars", b"EVIL" + b"x" * 1996, plain=True),
    # Huge.
    _row("300-kb", b"EVIL" + b"x" * (_KB300 - 4)),
    _row("300-kb-of-crlf", b"EVIL x\r\n" * (_KB300 // 8)),
    _row("300-kb-of-commas", b"EVIL," * (_KB300 // 5)),
    # Repeated. A WSGI server joins repeats into one value, which a
    # permissive validator may keep when the joiner has no space.
    _row("repeated", b"EVIL-1", b"EVIL-2", floor=False, plain=True),
    _row("10000-duplicates", *[b"EVIL"] * 10_000),
    _row("10000-crlf-duplicates", *[b"EVIL x\r\nX: y"] * 10_000),
    _row("10000-mixed-duplicates", *[b"EVIL", b"\x00"] * 5_000),
    _row("duplicate-with-escape", b"EVIL", b"\x1b]0;x\x07"),
)


def select(
    *, fails_floor: bool | None = None, plain_http: bool | None = None
) -> list[Hostile]:
    """The rows, filtered on either property if given."""
    return [
        row
        for row in HOSTILE
        if fails_floor in (None, row.fails_floor)
        and plain_http in (None, row.plain_http)
    ]


def hostile_params(
    *, fails_floor: bool | None = None, plain_http: bool | None = None
) -> list[Any]:
    """``select``'s rows as ``pytest.param``, each named after its row."""
    return [
        pytest.param(row, id=row.name)
        for row in select(fails_floor=fails_floor, plain_http=plain_http)
    ]


def needles(occurrences: Iterable[bytes], marker: str = MARKER) -> set[str]:
    """Every form of a hostile value that must appear nowhere.

    The marker itself, and each whole value raw, stripped of blanks, escaped
    as Python would print it, and as ``unicode_escape`` writes it.
    """
    found = {marker}
    for value in occurrences:
        text = value.decode("latin-1")
        for form in (text, text.strip(" \t")):
            found.add(form)
            found.add(form.encode("unicode_escape").decode("ascii"))
            found.add(repr(form)[1:-1])
    found.discard("")
    return found
