"""A Flask app whose every request has an id, in its logs and its response."""

import logging.config

from flask import Flask

from adapters.wsgi import RequestIdMiddleware
from correlation import get_request_id

# Before the app exists, as Flask's docs advise: Flask then adds no handler.
logging.config.dictConfig(
    {
        "version": 1,
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
    }
)

app = Flask(__name__)
# mypy refuses assignment to a method unless told; Flask documents this idiom.
app.wsgi_app = RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]


@app.get("/orders/<int:order_id>")
def read_order(order_id: int) -> dict[str, object]:
    app.logger.info("order %d requested", order_id)
    return {"order": order_id, "request_id": get_request_id()}
