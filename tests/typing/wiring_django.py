"""Django ASGI wiring as a user writes it in ``asgi.py``: type-checked, never run.

``mypy --strict`` checks this file together with django-stubs (no mypy
plugin). The file name does not start with ``test_``, so pytest never imports
it; nothing here configures Django.
"""

from __future__ import annotations

from django.core.asgi import get_asgi_application

from adapters.asgi import RequestIdMiddleware
from correlation import Config, default_validator

config = Config(
    header_name="X-Correlation-ID",
    trust_incoming=False,
    validator=lambda value: default_validator(value) and len(value) <= 64,
    update_request_header=True,
)

# django-stubs declares ASGIHandler.__call__(scope: dict[str, Any], receive,
# send: Callable[[Mapping[str, Any]], Awaitable[None]]); the middleware must
# accept it with no ``type: ignore``.
application = RequestIdMiddleware(get_asgi_application(), config=config)

default_application = RequestIdMiddleware(get_asgi_application())
