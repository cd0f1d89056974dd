"""Views that report what they see of the request id.

The plain views answer with JSON: the id from ``get_request_id()`` (read
before and after the view yields control), the request's own header as
Django shows it, and the thread that ran the view. The streaming views put the
id each chunk saw into that chunk. The error views raise.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import threading
from collections.abc import AsyncIterator, Iterator

from django.http import (
    FileResponse,
    HttpRequest,
    JsonResponse,
    StreamingHttpResponse,
)

from correlation import get_request_id

#: Chunks each streaming view sends.
CHUNKS = 3


class Probe:
    """What the async view does on a test's behalf, when one is installed.

    It records the view's context and waits, boundedly, until ``expected``
    requests are inside the view at once.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived = 0
        self.all_arrived = asyncio.Event()
        self.contexts: list[contextvars.Context] = []

    async def visit(self) -> None:
        self.contexts.append(contextvars.copy_context())
        self.arrived += 1
        if self.arrived >= self.expected:
            self.all_arrived.set()
        await asyncio.wait_for(self.all_arrived.wait(), timeout=10)


#: Installed by a test with ``monkeypatch.setattr``; ``None`` otherwise.
PROBE: Probe | None = None

#: Installed by a test with ``monkeypatch.setattr``; ``None`` otherwise.
#: ``environ_view`` waits on it (WSGI tests: each request has its own thread).
BARRIER: threading.Barrier | None = None


def _report(request: HttpRequest, before: str | None) -> JsonResponse:
    return JsonResponse(
        {
            "before": before,
            "after": get_request_id(),
            "header": request.headers.get("X-Request-ID"),
            "meta": request.META.get("HTTP_X_REQUEST_ID"),
            "thread": threading.get_ident(),
        }
    )


async def async_view(request: HttpRequest) -> JsonResponse:
    """Runs on the event loop."""
    before = get_request_id()
    if PROBE is not None:
        await PROBE.visit()
    await asyncio.sleep(0)
    return _report(request, before)


def sync_view(request: HttpRequest) -> JsonResponse:
    """Django runs it in a worker thread through ``sync_to_async``."""
    return _report(request, get_request_id())


def _chunk(index: int) -> bytes:
    return f"{index}:{get_request_id()}\n".encode()


def stream_sync_view(request: HttpRequest) -> StreamingHttpResponse:
    """Streams from a sync generator; each chunk is made when it is consumed."""

    def chunks() -> Iterator[bytes]:
        for index in range(CHUNKS):
            yield _chunk(index)

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def stream_async_view(request: HttpRequest) -> StreamingHttpResponse:
    """Streams from an async generator that yields control between chunks."""

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(CHUNKS):
            await asyncio.sleep(0)
            yield _chunk(index)

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def async_error_view(request: HttpRequest) -> JsonResponse:
    """Raises; Django turns it into a 500 response and logs it."""
    raise RuntimeError("async view failed")


def sync_error_view(request: HttpRequest) -> JsonResponse:
    """Raises in the worker thread; Django turns it into a 500 and logs it."""
    raise RuntimeError("sync view failed")


def environ_view(request: HttpRequest) -> JsonResponse:
    """A sync view that also reports the WSGI environ key.

    Under WSGI ``request.META`` is the environ, so it shows
    ``environ["correlation.request_id"]``; under ASGI that key is absent. Waits
    on ``BARRIER`` first, when a test installed one.
    """
    if BARRIER is not None:
        BARRIER.wait()
    return JsonResponse(
        {
            "context": get_request_id(),
            "header": request.headers.get("X-Request-ID"),
            "meta": request.META.get("HTTP_X_REQUEST_ID"),
            "environ": request.META.get("correlation.request_id"),
        }
    )


def file_view(request: HttpRequest) -> FileResponse:
    """A FileResponse: under WSGI Django hands it to ``wsgi.file_wrapper``."""
    return FileResponse(io.BytesIO(b"file body"), content_type="text/plain")


def own_header_view(request: HttpRequest) -> JsonResponse:
    """Sets the id header itself: the middleware must keep it, not add one."""
    response = _report(request, get_request_id())
    response["X-Request-ID"] = "view-chosen"
    return response
