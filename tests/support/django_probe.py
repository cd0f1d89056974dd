"""Django's WSGI handler for the live-server tests, in a gunicorn worker.

Not a test module. ``wsgi_probe.build_site("django", ...)`` mounts what
``build_mounts`` returns: ``RequestIdMiddleware(get_wsgi_application())`` at
``/django``, and with ``Config(trust_incoming=False)`` at
``/django-untrusted``. The views answer the paths every probe app answers
(see ``wsgi_probe``); ``/error`` becomes Django's own 500 response, made
inside the adapter, and is logged by the ``django.request`` logger.

The project is the test project's (``djangoapp``): its sync-only and
async-only middleware (which report the id they saw on the way in and out in
response headers) and its ``sync/`` view, with this module as the URLconf.
Django is configured once per process, here, so a process that uses this
module uses no other Django settings: a gunicorn worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import djangoapp
import wsgi_probe
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path
from djangoapp import views as djangoapp_views

from adapters.wsgi import RequestIdMiddleware
from correlation import Config

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["build_mounts", "urlpatterns"]

_HEADER = "X-Request-ID"
_NDJSON = "application/x-ndjson"


def _seen(request: HttpRequest) -> bytes:
    return wsgi_probe.line(
        wsgi_probe.report(request.META, request.headers.get(_HEADER))
    )


def id_view(request: HttpRequest) -> HttpResponse:
    """One report line."""
    wsgi_probe.log_seen(request.META, "handler")
    return HttpResponse(_seen(request), content_type=_NDJSON)


def stream_view(request: HttpRequest) -> StreamingHttpResponse:
    """Report lines made as the server consumes the body."""
    wsgi_probe.log_seen(request.META, "handler")
    response = StreamingHttpResponse(
        wsgi_probe.stream_lines(request.META), content_type=_NDJSON
    )
    response["Content-Length"] = str(wsgi_probe.STREAM_CHUNKS * wsgi_probe.LINE_SIZE)
    return response


class _ClosingResponse(HttpResponse):
    """A response whose ``close()`` (Django's cleanup) records what it sees."""

    environ: WSGIEnvironment

    def close(self) -> None:
        super().close()
        wsgi_probe.record_close(self.environ, "/closing")


def closing_view(request: HttpRequest) -> HttpResponse:
    """One report line; the response's ``close()`` records too."""
    wsgi_probe.log_seen(request.META, "handler")
    response = _ClosingResponse(_seen(request), content_type=_NDJSON)
    response.environ = request.META
    return response


def long_view(request: HttpRequest) -> StreamingHttpResponse:
    """A body that runs until the server closes it."""
    return StreamingHttpResponse(
        wsgi_probe.long_body(request.META, request.headers.get(_HEADER)),
        content_type="application/octet-stream",
    )


def error_view(request: HttpRequest) -> HttpResponse:
    """Raises; Django turns it into its 500 response and logs it."""
    wsgi_probe.log_seen(request.META, "handler")
    raise RuntimeError(wsgi_probe.ERROR_MESSAGE)


urlpatterns: list[URLPattern] = [
    path("id", id_view),
    path("stream", stream_view),
    path("closing", closing_view),
    path("long", long_view),
    path("error", error_view),
    path("sync", djangoapp_views.sync_view),
]


def build_mounts(
    site: wsgi_probe.Site, check: Callable[[WSGIApplication], WSGIApplication]
) -> dict[str, WSGIApplication]:
    """The Django apps of a site, by mount point, each wrapped in *check*."""
    # Once per process: a gunicorn worker uses no other Django settings.
    djangoapp.configure_django(__name__, djangoapp.MIDDLEWARE)
    site.attach(logging.getLogger("django.request"))
    return {
        "/django": check(RequestIdMiddleware(get_wsgi_application())),
        "/django" + wsgi_probe.UNTRUSTED: check(
            RequestIdMiddleware(
                get_wsgi_application(), config=Config(trust_incoming=False)
            )
        ),
    }
