"""The header configuration shared by every adapter.

Importing this module costs most of the package's import time (``dataclasses``
pulls in ``inspect``), so nothing imports it until a ``Config`` is needed:
``correlation.Config`` is loaded on first access, and the adapters import it
when they are constructed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from correlation._ids import default_validator, generate_id, passes_floor

# RFC 9110 section 5.1: field-name = token; token = 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """How an adapter reads, checks, generates and echoes the request id.

    Every field has a safe default, so ``Config()`` works as it is. A
    configuration that cannot work raises ``ValueError`` or ``TypeError`` here,
    at construction, never while serving a request.

    Args:
        header_name: The incoming header to read, matched case-insensitively,
            and the name used to echo the id. It must be an RFC 9110 token
            without ``_`` (most servers drop headers whose name holds one).
        trust_incoming: ``False`` ignores the client's value and always
            generates an id. Use it on public edges where clients are not
            trusted to choose ids.
        generator: Zero-argument callable returning a new id. Its output must
            pass the hard floor and the ``validator``.
        validator: One-argument callable deciding whether an incoming value is
            acceptable. It only ever sees values that passed the hard floor.
            A rejected value is replaced by a generated id.
        response_header: Echo the final id in the response under
            ``header_name``, unless the application set that header itself.
        update_request_header: Rewrite the request's own ``header_name``
            header so the framework sees the final id.

    .. versionadded:: 0.1
    """

    header_name: str = "X-Request-ID"
    trust_incoming: bool = True
    generator: Callable[[], str] = generate_id
    validator: Callable[[str], bool] = default_validator
    response_header: bool = True
    update_request_header: bool = True

    def __post_init__(self) -> None:
        _check_header_name(self.header_name)
        for name in ("trust_incoming", "response_header", "update_request_header"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        if not callable(self.validator):
            raise TypeError(
                f"validator must be a callable taking one str and returning a bool,"
                f" got {self.validator!r}"
            )
        if not callable(self.generator):
            raise TypeError(
                f"generator must be a zero-argument callable returning a str,"
                f" got {self.generator!r}"
            )
        _check_generator(self.generator, self.validator)


def config_or_default(config: Config | None) -> Config:
    """Return *config*, or ``Config()`` for ``None``; adapters call it once."""
    if config is None:
        return Config()
    if not isinstance(config, Config):
        raise TypeError(f"config must be a correlation.Config or None, got {config!r}")
    return config


def _check_header_name(value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"header_name must be a str, got {value!r}")
    if not value:
        raise ValueError(f"header_name must be a non-empty header token, got {value!r}")
    if _TOKEN.fullmatch(value) is None:
        raise ValueError(
            f"header_name must be an RFC 9110 token (letters, digits and"
            f" !#$%&'*+-.^_`|~ only), got {value!r}"
        )
    if "_" in value:
        raise ValueError(
            f"header_name must not contain '_' (most servers drop such headers),"
            f" got {value!r}; use '-' instead"
        )


def _check_generator(
    generator: Callable[[], str], validator: Callable[[str], bool]
) -> None:
    """Call the generator once so a broken one fails now, not per request."""
    try:
        sample = generator()
    except Exception as exc:
        raise ValueError(
            f"generator must return a new id when called with no arguments,"
            f" but {generator!r} raised {exc!r}"
        ) from exc
    if not passes_floor(sample):
        raise ValueError(
            f"generator must return a str of 1 to 1024 visible ASCII characters"
            f" (the hard floor), got {sample!r} from {generator!r}"
        )
    try:
        accepted = bool(validator(sample))
    except Exception as exc:
        raise ValueError(
            f"generator output must pass the validator, but the validator raised"
            f" {exc!r} on {sample!r} from {generator!r}"
        ) from exc
    if not accepted:
        raise ValueError(
            f"generator output must pass the validator, but {sample!r} from"
            f" {generator!r} was rejected by {validator!r}"
        )
