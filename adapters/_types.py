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
