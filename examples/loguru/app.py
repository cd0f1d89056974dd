"""A Flask service that logs with loguru.

``adapters.loguru.patcher`` puts the id of the request being served into every
record's ``extra``; records logged outside a request get ``-``.
"""

import sys

from flask import Flask
from loguru import logger

from adapters.loguru import patcher
from adapters.wsgi import RequestIdMiddleware
from correlation import get_request_id

logger.remove()  # loguru's default sink has no request id in its format
logger.configure(patcher=patcher)
logger.add(sys.stderr, format="{time:HH:mm:ss} {level} [{extra[request_id]}] {message}")

app = Flask(__name__)
# mypy refuses assignment to a method unless told; Flask documents this idiom.
app.wsgi_app = RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
logger.info("app loaded")


@app.get("/order")
def order() -> dict[str, str | None]:
    logger.info("order received")
    return {"request_id": get_request_id()}
