"""A local stand-in for Sentry's ingestion endpoint, for a real SDK to post to.

Not a test module. ``serve_sentry_host()`` runs an HTTP server on 127.0.0.1
and yields a ``SentryHost``: its ``dsn`` for ``sentry_sdk.init`` (or a
``SENTRY_DSN`` variable), and the ``events()`` the SDK posted there so far,
read from the envelopes as they arrived on the wire.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from servers import HOST, serve_in_thread

__all__ = ["SentryHost", "serve_sentry_host"]


@dataclass(frozen=True)
class SentryHost:
    """A running Sentry stand-in: the DSN that points at it, and what it got."""

    dsn: str
    _server: _EnvelopeServer

    def events(self) -> list[dict[str, Any]]:
        """The payload of every ``event`` item posted so far, in order."""
        return [
            json.loads(payload)
            for envelope in self._server.envelopes()
            for header, payload in _envelope_items(envelope)
            if header["type"] == "event"
        ]


@contextmanager
def serve_sentry_host() -> Iterator[SentryHost]:
    """Run a Sentry stand-in on 127.0.0.1 until the block ends.

    On exit it must stop within 10 seconds, or ``RuntimeError`` is raised.
    """
    server = _EnvelopeServer()
    with serve_in_thread("sentry-host", server) as running:
        yield SentryHost(f"http://public@{HOST}:{running.port}/1", server)


def _envelope_items(envelope: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each item of a Sentry envelope: its header and its payload.

    An envelope is a header line, then per item a header line and a payload: of
    ``length`` bytes when the item header says so, else up to the next newline.
    """
    _envelope_header, _, rest = envelope.partition(b"\n")
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] + 1 :]
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, payload


def _decoded(body: bytes, encoding: str) -> bytes:
    """An envelope as posted with *encoding*, decompressed."""
    if encoding == "gzip":
        return gzip.decompress(body)
    # The SDK uses brotli ("br") instead when the Brotli package is installed;
    # the test environment has none.
    assert encoding == "", f"an envelope encoded as {encoding!r}"
    return body


class _EnvelopeHandler(http.server.BaseHTTPRequestHandler):
    server: _EnvelopeServer

    def do_POST(self) -> None:
        """Keep the envelope the SDK posted, and accept it."""
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.keep(body, self.headers.get("Content-Encoding", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        """No access log."""


class _EnvelopeServer(http.server.HTTPServer):
    """Keeps each envelope posted to it, as posted (decoded when read)."""

    def __init__(self) -> None:
        super().__init__((HOST, 0), _EnvelopeHandler)
        self._lock = threading.Lock()
        self._bodies: list[tuple[bytes, str]] = []

    def keep(self, body: bytes, encoding: str) -> None:
        with self._lock:
            self._bodies.append((body, encoding))

    def envelopes(self) -> list[bytes]:
        """Every envelope posted so far, decompressed."""
        with self._lock:
            bodies = list(self._bodies)
        return [_decoded(body, encoding) for body, encoding in bodies]
