"""Pure functions that generate, normalise and check request ids.

Nothing here knows about ASGI, WSGI or the ContextVar: both adapters feed the
same strings through these functions, so they cannot disagree.
"""

from __future__ import annotations

import os
import re

#: Longest value the hard floor lets through. Far above any real id, and low
#: enough that a hostile 300 KB header is dropped after one length check.
MAX_FLOOR_LENGTH = 1024

#: Longest value the default rule accepts (a UUID is 36, a W3C trace-id 32).
MAX_DEFAULT_LENGTH = 128

# The default rule: letters, digits and the punctuation that common id schemes
# use (UUIDs, base64 with ``+/=``, ``service:id``, e-mail-like ``a@b``). ``,``
# is absent on purpose: a joined list of several values is not one id.
_DEFAULT_RULE = re.compile(rf"[A-Za-z0-9\-_.:/+=@~]{{1,{MAX_DEFAULT_LENGTH}}}")


def generate_id() -> str:
    """Return a new random id: 32 lowercase hex characters.

    The 128 bits come straight from the operating system's CSPRNG, the same
    strength as ``uuid.uuid4().hex`` without building a ``UUID`` object.
    """
    return os.urandom(16).hex()


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
    return _DEFAULT_RULE.fullmatch(value) is not None


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
