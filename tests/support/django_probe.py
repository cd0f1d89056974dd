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

import django
import djangoapp
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path
from djangoapp import views as djangoapp_views
from wsgi_probe import (
    ERROR_MESSAGE,
    LINE_SIZE,
    STREAM_CHUNKS,
    UNTRUSTED,
    Site,
    line,
    log_seen,
    long_body,
    record_close,
    report,
    stream_lines,
)

from adapters.wsgi import RequestIdMiddleware
from correlation import Config

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["build_mounts", "urlpatterns"]

_HEADER = "X-Request-ID"
_NDJSON = "application/x-ndjson"


def _seen(request: HttpRequest) -> bytes:
    return line(report(request.META, request.headers.get(_HEADER)))


def id_view(request: HttpRequest) -> HttpResponse:
    """One report line."""
    log_seen(request.META, "handler")
    return HttpResponse(_seen(request), content_type=_NDJSON)


def stream_view(request: HttpRequest) -> StreamingHttpResponse:
    """Report lines made as the server consumes the body."""
    log_seen(request.META, "handler")
    response = StreamingHttpResponse(stream_lines(request.META), content_type=_NDJSON)
    response["Content-Length"] = str(STREAM_CHUNKS * LINE_SIZE)
    return response


class _ClosingResponse(HttpResponse):
    """A response whose ``close()`` (Django's cleanup) records what it sees."""

    environ: WSGIEnvironment

    def close(self) -> None:
        super().close()
        record_close(self.environ, "/closing")


def closing_view(request: HttpRequest) -> HttpResponse:
    """One report line; the response's ``close()`` records too."""
    log_seen(request.META, "handler")
    response = _ClosingResponse(_seen(request), content_type=_NDJSON)
    response.environ = request.META
    return response


def long_view(request: HttpRequest) -> StreamingHttpResponse:
    """A body that runs until the server closes it."""
    return StreamingHttpResponse(
        long_body(request.META, request.headers.get(_HEADER)),
        content_type="application/octet-stream",
    )


def error_view(request: HttpRequest) -> HttpResponse:
    """Raises; Django turns it into its 500 response and logs it."""
    log_seen(request.META, "handler")
    raise RuntimeError(ERROR_MESSAGE)


urlpatterns: list[URLPattern] = [
    path("id", id_view),
    path("stream", stream_view),
    path("closing", closing_view),
    path("long", long_view),
    path("error", error_view),
    path("sync", djangoapp_views.sync_view),
]


def _setup() -> None:
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="correlation-toolkit-tests-not-secret",
        DATABASES={},
        INSTALLED_APPS=[],
        MIDDLEWARE=djangoapp.MIDDLEWARE,
        TEMPLATES=[],
        # Leave logging alone: the site's handler on "django.request" is the
        # one that must see the 500's record.
        LOGGING_CONFIG=None,
        USE_TZ=True,
    )
    django.setup()


def build_mounts(
    site: Site, check: Callable[[WSGIApplication], WSGIApplication]
) -> dict[str, WSGIApplication]:
    """The Django apps of a site, by mount point, each wrapped in *check*."""
    _setup()
    site.attach(logging.getLogger("django.request"))
    return {
        "/django": check(RequestIdMiddleware(get_wsgi_application())),
        "/django" + UNTRUSTED: check(
            RequestIdMiddleware(
                get_wsgi_application(), config=Config(trust_incoming=False)
            )
        ),
    }
