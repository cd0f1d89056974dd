"""The Celery app the Celery tests run, in the test process and in workers.

Not a test module. ``build_app(config)`` makes an app with the probe tasks;
the test process builds one per broker and way of running
(``celery_brokers.Runner``). A worker process started with
``celery -A celery_app worker`` builds the same app from the JSON config in
``CORRELATION_CELERY_CONFIG``, which ``celery_brokers`` sets.

Like a real project, the module calls ``adapters.celery.connect()`` where the
app is defined, so that publisher and worker both run it, and puts
``RequestIdFilter`` on the handlers Celery sets up in the worker (Celery
replaces the root logger's handlers, so a filter set up beforehand would be
gone).

Every probe task returns what it saw, so a test reads it from the result.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import signal
import threading
from typing import Any

from celery import Celery, Task, signals

from adapters.celery import connect
from correlation import get_request_id
from correlation.logging import RequestIdFilter

__all__ = [
    "CONFIG_VARIABLE",
    "LIFETIME_VARIABLE",
    "LOG_FORMAT",
    "build_app",
    "copied_contexts",
]

CONFIG_VARIABLE = "CORRELATION_CELERY_CONFIG"
#: Seconds after which a worker process stops itself (SIGTERM, a warm
#: shutdown), should the test that started it never stop it.
LIFETIME_VARIABLE = "CORRELATION_CELERY_WORKER_LIFETIME"

#: Every worker log line: the process, the id field, the logger, the message.
LOG_FORMAT = "%(processName)s|%(request_id)s|%(name)s|%(message)s"

#: Contexts the ``copy_context`` task made, by task id (in-process runs only).
copied_contexts: dict[str, contextvars.Context] = {}

_log = logging.getLogger("probe")

connect()


def build_app(config: dict[str, Any]) -> Celery:
    """A Celery app with *config* and the probe tasks; each returns what it saw."""
    app = Celery("correlation-tests", set_as_current=False)
    app.conf.update(config)

    @app.task(shared=False, name="probe.whoami")
    def whoami(*_: object) -> str | None:
        """The id the task runs under; it logs a line under it too."""
        _log.info("probe.whoami runs")
        return get_request_id()

    @app.task(shared=False, name="probe.trail")
    def trail(ids: list[str | None] | None = None) -> list[str | None]:
        """A chain step: the ids the steps before saw, then its own."""
        return [*(ids or []), get_request_id()]

    @app.task(shared=False, name="probe.collect")
    def collect(results: list[Any]) -> list[Any]:
        """A chord callback: its own id, then what the header tasks returned."""
        return [get_request_id(), results]

    @app.task(shared=False, name="probe.retried", bind=True, max_retries=1)
    def retried(self: Task[Any, Any]) -> str | None:
        """Retries once; the id of the retry's run."""
        if self.request.retries == 0:
            # Not at once: with a pool of threads the retry could finish before
            # this run stores its RETRY state, which would then overwrite the
            # retry's result (Celery's race, seen with amqp and threads).
            raise self.retry(countdown=0.3)
        return get_request_id()

    @app.task(shared=False, name="probe.spawn")
    def spawn() -> str:
        """Publishes ``probe.whoami`` from inside the task; its task id."""
        return str(whoami.delay().id)

    @app.task(shared=False, name="probe.fails")
    def fails() -> None:
        raise LookupError(f"probe.fails ran under {get_request_id()}")

    @app.task(shared=False, name="probe.copy_context")
    def copy_context() -> str | None:
        """Keeps a copy of its context, to be read after the task."""
        copied_contexts[str(copy_context.request.id)] = contextvars.copy_context()
        return get_request_id()

    return app


def _filter_handlers(logger: logging.Logger, **_: object) -> None:
    """Put the id on every record the worker's handlers write."""
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())


signals.after_setup_logger.connect(_filter_handlers, weak=False)
signals.after_setup_task_logger.connect(_filter_handlers, weak=False)


def _stop_after_lifetime(**_: object) -> None:
    """In a worker process: stop it after its lifetime, as SIGTERM would."""
    lifetime = float(os.environ.get(LIFETIME_VARIABLE, "0"))
    if lifetime > 0:
        pid = os.getpid()
        timer = threading.Timer(lifetime, os.kill, (pid, signal.SIGTERM))
        timer.daemon = True
        timer.start()


_worker_config = os.environ.get(CONFIG_VARIABLE)
if _worker_config is not None:
    # ``celery -A celery_app worker`` finds this app.
    app = build_app(json.loads(_worker_config))
    signals.worker_ready.connect(_stop_after_lifetime, weak=False)
