"""Adapters that connect the ``correlation`` core to a protocol.

Import the module for the protocol you serve: ``adapters.asgi`` for
Starlette, FastAPI and Django under ASGI, ``adapters.wsgi`` for Flask and
Django under WSGI. Each module has one public class, ``RequestIdMiddleware``;
code that needs both imports the modules (``from adapters import asgi, wsgi``).
Importing this package loads neither.
"""

from __future__ import annotations

__all__: list[str] = []
