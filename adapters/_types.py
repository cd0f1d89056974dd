"""Loose ASGI aliases for public signatures, shaped like ``starlette.types``.

``asgiref.typing``'s TypedDicts are precise, but under ``mypy --strict`` they
reject perfectly good wiring (wrapping a Starlette app, passing the middleware
to ``httpx.ASGITransport``), so the public surface uses these mappings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# What the middleware accepts as the app it wraps. Looser than ``ASGIApp`` on
# purpose: django-stubs types Django's handler as taking a ``dict`` scope and a
# ``send`` for any ``Mapping``, which no single precise alias reconciles with
# Starlette's ``MutableMapping`` types. Checking the awaitable return still
# rejects a WSGI app passed by mistake.
WrappedApp = Callable[..., Awaitable[None]]
