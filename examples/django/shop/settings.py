"""Settings of a tiny Django project: no database, one view, ids in every log line."""

SECRET_KEY = "replace-me"  # an example: read yours from the environment
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"  # runserver goes through the adapter too

# First, so every middleware after it and the view see the id. It adopts the id
# of the adapter in asgi.py or wsgi.py, and serves Django's test client alone.
MIDDLEWARE = [
    "adapters.django.RequestIdMiddleware",
    "django.middleware.common.CommonMiddleware",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "correlation.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(levelname)s [%(request_id)s] %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "plain",
        }
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    # Replaces Django's own handlers, which would print django.request's lines
    # (a 404's "Not Found") a second time, without the id.
    "loggers": {"django": {"handlers": ["console"], "propagate": False}},
}
