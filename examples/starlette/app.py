"""A Starlette app wrapped whole, so every response has an id, error pages too."""

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.asgi import RequestIdMiddleware
from correlation.logging import RequestIdFilter

handler = logging.StreamHandler()
handler.addFilter(RequestIdFilter())
handler.setFormatter(
    logging.Formatter("%(levelname)s [%(request_id)s] %(name)s: %(message)s")
)
logging.basicConfig(level=logging.INFO, handlers=[handler])
logger = logging.getLogger("shop")


async def read_order(request: Request) -> JSONResponse:
    order_id = request.path_params["order_id"]
    logger.info("order %d requested", order_id)
    return JSONResponse({"order": order_id, "request_id": request.state.request_id})


shop = Starlette(routes=[Route("/orders/{order_id:int}", read_order)])
# Outermost: the 500 page Starlette renders for an unhandled error has the id too.
app = RequestIdMiddleware(shop)
