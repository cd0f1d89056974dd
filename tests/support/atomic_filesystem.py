"""kombu's filesystem transport and Celery's file result backend, written atomically.

Not a test module. Both write a file under its final name, so a reader can
read it half written:

- kombu's ``_put`` creates the message file, then writes it: a worker polling
  the folder can take it still empty (seen: a prefork worker's consumer died
  on a ``JSONDecodeError``);
- Celery's ``FilesystemBackend.set`` truncates a result file, then writes it:
  a client polling for a retried task's result can read a mix of the two
  states (seen: ``DecodeError: Extra data``).

These write under a name no reader looks at and rename the file into place,
which is atomic. The Celery tests use them for the filesystem broker
(``broker_transport = "atomic_filesystem:Transport"``) and the file result
backend (``"atomic_filesystem:ResultBackend+file:///..."``).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from celery.backends.filesystem import FilesystemBackend
from kombu.transport import filesystem
from kombu.utils.json import dumps

__all__ = ["ResultBackend", "Transport"]


def _write_whole(path: str | bytes, data: bytes) -> None:
    """Write *data* to *path* under another name, then rename it into place."""
    # A name of this write's own (two threads of a worker may write the same
    # result at once: a retry's two runs), which no reader takes.
    partial = os.fsencode(path) + f".{uuid.uuid4().hex}.partial".encode()
    with open(partial, "wb") as file:
        file.write(data)
    os.replace(partial, path)


class Channel(filesystem.Channel):
    # The stubs disagree with themselves: kombu's filesystem Channel overrides
    # the base's ``_put(queue, message)`` as ``_put(queue, payload, **kwargs)``.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        _write_whole(os.path.join(self.data_folder_out, name), dumps(payload).encode())


class Transport(filesystem.Transport):
    Channel = Channel


class ResultBackend(FilesystemBackend):
    def set(self, key: str, value: Any) -> None:
        data = value if isinstance(value, bytes) else str(value).encode()
        path = self._filename(key)  # type: ignore[attr-defined]  # not in the stubs
        _write_whole(path, data)
