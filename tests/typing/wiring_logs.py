"""Logs, errors and traces wiring as a user writes it: checked by mypy, never run.

Each documented way of adding ``adapters.structlog``, ``adapters.loguru``,
``adapters.sentry`` and ``adapters.opentelemetry`` must type-check as written,
with no ``type: ignore``.
"""

from __future__ import annotations

import logging

import sentry_sdk
import structlog
from loguru import logger
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from adapters.loguru import patcher
from adapters.opentelemetry import RequestIdSpanProcessor, trace_id_or_new
from adapters.sentry import install
from adapters.structlog import add_request_id
from correlation import Config
from correlation.logging import RequestIdFilter

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.JSONRenderer(),
    ]
)
formatter = structlog.stdlib.ProcessorFormatter(
    foreign_pre_chain=[add_request_id],
    processors=[structlog.processors.JSONRenderer()],
)

logger.configure(patcher=patcher)
patched_logger = logger.patch(patcher)

sentry_sdk.init()
install()
install(tag="correlation.id")

provider = TracerProvider()
provider.add_span_processor(RequestIdSpanProcessor())
provider.add_span_processor(RequestIdSpanProcessor(attribute="app.request_id"))
trace.set_tracer_provider(provider)
config = Config(generator=trace_id_or_new)

handler = logging.StreamHandler()
handler.addFilter(RequestIdFilter(default=""))
handler.addFilter(RequestIdFilter(default=None))
