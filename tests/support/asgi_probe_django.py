"""The Django flavour of the ASGI probe: a server target, built at import.

Only server subprocesses import it (daphne and gunicorn take an attribute,
``asgi_probe_django:application``), so configuring Django here, as a
project's ``asgi.py`` does, touches no test process. The views mirror the
Starlette endpoints of ``asgi_probe``; Django's own ASGI handler turns the
exception of ``/error`` into a 500 inside the adapter and logs it to
``django.request``, which the probe captures with its request id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asgi_probe
import djangoapp
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import URLPattern, path

from correlation import get_request_id


def _scope(request: HttpRequest) -> Mapping[str, Any]:
    assert isinstance(request, ASGIRequest)
    return request.scope


def _framework_header(request: HttpRequest) -> str | None:
    return request.headers.get("x-request-id")


async def id_view(request: HttpRequest) -> HttpResponse:
    """Runs on the event loop; reads the id before and after awaiting."""
    scope = _scope(request)
    first = get_request_id()
    asgi_probe.log_event("id", scope)
    await asyncio.sleep(0)
    middle = get_request_id()
    await asyncio.sleep(0.001)
    ids = [first, middle, get_request_id()]
    return JsonResponse(
        asgi_probe.report(scope, ids, framework_header=_framework_header(request))
    )


def sync_view(request: HttpRequest) -> HttpResponse:
    """Django runs it in a worker thread through ``sync_to_async``."""
    scope = _scope(request)
    asgi_probe.log_event("sync", scope)
    return JsonResponse(
        asgi_probe.report(
            scope, [get_request_id()], framework_header=_framework_header(request)
        )
    )


async def stream_view(request: HttpRequest) -> HttpResponseBase:
    """Streams from an async generator; each line is made after an await."""
    return StreamingHttpResponse(
        asgi_probe.stream_lines(_scope(request)),
        content_type="application/x-ndjson",
    )


async def long_view(request: HttpRequest) -> HttpResponseBase:
    """Streams until the client leaves (Django cancels it) or time runs out."""
    return StreamingHttpResponse(
        asgi_probe.long_chunks(_scope(request)),
        content_type="application/octet-stream",
    )


async def upload_view(request: HttpRequest) -> HttpResponse:
    """Django read the whole body before the view runs."""
    scope = _scope(request)
    return JsonResponse(
        asgi_probe.report(scope, [get_request_id()], size=len(request.body))
    )


class _LingeringResponse(JsonResponse):
    """A JSON response that lingers in ``close()``.

    Django's ASGI handler calls ``close()`` in a thread (``sync_to_async``)
    after the response was sent, before it returns.
    """

    def __init__(
        self, data: dict[str, Any], target: tuple[asgi_probe.Store, str, str] | None
    ) -> None:
        super().__init__(data)
        self.target = target

    def close(self) -> None:
        asgi_probe.linger_sync(self.target)
        super().close()


async def linger_view(request: HttpRequest) -> HttpResponse:
    """Answers, then lingers in the response's ``close()``."""
    scope = _scope(request)
    return _LingeringResponse(
        asgi_probe.report(scope, [get_request_id()], size=len(request.body)),
        asgi_probe.linger_target(scope),
    )


async def error_view(request: HttpRequest) -> HttpResponse:
    """Raises; Django answers 500 inside the adapter and logs the error."""
    scope = _scope(request)
    asgi_probe.log_event("error", scope)
    raise RuntimeError(asgi_probe.escape_message(asgi_probe.request_token(scope)))


urlpatterns: list[URLPattern] = [
    path("id", id_view),
    path("untrusted", id_view),
    path("sync", sync_view),
    path("stream", stream_view),
    path("long", long_view),
    path("upload", upload_view),
    path("linger", linger_view),
    path("error", error_view),
]

# Django's error log goes to stderr through the root logger's last resort,
# and to the probe's capturing handler. /upload receives more than the
# default 2.5 MB limit allows in memory.
djangoapp.configure_django(__name__, [], DATA_UPLOAD_MAX_MEMORY_SIZE=None)
asgi_probe.capture_logs("django.request")

#: What daphne and gunicorn serve.
application = asgi_probe.build_app(get_asgi_application())
