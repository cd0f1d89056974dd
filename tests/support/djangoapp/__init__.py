"""A minimal Django project, served through ``get_asgi_application()``.

pytest puts ``tests/support`` on ``sys.path`` (``pythonpath`` in
pyproject.toml), so this is the top-level package ``djangoapp``.
``setup_django()`` configures settings once per process; the settings the
tests depend on are also exported, so a fixture can apply them with
``override_settings`` should another test module have configured Django
first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import django
from django.conf import settings

__all__ = [
    "MIDDLEWARE",
    "ROOT_URLCONF",
    "configure_django",
    "project_settings",
    "setup_django",
]

# Named from this package's own name, so the settings hold whichever way the
# package was imported.
ROOT_URLCONF = f"{__name__}.urls"

#: Outermost first. One sync-only and one async-only middleware, so Django has
#: to adapt each of them to the async handler (the sync one runs in a thread).
MIDDLEWARE = [
    f"{__name__}.middleware.SyncOnlyMiddleware",
    f"{__name__}.middleware.AsyncOnlyMiddleware",
]


def configure_django(root_urlconf: str, middleware: list[str], **extra: object) -> None:
    """Configure Django with the settings every test project shares, set it up.

    *extra* settings are added or override the shared ones. Logging is left
    alone (``LOGGING_CONFIG=None``): the handlers the tests and probes put on
    "django.request" must see its records unchanged. Later calls do nothing.
    """
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=root_urlconf,
        SECRET_KEY="correlation-toolkit-tests-not-secret",
        DATABASES={},
        INSTALLED_APPS=[],
        MIDDLEWARE=middleware,
        TEMPLATES=[],
        LOGGING_CONFIG=None,
        USE_TZ=True,
        **extra,
    )
    django.setup()


def setup_django() -> None:
    """Configure Django for these tests and set it up; later calls do nothing."""
    configure_django(ROOT_URLCONF, MIDDLEWARE)


@contextmanager
def project_settings() -> Iterator[None]:
    """Django set up, with this project's settings applied for the block.

    Another test module may have configured Django first: the settings this
    project needs are applied either way. Middleware load when a handler is
    built, so build it inside the block.
    """
    # Imported here: server processes import this package without the test
    # utilities.
    from django.test import override_settings

    setup_django()
    with override_settings(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=ROOT_URLCONF,
        MIDDLEWARE=MIDDLEWARE,
    ):
        yield
