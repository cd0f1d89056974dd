import logging

from django.http import HttpRequest, JsonResponse

from correlation import get_request_id

logger = logging.getLogger(__name__)


def read_order(request: HttpRequest, order_id: int) -> JsonResponse:
    # A sync view: under ASGI Django runs it in a thread, and the id is there too.
    logger.info("order %d requested", order_id)
    return JsonResponse({"order": order_id, "request_id": get_request_id()})
