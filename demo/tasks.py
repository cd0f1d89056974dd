"""The demo's Celery app: shipping, done by a worker process.

``orders`` publishes ``ship_order`` inside its request, so the request id
travels in the task message. The worker runs the task under that id; the task
calls ``orders`` back over HTTP through an httpx client that
``adapters.httpx.propagate`` set up, so the id comes home in the
``X-Request-ID`` header.

``connect()`` runs here, where the app is defined, so the web process and the
worker both run it. The broker is ``DEMO_BROKER_URL``; the default, kombu's
filesystem transport in ``DEMO_DATA``, needs no server.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
from celery import Celery, signals
from kombu import Queue

from adapters.celery import connect
from adapters.httpx import propagate
from correlation.logging import RequestIdFilter

#: The worker's log format, the same shape as the web services' lines.
LOG_FORMAT = "    worker    request_id=%(request_id)-32s  %(message)s"

_data = Path(os.environ.get("DEMO_DATA", ".demo-data"))
_broker = os.environ.get("DEMO_BROKER_URL", "filesystem://")
_queue = os.environ.get("DEMO_QUEUE", "correlation-demo")

app = Celery("demo", broker=_broker)
app.conf.update(
    # A queue of the run's own, deleted when the worker leaves.
    task_queues=[Queue(_queue, routing_key=_queue, auto_delete=True)],
    task_default_queue=_queue,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_enable_remote_control=False,
    worker_log_format=LOG_FORMAT,
    worker_task_log_format=LOG_FORMAT,
)
if _broker.startswith("filesystem://"):
    messages = _data / "messages"
    messages.mkdir(parents=True, exist_ok=True)
    app.conf.broker_transport_options = {
        "data_folder_in": str(messages),
        "data_folder_out": str(messages),
        # Exchange tables too (by default "control" in the working directory).
        "control_folder": str(_data / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
connect()

shipping_log = logging.getLogger("shipping")


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def add_request_id_filter(logger: logging.Logger, **kwargs: object) -> None:
    """Celery replaces the root logger's handlers: filter the ones it sets up."""
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())


@app.task(name="demo.ship_order")
def ship_order(number: str, callback_url: str) -> None:
    shipping_log.info("shipping order %s", number)
    with propagate(httpx.Client(timeout=5), hosts=["127.0.0.1"]) as client:
        client.post(callback_url).raise_for_status()
    shipping_log.info("order %s shipped, orders told", number)
