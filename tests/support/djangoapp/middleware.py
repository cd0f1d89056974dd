"""Django middleware that report the request id they see in the response.

Each writes ``"<id on the way in>|<id on the way out>"`` into its own response
header (``-`` where there was none), so a test can read both from the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from correlation import get_request_id

SYNC_HEADER = "X-Seen-By-Sync-Middleware"
ASYNC_HEADER = "X-Seen-By-Async-Middleware"


def _seen() -> str:
    request_id = get_request_id()
    return "-" if request_id is None else request_id


class SyncOnlyMiddleware:
    """A sync-only middleware: Django runs it in a worker thread under ASGI."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        before = _seen()
        response = self.get_response(request)
        response[SYNC_HEADER] = f"{before}|{_seen()}"
        return response


class AsyncOnlyMiddleware:
    """An async-only middleware: Django awaits it on the event loop."""

    sync_capable = False
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
    ):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        before = _seen()
        response = await self.get_response(request)
        response[ASYNC_HEADER] = f"{before}|{_seen()}"
        return response


class HeadersFirstMiddleware:
    """Reads ``request.headers`` before anything else, so Django caches it."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request.headers.get("X-Request-ID")
        return self.get_response(request)
