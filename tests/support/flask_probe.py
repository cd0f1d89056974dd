"""Flask apps for the live-server tests, wired the documented way.

Not a test module. ``wsgi_probe.build_site("flask", ...)`` mounts what
``build_mounts`` returns: each is a new ``Flask`` app with
``app.wsgi_app = RequestIdMiddleware(app.wsgi_app, config=...)``, answering
the paths every probe app answers (see ``wsgi_probe``):

- ``/flask``: the defaults; ``/error`` becomes Flask's own 500 response,
  made inside the adapter, and is logged by ``app.logger``;
- ``/flask-untrusted``: ``Config(trust_incoming=False)``;
- ``/flask-propagate``: ``PROPAGATE_EXCEPTIONS = True``, so the exception of
  ``/error`` leaves Flask, and the adapter, and reaches the server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, Response, request
from wsgi_probe import (
    ERROR_MESSAGE,
    HEADER_KEY,
    LINE_SIZE,
    STREAM_CHUNKS,
    UNTRUSTED,
    Site,
    line,
    log_seen,
    long_body,
    record_close,
    report,
    stream_lines,
)

from adapters.wsgi import RequestIdMiddleware
from correlation import Config, get_request_id

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["build_flask", "build_mounts", "record_response_ids"]

_HEADER = "X-Request-ID"
_NDJSON = "application/x-ndjson"


def record_response_ids(app: Flask, events: list[tuple[str, str | None]]) -> None:
    """Record the id in *events* from ``after_request`` and ``call_on_close``."""

    @app.after_request
    def after_request(response: Response) -> Response:
        events.append(("after_request", get_request_id()))
        response.call_on_close(
            lambda: events.append(("call_on_close", get_request_id()))
        )
        return response


def build_flask(site: Site, name: str, *, config: Config, propagate: bool) -> Flask:
    """A new Flask app behind the adapter; its ``app.logger`` feeds *site*."""
    app = Flask(name, root_path=str(Path(__file__).parent))
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    # Attached before the first use of app.logger, so Flask adds no handler
    # of its own (it adds one only to a logger without any).
    site.attach(app.logger)

    @app.get("/id")
    def id_view() -> Response:
        log_seen(request.environ, "handler")
        seen = report(request.environ, request.headers.get(_HEADER))
        return Response(line(seen), mimetype=_NDJSON)

    @app.get("/stream")
    def stream_view() -> Response:
        log_seen(request.environ, "handler")
        response = Response(stream_lines(request.environ), mimetype=_NDJSON)
        response.headers["Content-Length"] = str(STREAM_CHUNKS * LINE_SIZE)
        return response

    @app.get("/closing")
    def closing_view() -> Response:
        environ = request.environ
        log_seen(environ, "handler")
        response = Response(
            line(report(environ, request.headers.get(_HEADER))), mimetype=_NDJSON
        )
        # Flask runs these in the response's close(), after the view returned.
        response.call_on_close(lambda: record_close(environ, "/closing"))
        return response

    @app.get("/long")
    def long_view() -> Response:
        return Response(
            long_body(request.environ, request.environ.get(HEADER_KEY)),
            mimetype="application/octet-stream",
        )

    @app.get("/error")
    def error_view() -> Response:
        log_seen(request.environ, "handler")
        raise RuntimeError(ERROR_MESSAGE)

    app.wsgi_app = RequestIdMiddleware(app.wsgi_app, config=config)  # type: ignore[method-assign]
    return app


def build_mounts(
    site: Site, check: Callable[[WSGIApplication], WSGIApplication]
) -> dict[str, WSGIApplication]:
    """The Flask apps of a site, by mount point, each wrapped in *check*."""
    prefix = f"flask_probe_site{site.number}"
    return {
        "/flask": check(
            build_flask(site, f"{prefix}_default", config=Config(), propagate=False)
        ),
        "/flask" + UNTRUSTED: check(
            build_flask(
                site,
                f"{prefix}_untrusted",
                config=Config(trust_incoming=False),
                propagate=False,
            )
        ),
        "/flask-propagate": check(
            build_flask(site, f"{prefix}_propagate", config=Config(), propagate=True)
        ),
    }
