"""The ASGI entry point: ``uvicorn shop.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

from adapters.asgi import RequestIdMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

# Around the whole application, so all of Django, streamed bodies and the
# request_finished signal included, runs with the id.
application = RequestIdMiddleware(get_asgi_application())
