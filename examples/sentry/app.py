"""A Starlette service whose errors reach Sentry tagged with their request id.

``sentry_sdk.init()`` reads the DSN from ``SENTRY_DSN``; ``install()`` tags each
event captured during a request with that request's id.
"""

import sentry_sdk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from adapters.sentry import install

sentry_sdk.init()  # the DSN comes from the environment variable SENTRY_DSN
install()


async def checkout(request: Request) -> PlainTextResponse:
    raise RuntimeError("payment service down")


# The adapter wraps the whole app, so Sentry's Starlette integration captures
# the error inside the request, where its id is current.
app = RequestIdMiddleware(Starlette(routes=[Route("/checkout", checkout)]))
