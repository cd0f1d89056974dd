"""Request ids (correlation ids) that every framework sees the same way.

The core: the current id, read with ``get_request_id()``, and ``Config``, the
header configuration both adapters share. It imports the standard library
only; the adapters in the ``adapters`` package feed it.
"""

from __future__ import annotations

from correlation._config import Config
from correlation._context import get_request_id
from correlation._ids import default_validator, generate_id

__all__ = ["Config", "default_validator", "generate_id", "get_request_id"]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # correlation.logging is loaded on first use, not with the package: the
    # standard library's logging is most of the package's import cost.
    if name == "logging":
        import importlib

        return importlib.import_module("correlation.logging")
    raise AttributeError(f"module 'correlation' has no attribute {name!r}")
