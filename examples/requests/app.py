"""A Flask service that calls another service with a requests session.

The session is built once and wired with ``adapters.requests.propagate``: every
request it sends carries the id of the request being served.
"""

import os

import requests
from flask import Flask, request

from adapters.requests import propagate
from adapters.wsgi import RequestIdMiddleware
from correlation import get_request_id

# The service to call; by default this app's own /echo, standing in for one.
DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:8000/echo")

# propagate(..., hosts=["api.internal"]) would send the id to that host only.
# Shared by waitress's threads. The default self-call to /echo holds a second
# thread per request, so point DOWNSTREAM_URL at a real service under load.
session = propagate(requests.Session())
app = Flask(__name__)
# mypy refuses assignment to a method unless told; Flask documents this idiom.
app.wsgi_app = RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]


@app.get("/")
def home() -> dict[str, str | None]:
    downstream = session.get(DOWNSTREAM_URL, timeout=10)
    return {"request_id": get_request_id(), "downstream": downstream.text}


@app.get("/echo")
def echo() -> str:
    """Stands in for the other service: answers with the id it was called with."""
    return request.headers["X-Request-ID"]
