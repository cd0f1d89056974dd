"""Celery wiring as a user writes it: type-checked by ``mypy --strict``, never run.

The documented ways of connecting ``adapters.celery`` and setting up the
worker's logging must type-check as written, with no ``type: ignore``.
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from adapters.celery import connect, disconnect
from correlation import Config, bound_request_id, get_request_id
from correlation.logging import RequestIdFilter

app = Celery("shop", broker="memory://")
connect()
connect(header_key="x-job-id", config=Config(trust_incoming=False))


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def add_request_id_filter(logger: logging.Logger, **kwargs: object) -> None:
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())


@app.task
def send_receipt(order: int) -> str | None:
    return get_request_id()


with bound_request_id("order-42"):
    send_receipt.delay(42)
    send_receipt.apply_async((42,), headers={"correlation_request_id": "job-7"})
    send_receipt.apply(headers={"correlation_request_id": "job-7"})

disconnect()
