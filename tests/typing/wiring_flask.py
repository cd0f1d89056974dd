"""Flask and Django WSGI wiring as users write it: type-checked, never run.

``mypy --strict`` checks this file; pytest never imports it (its name does not
start with ``test_``).
"""

from __future__ import annotations

import flask
from django.core.wsgi import get_wsgi_application
from waitress.server import create_server

from adapters.wsgi import RequestIdMiddleware
from correlation import Config

app = flask.Flask(__name__)
# mypy refuses assignment to a method unless told; Flask documents this idiom.
app.wsgi_app = RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]

configured = RequestIdMiddleware(
    flask.Flask("other").wsgi_app, config=Config(trust_incoming=False)
)

application = RequestIdMiddleware(get_wsgi_application())


def serve() -> None:
    """A WSGI server accepts the wrapped app as a WSGI application."""
    create_server(application, host="127.0.0.1", port=0).run()
