"""The Celery app. The publisher and the worker both import it, so both connect()."""

import logging
import os

from celery import Celery, signals

from adapters.celery import connect
from correlation.logging import RequestIdFilter

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
app = Celery("tasks", broker=broker_url)
# Further settings (queues, transport options), from a module if one is named.
app.config_from_envvar("CELERY_CONFIG_MODULE", silent=True)
app.conf.worker_log_format = "%(levelname)s [%(request_id)s] %(name)s: %(message)s"
app.conf.worker_task_log_format = app.conf.worker_log_format
connect()  # publishers put the current id in each message; workers bind it

log = logging.getLogger(__name__)


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def add_request_id_filter(logger: logging.Logger, **kwargs: object) -> None:
    """Celery sets up the worker's handlers itself: give each one the filter."""
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())


@app.task
def send_receipt(order: int) -> None:
    log.info("receipt for order %d sent", order)
