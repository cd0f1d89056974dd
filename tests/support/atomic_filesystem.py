"""kombu's filesystem transport, with each message written whole before it is seen.

Not a test module. kombu's own ``_put`` creates the message file under its
final name and then writes it, so a worker polling the folder can take a file
that is still empty and fail to decode it (seen in this suite: a prefork
worker's consumer died on a ``JSONDecodeError``). This one writes the file
under a name no reader looks at and renames it into place, which is atomic.
The Celery tests' filesystem broker uses it (``broker_transport``).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.json import dumps

__all__ = ["Transport"]


class Channel(filesystem.Channel):
    # The stubs disagree with themselves: kombu's filesystem Channel overrides
    # the base's ``_put(queue, message)`` as ``_put(queue, payload, **kwargs)``.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.partial"  # readers only take names ending in .msg
        with open(partial, "wb") as file:
            file.write(dumps(payload).encode())
        os.replace(partial, final)


class Transport(filesystem.Transport):
    Channel = Channel
