"""Request ids (correlation ids) that every framework sees the same way.

The core: the current id, read with ``get_request_id()``, and ``Config``, the
header configuration both adapters share. It imports the standard library
only; the adapters in the ``adapters`` package feed it.
"""

from __future__ import annotations

from correlation._context import get_request_id
from correlation._ids import default_validator, generate_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from correlation._config import Config

__all__ = ["Config", "default_validator", "generate_id", "get_request_id"]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Config and correlation.logging are loaded on first use, not with the
    # package: dataclasses (Config) and the standard library's logging are
    # most of its import cost, and library code that only calls
    # get_request_id() needs neither.
    if name == "Config":
        from correlation._config import Config

        globals()["Config"] = Config  # later lookups skip this function
        return Config
    if name == "logging":
        import importlib

        return importlib.import_module("correlation.logging")
    raise AttributeError(f"module 'correlation' has no attribute {name!r}")
