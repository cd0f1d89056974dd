"""Request ids (correlation ids) that every framework sees the same way.

The core: the current id, read with ``get_request_id()``, and ``Config``, the
header configuration both adapters share. It imports the standard library
only; the adapters in the ``adapters`` package feed it.
"""

from __future__ import annotations

from correlation import logging  # noqa: F401  (makes correlation.logging reachable)
from correlation._config import Config
from correlation._context import get_request_id
from correlation._ids import default_validator, generate_id

__all__ = ["Config", "default_validator", "generate_id", "get_request_id"]

__version__ = "0.1.0"
