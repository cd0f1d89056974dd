"""The header configuration shared by every adapter and unit of work.

Importing this module costs most of the package's import time (``dataclasses``
pulls in ``inspect``), so nothing imports it until a ``Config`` is needed:
``correlation.Config`` is loaded on first access, and the adapters import it
when they are constructed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields

from correlation._ids import default_validator, generate_id, passes_floor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from correlation.sources import Source
del TYPE_CHECKING

# RFC 9110 section 5.1: field-name = token; token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

#: Header names that HTTP, servers or frameworks own, lowercased. Reading one
#: as the id would take the request's own framing or credentials, and echoing
#: one would break the response (a second Content-Length, a Set-Cookie).
RESERVED_HEADER_NAMES = frozenset(
    {
        # The contract's list.
        "authorization",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "location",
        "proxy-authorization",
        "proxy-connection",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        # Written by every server, or part of the response's framing too.
        "content-range",
        "date",
        "proxy-authenticate",
        "range",
        "server",
        "www-authenticate",
    }
)

#: Generator outputs drawn at construction. One that fits the validator nine
#: times in ten is caught with a probability of 1 - 0.9 ** 32, about 97 %; one
#: that fits half the time, all but once in four billion.
GENERATOR_SAMPLES = 32

#: How much of a value an error message quotes.
_QUOTED = 100


def shown(value: object) -> str:
    """``repr(value)``, quoting at most the first 100 characters of the value.

    Error messages show the value they reject, and a value can be a 300 KB
    header or a generator's runaway output.
    """
    if isinstance(value, (str, bytes)) and len(value) > _QUOTED:
        return f"{value[:_QUOTED]!r}... ({len(value)} characters in all)"
    text = repr(value)
    if len(text) > _QUOTED:
        return f"{text[:_QUOTED]}... ({len(text)} characters in all)"
    return text


class _Precomputed:
    """What the request path reads, decided once per Config.

    Slots of a plain base class, not dataclass fields: they are not part of
    the configuration (``fields``, ``repr``, equality, ``replace`` and
    ``asdict`` leave them out), and ``__post_init__`` recomputes them for
    every new instance, ``replace`` included.
    """

    __slots__ = ("_builtin_generator", "_default_rule", "_fallbacks")

    #: ``True`` when incoming values are trusted, checked by the default rule
    #: and not transformed: ``correlation._ids.resolve`` then runs the rule's
    #: first test inline.
    _default_rule: bool
    #: ``True`` when ids come from the built-in generator, which needs no
    #: guard against raising or returning junk.
    _builtin_generator: bool
    #: ``fallback_sources`` as ``correlation.sources.Source`` objects, a plain
    #: name made ``sources.header(name)``; empty when incoming values are not
    #: trusted, since nothing is read then.
    _fallbacks: tuple[Source, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Config(_Precomputed):
    """How a request id is read, checked, generated and echoed.

    Every field has a safe default, so ``Config()`` works as it is. A
    configuration that cannot work raises ``ValueError`` or ``TypeError`` here,
    at construction, never while serving a request.

    Args:
        header_name: The incoming header to read, matched case-insensitively,
            and the name used to echo the id. It must be an RFC 9110 token
            without ``_`` (most servers drop headers whose name holds one),
            and not a header that HTTP, the server or the framework own
            (``Host``, ``Content-Length``, ``Cookie``, ``Authorization`` and
            the like).
        trust_incoming: ``False`` ignores the client's value and always
            generates an id. Use it on public edges where clients are not
            trusted to choose ids.
        generator: Zero-argument callable returning a new id. Its output must
            pass the hard floor and the ``validator``; it is sampled several
            times here. The default makes UUID version 4 ids in their
            32-lowercase-hex form.
        validator: One-argument callable deciding whether an incoming value is
            acceptable. It only ever sees values that passed the hard floor.
            A rejected value is replaced by a generated id.
        transformer: ``None``, or a one-argument callable rewriting an
            accepted incoming value (to lowercase or shorten it, say). Its
            result must pass the hard floor and the ``validator`` too, else a
            generated id is used; one that raises counts as a rejection.
            Generated ids are never transformed.
        response_header: Echo the final id in the response under
            ``header_name``, unless the application set that header itself.
        update_request_header: Rewrite the request's own ``header_name``
            header so the framework sees the final id.
        fallback_sources: Further headers to read an id from, in order, when
            ``header_name`` is absent or its value is rejected: a header name
            (``"X-Correlation-ID"``) or a ``correlation.sources.Source`` (such
            as ``sources.traceparent()``). Each candidate goes through the
            hard floor, the validator and the transformer; the response and
            the rewritten request header use ``header_name`` only.
    """

    header_name: str = "X-Request-ID"
    trust_incoming: bool = True
    generator: Callable[[], str] = generate_id
    validator: Callable[[str], bool] = default_validator
    transformer: Callable[[str], str] | None = None
    response_header: bool = True
    update_request_header: bool = True
    fallback_sources: tuple[str | Source, ...] = ()

    def __post_init__(self) -> None:
        _check_header_name(self.header_name)
        for name in ("trust_incoming", "response_header", "update_request_header"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {shown(value)}")
        if not callable(self.validator):
            raise TypeError(
                f"validator must be a callable taking one str and returning a bool,"
                f" got {shown(self.validator)}"
            )
        if self.transformer is not None and not callable(self.transformer):
            raise TypeError(
                f"transformer must be None or a callable taking one str and"
                f" returning a str, got {shown(self.transformer)}"
            )
        if not callable(self.generator):
            raise TypeError(
                f"generator must be a zero-argument callable returning a str,"
                f" got {shown(self.generator)}"
            )
        _check_generator(self.generator, self.validator)
        fallbacks = _fallbacks(self.header_name, self.fallback_sources)
        # A list is accepted and kept as a tuple, so the Config stays hashable.
        object.__setattr__(self, "fallback_sources", tuple(self.fallback_sources))
        object.__setattr__(self, "_fallbacks", fallbacks if self.trust_incoming else ())
        # The instance is frozen: set the precomputed slots as dataclasses
        # documents for __post_init__ of a frozen class.
        object.__setattr__(
            self,
            "_default_rule",
            self.trust_incoming
            and self.validator is default_validator
            and self.transformer is None,
        )
        object.__setattr__(self, "_builtin_generator", self.generator is generate_id)

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt through __init__, so a copy or an unpickled Config is checked
        # again and gets its precomputed slots (dataclasses' own slots state
        # would restore the fields only).
        return (_rebuild, ({f.name: getattr(self, f.name) for f in fields(self)},))


Config.__module__ = "correlation"


def _rebuild(values: dict[str, object]) -> Config:
    return Config(**values)  # type: ignore[arg-type]


#: The one ``Config()`` that ``config=None`` means, made on first use. A
#: Config is immutable, so every user can share it; making one draws 32
#: generator samples, which a ``bound_request_id()`` per queue message would
#: otherwise pay each time (14 us instead of 0.3 us per block, measured).
_default: Config | None = None


def config_or_default(config: Config | None) -> Config:
    """Return *config*, or the shared ``Config()`` for ``None``."""
    global _default
    if config is None:
        if _default is None:
            _default = Config()
        return _default
    if not isinstance(config, Config):
        raise TypeError(
            f"config must be a correlation.Config or None, got {shown(config)}"
        )
    return config


def _check_header_name(value: object, field: str = "header_name") -> str:
    """Refuse what cannot be a header name to read and echo, naming *field*."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {shown(value)}")
    if not value:
        raise ValueError(
            f"{field} must be a non-empty header token, got {shown(value)}"
        )
    if _TOKEN.fullmatch(value) is None:
        raise ValueError(
            f"{field} must be an RFC 9110 token (letters, digits and"
            f" !#$%&'*+-.^_`|~ only), got {shown(value)}"
        )
    if "_" in value:
        raise ValueError(
            f"{field} must not contain '_' (most servers drop such headers),"
            f" got {shown(value)}; use '-' instead"
        )
    if value.lower() in RESERVED_HEADER_NAMES:
        raise ValueError(
            f"{field} must not be a header that HTTP, the server or the"
            f" framework own, got {shown(value)}; use a name of your own, such as"
            f" 'X-Request-ID'"
        )
    return value


def _fallbacks(header_name: str, entries: object) -> tuple[Source, ...]:
    """``fallback_sources`` as Sources, checked; errors name the field."""
    from correlation import sources

    if isinstance(entries, (str, bytes)) or not isinstance(entries, (tuple, list)):
        raise TypeError(
            f"fallback_sources must be a tuple of header names or"
            f" correlation.sources.Source objects, got {shown(entries)}"
        )
    found: list[Source] = []
    seen = {header_name.lower()}
    for entry in entries:
        if isinstance(entry, str):
            _check_header_name(entry, "fallback_sources")
            entry = sources.header(entry)
        elif not isinstance(entry, sources.Source):
            raise TypeError(
                f"fallback_sources entries must be header names or"
                f" correlation.sources.Source objects, got {shown(entry)}"
            )
        if entry.name.lower() in seen:
            raise ValueError(
                f"fallback_sources must not read a header twice (header_name"
                f" included), got {shown(entry.name)} again"
            )
        seen.add(entry.name.lower())
        found.append(entry)
    return tuple(found)


def _check_generator(
    generator: Callable[[], str], validator: Callable[[str], bool]
) -> None:
    """Draw several ids, so a generator that fails now and then fails now."""
    custom = validator is not default_validator
    for _ in range(GENERATOR_SAMPLES):
        try:
            sample = generator()
        except Exception as exc:
            raise ValueError(
                f"generator must return a new id when called with no arguments,"
                f" but {shown(generator)} raised {shown(exc)}"
            ) from exc
        if not passes_floor(sample):
            raise ValueError(
                f"generator must return a str of 1 to 1024 visible ASCII characters"
                f" (the hard floor), got {shown(sample)} from {shown(generator)}"
            )
        try:
            accepted = bool(validator(sample))
        except Exception as exc:
            raise ValueError(
                f"generator output must pass the validator, but the validator"
                f" raised {shown(exc)} on {shown(sample)} from {shown(generator)}"
            ) from exc
        if not accepted:
            advice = (
                "; pass a generator whose ids the validator accepts" if custom else ""
            )
            raise ValueError(
                f"generator output must pass the validator, but {shown(sample)}"
                f" from {shown(generator)} was rejected by {shown(validator)}"
                f"{advice}"
            )
