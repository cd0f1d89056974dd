"""URLconf of the test project (``djangoapp.ROOT_URLCONF``)."""

from __future__ import annotations

from django.urls import URLPattern, path

from . import views

urlpatterns: list[URLPattern] = [
    path("async/", views.async_view),
    path("sync/", views.sync_view),
    path("stream/sync/", views.stream_sync_view),
    path("stream/async/", views.stream_async_view),
    path("error/async/", views.async_error_view),
    path("error/sync/", views.sync_error_view),
    path("environ/", views.environ_view),
    path("file/", views.file_view),
    path("own-header/", views.own_header_view),
]
