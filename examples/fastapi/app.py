"""A FastAPI app whose every request has an id, in its logs and its response."""

import logging

from fastapi import FastAPI

from adapters.asgi import RequestIdMiddleware
from correlation import get_request_id
from correlation.logging import RequestIdFilter

handler = logging.StreamHandler()
handler.addFilter(RequestIdFilter())
handler.setFormatter(
    logging.Formatter("%(levelname)s [%(request_id)s] %(name)s: %(message)s")
)
logging.basicConfig(level=logging.INFO, handlers=[handler])
logger = logging.getLogger("shop")

app = FastAPI()
app.add_middleware(RequestIdMiddleware)


@app.get("/orders/{order_id}")
def read_order(order_id: int) -> dict[str, object]:
    # A plain def endpoint runs in a worker thread: the id is there too.
    logger.info("order %d requested", order_id)
    return {"order": order_id, "request_id": get_request_id()}
