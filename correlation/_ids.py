"""Pure functions that generate, normalise, check and choose request ids.

Nothing here knows about ASGI, WSGI or the ContextVar: both adapters feed the
same strings through these functions, so they cannot disagree. It imports
``os`` only (no ``re``, no ``dataclasses``), so that code importing just
``get_request_id`` stays cheap to import.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from correlation._config import Config
del TYPE_CHECKING

#: Longest value the hard floor lets through. Far above any real id, and low
#: enough that a hostile 300 KB header is dropped after one length check.
MAX_FLOOR_LENGTH = 1024

#: Longest value the default rule accepts (a UUID is 36, a W3C trace-id 32).
MAX_DEFAULT_LENGTH = 128

# The default rule's characters: letters, digits and the punctuation that
# common id schemes use (UUIDs, base64 with ``+/=``, ``service:id``,
# e-mail-like ``a@b``). ``,`` is absent on purpose: a joined list of several
# values is not one id. ``bytes.translate`` deletes them; whatever is left
# breaks the rule. It is as fast as a compiled regex and needs no ``re``.
_DEFAULT_CHARACTERS = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=@~"
)


def default_accepts_bytes(value: bytes) -> bool:
    """Return whether the default rule accepts *value*, as ASCII bytes.

    Alphanumeric values (hex ids, this package's own among them) are decided
    by ``bytes.isalnum`` alone, which is ASCII-only for bytes.
    """
    if value.isalnum():
        return len(value) <= MAX_DEFAULT_LENGTH
    return 0 < len(value) <= MAX_DEFAULT_LENGTH and not value.translate(
        None, _DEFAULT_CHARACTERS
    )


#: Ids made per ``os.urandom`` call. A system call costs far more than slicing
#: a string, and this is the cost of every request that arrives without an id.
_BATCH = 64

# Ready-made ids, taken with ``list.pop``, which is atomic: threads never get
# the same one. The same approach as Node's ``crypto.randomUUID`` entropy
# cache and Go's ``uuid.EnableRandPool``.
_pool: list[str] = []

# Translation tables that set a UUID's version 4 and RFC 9562 variant bits in
# a whole batch at once: byte 6 becomes 0x4?, byte 8 one of 0x80 to 0xBF.
_VERSION_4 = bytes(range(0x40, 0x50)) * 16
_VARIANT_RFC = bytes(range(0x80, 0xC0)) * 4


def generate_id() -> str:
    """Return a new random id, a UUID version 4 in its 32-lowercase-hex form.

    The same shape and strength as ``uuid.uuid4().hex``: 122 random bits from
    the operating system's CSPRNG, with the version and variant bits set, so
    services whose validators expect UUID4s accept it. The bits are read 64
    ids at a time; a forked child process drops the ids it inherited, so two
    processes never share one.
    """
    try:
        return _pool.pop()
    except IndexError:
        return _refill()


def _refill() -> str:
    data = bytearray(os.urandom(16 * _BATCH))
    data[6::16] = data[6::16].translate(_VERSION_4)
    data[8::16] = data[8::16].translate(_VARIANT_RFC)
    # One hex string with a space after every 16 bytes, split at the spaces:
    # the ids are cut in C, not in a Python loop. 710 instructions less per
    # id than slicing the plain hex string (callgrind: 2.0k per id, was
    # 2.75k), 3 % of the Django middleware's overhead on a request without
    # an id, 2 % of the ASGI adapter's.
    ids = data.hex(" ", 16).split(" ")
    request_id = ids.pop()
    _pool.extend(ids)
    return request_id


if hasattr(os, "register_at_fork"):  # pragma: no branch - Windows has no fork
    os.register_at_fork(after_in_child=_pool.clear)


def passes_floor(value: object) -> bool:
    """Return whether *value* passes the hard floor no validator can lift.

    The floor accepts a non-empty ``str`` of at most 1024 characters, each of
    them visible ASCII (``!`` to ``~``). It rejects CR, LF, NUL, escape
    sequences, DEL, spaces, tabs and anything outside ASCII.
    """
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_FLOOR_LENGTH
        # isascii + isprintable leaves exactly U+0020..U+007E; then drop space.
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def default_validator(value: str) -> bool:
    """The default ``Config.validator``: 1 to 128 safe characters.

    Each character must be an ASCII letter, a digit, or one of
    ``- _ . : / + = @ ~``. Use it to build a stricter or looser rule of your
    own, e.g. ``lambda v: default_validator(v) and v.startswith("svc-")``.
    """
    return value.isascii() and default_accepts_bytes(value.encode("ascii"))


def join_header_values(values: list[str]) -> str:
    """Join header occurrences the way RFC 9110 reads a list-valued field.

    Every occurrence is split on ``,``, each piece is stripped of spaces and
    tabs at both ends, and the pieces are joined with ``,``. ASGI servers hand
    over each occurrence; WSGI servers join them first, with ``,`` or ``, ``.
    Either way the result is the same string.
    """
    if len(values) == 1:
        value = values[0]
        if "," not in value:
            # The common case: one occurrence holding one value.
            return value.strip(" \t")
    return ",".join(
        piece.strip(" \t") for value in values for piece in value.split(",")
    )


def _debug(message: str, *args: object, exc_info: bool = False) -> None:
    """Log on the package logger at DEBUG; only rejected or failing input does.

    ``logging`` is imported here, not at module level: it is most of the
    package's import cost, and a request with a valid id never logs.
    """
    import logging

    logging.getLogger("correlation").debug(message, *args, exc_info=exc_info)


def resolve(
    config: Config,
    incoming: str | None,
    read: Callable[[str], str | None] | None = None,
) -> str:
    """Return the id for a unit of work, given its incoming value or ``None``.

    *incoming* is the header's value with its occurrences joined (a WSGI
    server's ``HTTP_*`` value, or ``join_header_values`` of the ASGI ones), or
    a value that arrived some other way (``bound_request_id``, a message
    header). This is the one pipeline everything uses: the list rule, the hard
    floor, then the validator; anything rejected, absent or untrusted is
    replaced by a generated id. User hooks that raise never turn the request
    into an error. The rejected value itself is never logged: a log line is
    exactly where a forged CR/LF or escape sequence would do harm.

    *read*, given by an adapter whose config has ``fallback_sources``,
    returns a header's value by name as the server handed it (``None`` when
    absent); it is called only when *incoming* is absent or rejected, for
    each fallback in turn until one offers an acceptable candidate.
    """
    if incoming is not None and config.trust_incoming:
        if config._default_rule and incoming.isascii():
            # The default rule's fast path: checked on the bytes, where
            # ``bytes.isalnum`` (a hex or other alphanumeric id, this
            # package's own among them) decides most requests at a fifth of
            # ``str.isalnum``'s cost. The rule implies the hard floor and
            # leaves the list rule nothing to strip, so the rest of the
            # pipeline is skipped: 5,300 instructions per request with a
            # valid header (callgrind, both adapters; 16 % of the ASGI
            # adapter's overhead, 29 % of the WSGI one's).
            value = incoming.encode()
            if value.isalnum():
                if len(value) <= MAX_DEFAULT_LENGTH:
                    return incoming
            elif default_accepts_bytes(value):
                return incoming
        accepted = _accepted(config, join_header_values([incoming]))
        if accepted is not None:
            return accepted
    if read is not None and config._fallbacks:
        accepted = _from_fallbacks(config, read)
        if accepted is not None:
            return accepted
    if config._builtin_generator:
        return generate_id()
    return _generate(config)


def _from_fallbacks(config: Config, read: Callable[[str], str | None]) -> str | None:
    """The first acceptable candidate of ``config.fallback_sources``, if any."""
    for source in config._fallbacks:
        value = read(source.name)
        if value is None:
            continue
        candidate = source.candidate(join_header_values([value]))
        if candidate is None:
            continue
        accepted = _accepted(config, candidate, source.name)
        if accepted is not None:
            return accepted
    return None


def _accepted(config: Config, value: str, header: str | None = None) -> str | None:
    """*value* as the id, if it and its transformed form are acceptable.

    The value must pass the hard floor and the validator; then the
    ``transformer``, if any, rewrites it, and its result must pass both
    again. Anything rejected, or a transformer that raises, gives ``None``.
    """
    header = config.header_name if header is None else header
    accepted = _checked(config, value, "incoming", header)
    if accepted is None or config.transformer is None:
        return accepted
    try:
        transformed = config.transformer(accepted)
    except Exception as exc:
        # Only the exception's type: its message may quote the value.
        _debug("transformer raised %s; a new id is generated", type(exc).__name__)
        return None
    if not isinstance(transformed, str):
        _debug(
            "transformer returned a %s, not a str; a new id is generated",
            type(transformed).__name__,
        )
        return None
    if _checked(config, transformed, "transformed", header) is None:
        return None
    # A str subclass becomes a plain str: the id is data.
    return str.__str__(transformed)


def _checked(config: Config, value: str, what: str, header: str) -> str | None:
    """*value* if it passes the hard floor and the validator, else ``None``.

    *what* and *header* name the value in the DEBUG line about a rejection,
    which gives its length, never the value.
    """
    if not passes_floor(value):
        _debug(
            "%s %s value fails the hard floor (%d characters); a new id is generated",
            what,
            header,
            len(value),
        )
        return None
    try:
        if config.validator(value):
            return value
    except Exception as exc:
        # Only the exception's type: its message may quote the value.
        _debug("validator raised %s; a new id is generated", type(exc).__name__)
        return None
    _debug(
        "%s %s value rejected by the validator (%d characters); a new id is generated",
        what,
        header,
        len(value),
    )
    return None


def _generate(config: Config) -> str:
    """A new id from ``config.generator``, or the built-in one if it fails."""
    try:
        value = config.generator()
    except Exception:
        _debug("generator raised; the built-in generator is used", exc_info=True)
        return generate_id()
    if passes_floor(value):
        # A str subclass (a StrEnum, say) becomes a plain str: the id is data.
        return str.__str__(value)
    _debug("generator output fails the hard floor; the built-in one is used")
    return generate_id()
