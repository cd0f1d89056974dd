"""httpx wiring as a user writes it: type-checked by ``mypy --strict``, never run.

Each documented way of attaching ``adapters.httpx`` to a client must
type-check as written, with no ``type: ignore``: ``propagate`` keeps the
client's own type, and one hook object goes into both clients' event hooks.
"""

from __future__ import annotations

import httpx
import httpx2

from adapters.httpx import RequestIdHook, propagate

client: httpx.Client = propagate(httpx.Client(), hosts=[".internal"])
async_client: httpx.AsyncClient = propagate(httpx.AsyncClient())

hook = RequestIdHook(header_name="X-Correlation-ID", hosts=["api.internal", "*"])
sync_with_hook = httpx.Client(event_hooks={"request": [hook]})
async_with_hook = httpx.AsyncClient(event_hooks={"request": [hook]})

# httpx's fork: the same hook and the same propagate.
fork_client: httpx2.Client = propagate(httpx2.Client())
fork_async_client: httpx2.AsyncClient = propagate(httpx2.AsyncClient())
fork_with_hook = httpx2.AsyncClient(event_hooks={"request": [hook]})
