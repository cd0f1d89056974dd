"""MkDocs hook: the API reference documents every public name, page by page.

``PAGES`` says which reference page documents which names; after each of those
pages is rendered, every name must have its anchor there (mkdocstrings gives
each documented object ``id="<its path>"``). A name missing from its page fails
the build. ``tests/test_docs.py`` checks that ``PAGES`` lists exactly the
public API: every module's ``__all__`` and every ``Config`` field.
"""

from __future__ import annotations

from typing import Any

CONFIG_FIELDS = (
    "header_name",
    "trust_incoming",
    "generator",
    "validator",
    "transformer",
    "response_header",
    "update_request_header",
    "fallback_sources",
)

PAGES: dict[str, tuple[str, ...]] = {
    "reference/core.md": (
        "correlation.get_request_id",
        "correlation.Config",
        *(f"correlation.Config.{field}" for field in CONFIG_FIELDS),
        "correlation.bound_request_id",
        "correlation.generate_id",
        "correlation.default_validator",
        "correlation.logging.RequestIdFilter",
        "correlation.threads.carry",
        "correlation.threads.ThreadPoolExecutor",
        "correlation.threads.Thread",
        "correlation.sources.Source",
        "correlation.sources.header",
        "correlation.sources.traceparent",
        "correlation.sources.aws_trace_root",
    ),
    "reference/middleware.md": (
        "adapters.asgi.RequestIdMiddleware",
        "adapters.wsgi.RequestIdMiddleware",
        "adapters.django.RequestIdMiddleware",
    ),
    "reference/outbound.md": (
        "adapters.httpx.propagate",
        "adapters.httpx.RequestIdHook",
        "adapters.requests.propagate",
        "adapters.requests.RequestIdAdapter",
        "adapters.aiohttp.RequestIdClientMiddleware",
    ),
    "reference/celery.md": (
        "adapters.celery.connect",
        "adapters.celery.disconnect",
        "adapters.celery.DEFAULT_HEADER_KEY",
    ),
    "reference/logs-and-traces.md": (
        "adapters.structlog.add_request_id",
        "adapters.loguru.patcher",
        "adapters.sentry.install",
        "adapters.opentelemetry.RequestIdSpanProcessor",
        "adapters.opentelemetry.trace_id_or_new",
    ),
}

_checked: set[str] = set()


def on_post_page(output: str, page: Any, config: Any) -> str:
    names = PAGES.get(page.file.src_uri)
    if names is None:
        return output
    missing = [name for name in names if f'id="{name}"' not in output]
    if missing:
        # Imported here, so that the test suite can read PAGES without MkDocs.
        from mkdocs.exceptions import PluginError

        raise PluginError(
            f"{page.file.src_uri} does not document: {', '.join(missing)}"
        )
    _checked.add(page.file.src_uri)
    return output


def on_post_build(config: Any) -> None:
    unbuilt = sorted(set(PAGES) - _checked)
    _checked.clear()
    if unbuilt:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"API reference pages not built: {', '.join(unbuilt)}")
