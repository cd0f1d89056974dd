"""Request ids (correlation ids) that every framework sees the same way.

The core: the current id, read with ``get_request_id()``; ``Config``, the
header configuration every adapter shares; ``bound_request_id``, an id for
work that is not an HTTP request. It imports the standard library only; the
adapters in the ``adapters`` package feed it. ``correlation.logging``,
``correlation.sources`` and ``correlation.threads`` are its public submodules.
"""

from __future__ import annotations

from correlation._bound import bound_request_id
from correlation._context import get_request_id
from correlation._ids import default_validator, generate_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from correlation import logging as logging
    from correlation import sources as sources
    from correlation import threads as threads
    from correlation._config import Config
del TYPE_CHECKING

__all__ = [
    "Config",
    "bound_request_id",
    "default_validator",
    "generate_id",
    "get_request_id",
]

__version__ = "0.1.0"

# Exported objects name the module users import them from.
for _exported in (bound_request_id, default_validator, generate_id, get_request_id):
    _exported.__module__ = __name__
del _exported

#: Submodules loaded on first access, with what they cost: dataclasses (Config)
#: and the standard library's logging and threading are most of the package's
#: import cost, and library code that only calls get_request_id() needs none.
_LAZY_SUBMODULES = ("logging", "sources", "threads")


def __getattr__(name: str) -> object:
    if name == "Config":
        from correlation._config import Config

        globals()["Config"] = Config  # later lookups skip this function
        return Config
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"correlation.{name}")
    raise AttributeError(f"module 'correlation' has no attribute {name!r}")


def __dir__() -> list[str]:
    # What a reader may use, the lazy names included, and nothing private.
    return sorted({*__all__, *_LAZY_SUBMODULES, "__version__"})
