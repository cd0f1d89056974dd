"""Further places an incoming id can come from: other headers, and their formats.

Real traffic arrives with the id under other names: ``X-Correlation-ID`` from
.NET and Java callers, ``X-Amzn-Trace-Id`` from AWS load balancers, W3C
``traceparent`` from any OpenTelemetry-instrumented client. A ``Source``
names such a header and says how to get a candidate id out of its value;
``header``, ``traceparent`` and ``aws_trace_root`` make the common ones.
They are meant for ``Config.fallback_sources``, read in order after
``header_name``.

A source is given the header's value as the adapters read every id header:
an RFC 9110 list, every occurrence split on ``,``, each piece stripped of
spaces and tabs, joined with ``,``. What it returns is a candidate only: it
still goes through the hard floor and the validator like any incoming value.
A source never raises into a request: a parse function that raises, or
returns something other than a ``str`` or ``None``, yields no candidate.

Standard library only, and nothing is logged here: a rejected value is
never written anywhere.
"""

from __future__ import annotations

import dataclasses

from correlation import _config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
del TYPE_CHECKING

__all__ = ["Source", "aws_trace_root", "header", "traceparent"]

_LOWER_HEX = frozenset("0123456789abcdef")
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """A header to read an id from, and how to get the id out of its value.

    Args:
        name: The header's name, matched case-insensitively; the same rules
            as ``Config.header_name``.
        parse: Called with the header's joined value (see the module's
            docstring); returns the candidate id, or ``None`` for none.
    """

    name: str
    parse: Callable[[str], str | None]

    def __post_init__(self) -> None:
        _config._check_header_name(self.name, "Source name")
        if not callable(self.parse):
            raise TypeError(
                f"Source parse must be a callable taking the header's value and"
                f" returning a str or None, got {_config.shown(self.parse)}"
            )

    def candidate(self, value: str) -> str | None:
        """The id this source offers for the joined header *value*, if any.

        Never raises: a parse function that does yields no candidate (and is
        not logged, since its message may quote the value).
        """
        try:
            found = self.parse(value)
        except Exception:
            return None
        return found if isinstance(found, str) else None


def _as_is(value: str) -> str:
    return value


def header(name: str) -> Source:
    """The header *name*, its value taken as the id, as for ``header_name``.

    A plain header name in ``Config.fallback_sources`` means this.
    """
    return Source(name, _as_is)


def _is_lower_hex(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _LOWER_HEX


def _traceparent_id(value: str) -> str | None:
    """The trace-id of a valid W3C ``traceparent`` *value*, else ``None``.

    The W3C Trace Context rules: ``version-traceid-parentid-flags``, lowercase
    hex only; version ``ff`` is invalid; version ``00`` is exactly 55
    characters, a higher version at least 55 with ``-`` or the end after the
    flags; trace-id and parent-id are not all zeros. Surrounding spaces and
    tabs are ignored; more than one value (a ``,``) is invalid.
    """
    value = value.strip(" \t")
    if "," in value or len(value) < 55:
        return None
    version, trace_id, parent_id, flags = (
        value[0:2],
        value[3:35],
        value[36:52],
        value[53:55],
    )
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    if not (
        _is_lower_hex(version, 2)
        and _is_lower_hex(trace_id, 32)
        and _is_lower_hex(parent_id, 16)
        and _is_lower_hex(flags, 2)
    ):
        return None
    if version == "ff":
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def traceparent(name: str = "traceparent") -> Source:
    """The trace-id (32 lowercase hex) of a valid W3C ``traceparent`` header.

    An OpenTelemetry-instrumented caller's trace then becomes the request's
    id. Valid by the W3C Trace Context rules: ``version-traceid-parentid-flags``
    in lowercase hex, version ``ff`` invalid, version ``00`` exactly 55
    characters (a higher one at least 55, with ``-`` or the end after the
    flags), trace-id and parent-id not all zeros, one value only. Anything
    else yields no candidate.
    """
    return Source(name, _traceparent_id)


def _is_aws_root(value: str) -> bool:
    # 1-{8 hex: the epoch seconds}-{24 lowercase hex}
    return (
        len(value) == 35
        and value[0:2] == "1-"
        and value[10] == "-"
        and set(value[2:10]) <= _HEX
        and set(value[11:35]) <= _LOWER_HEX
    )


def _aws_root(value: str) -> str | None:
    """The ``Root`` field of an ``X-Amzn-Trace-Id`` *value*, else ``None``.

    Fields are split on ``;``, each on its first ``=``; there must be
    exactly one ``Root`` field, of the form ``1-`` + 8 hex + ``-`` + 24
    lowercase hex. ``Self``, ``Parent``, ``Sampled`` and custom fields are
    ignored (``Self`` is a per-hop id, not the trace's). Anything malformed,
    including a second value (a ``,``), yields ``None``, never an error.
    """
    if "," in value:
        return None
    roots = []
    for field in value.split(";"):
        field = field.strip(" \t")
        if not field:
            continue
        key, equals, field_value = field.partition("=")
        if not equals:
            return None
        if key.strip(" \t") == "Root":
            roots.append(field_value.strip(" \t"))
    if len(roots) != 1 or not _is_aws_root(roots[0]):
        return None
    return roots[0]


def aws_trace_root(name: str = "X-Amzn-Trace-Id") -> Source:
    """The ``Root`` trace id of an AWS ``X-Amzn-Trace-Id`` header.

    AWS load balancers and API Gateway add it, as in
    ``Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1``. Only ``Root``
    counts (``Self`` is a per-hop id); a value with no ``Root``, two, a
    malformed one, a field without ``=`` or a second header yields no
    candidate, never an error.
    """
    return Source(name, _aws_root)
