"""Adapters that connect the ``correlation`` core to a protocol.

Import the module for the protocol you serve: ``adapters.asgi`` for
Starlette, FastAPI and Django ASGI. Each module has one public class,
``RequestIdMiddleware``, and importing this package loads neither.
"""

from __future__ import annotations

__all__: list[str] = []
