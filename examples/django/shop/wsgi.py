"""The WSGI entry point: ``gunicorn shop.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

from adapters.wsgi import RequestIdMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

# Around the whole application, so all of Django, streamed bodies and the
# request_finished signal included, runs with the id.
application = RequestIdMiddleware(get_wsgi_application())
