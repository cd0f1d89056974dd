"""Adapters that connect the ``correlation`` core to the outside world.

Import the module for what you connect: ``adapters.asgi`` and
``adapters.wsgi`` serve requests (Starlette, FastAPI, Flask, Django) and
``adapters.django`` is a Django ``MIDDLEWARE`` entry; ``adapters.httpx``,
``adapters.requests`` and ``adapters.aiohttp`` send the id on outbound calls;
``adapters.celery`` carries it into tasks; ``adapters.structlog``,
``adapters.loguru``, ``adapters.sentry`` and ``adapters.opentelemetry`` put it
on log events, errors and spans. Each integration needs its library, installed
with the extra of the same name. Importing this package loads none of them,
and importing a module loads no library until it is used.
"""

from __future__ import annotations

__all__: list[str] = []
