"""A minimal Django project, served through ``get_asgi_application()``.

pytest puts ``tests/support`` on ``sys.path`` (``pythonpath`` in
pyproject.toml), so this is the top-level package ``djangoapp``.
``setup_django()`` configures settings once per process; the settings the
tests depend on are also exported, so a fixture can apply them with
``override_settings`` should another test module have configured Django
first.
"""

from __future__ import annotations

import django
from django.conf import settings

__all__ = ["MIDDLEWARE", "ROOT_URLCONF", "setup_django"]

# Named from this package's own name, so the settings hold whichever way the
# package was imported.
ROOT_URLCONF = f"{__name__}.urls"

#: Outermost first. One sync-only and one async-only middleware, so Django has
#: to adapt each of them to the async handler (the sync one runs in a thread).
MIDDLEWARE = [
    f"{__name__}.middleware.SyncOnlyMiddleware",
    f"{__name__}.middleware.AsyncOnlyMiddleware",
]


def setup_django() -> None:
    """Configure Django for these tests and set it up; later calls do nothing."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=ROOT_URLCONF,
        SECRET_KEY="correlation-toolkit-tests-not-secret",
        DATABASES={},
        INSTALLED_APPS=[],
        MIDDLEWARE=MIDDLEWARE,
        TEMPLATES=[],
        # Leave logging alone: pytest's caplog and the tests' own handlers
        # must see the "django.request" records unchanged.
        LOGGING_CONFIG=None,
        USE_TZ=True,
    )
    django.setup()
