"""Publish a task under this run's id: ``python publish.py 42``."""

import logging
import os
import sys

from tasks import send_receipt

from correlation import bound_request_id
from correlation.logging import RequestIdFilter

logger = logging.getLogger("publish")


def main(order: int) -> None:
    # A caller's id from the environment (checked like a header), else a new one.
    with bound_request_id(os.environ.get("REQUEST_ID")):
        logger.info("queueing the receipt for order %d", order)
        send_receipt.delay(order)  # the message carries the id to the worker


if __name__ == "__main__":
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    main(int(sys.argv[1]))
