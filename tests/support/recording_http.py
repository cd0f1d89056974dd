"""A real HTTP server that records what each request carried on the wire.

For the outbound integrations (httpx, requests, aiohttp): what reaches the
server is the only proof that a header was sent, or not. No mocking library:
they bypass the very hooks under test.

``serve_recorder(host)`` runs one on *host* (``127.0.0.1`` or ``127.0.0.2``:
two ports on one address are one host to an allow-list) and yields a
``Recorder``. It answers:

- ``/ok``: 200.
- ``/redirect?to=URL[&code=307]``: a redirect to URL (302 by default).
- ``/fail-once?key=K``: 503 the first time for each K, then 200 (retries).
- ``/digest``: 401 with a Digest challenge until the request carries a Digest
  ``Authorization``, then 200 (an authentication re-send).
- a request in absolute form (``GET http://host:port/path``): as a forward
  proxy, recorded, then forwarded to that host and its answer relayed.

It speaks HTTP/1.0 and closes each connection after its response, so it
serves one request at a time; concurrent clients wait in the listen backlog.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from servers import Running, serve_in_thread

#: How long the proxy waits for the host it forwards to.
_FORWARD_TIMEOUT = 5.0


@dataclass(frozen=True)
class Seen:
    """One request as it arrived: its target and its header lines, in order."""

    method: str
    #: The request target as sent: a path, or a whole URL when proxied.
    target: str
    headers: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        """The target's path, without the query."""
        return urlsplit(self.target).path

    @property
    def proxied(self) -> bool:
        """Whether it was sent to this server as to a forward proxy."""
        return self.target.startswith("http://")

    def values(self, name: str) -> list[str]:
        """Every value of header *name* (any case), in the order sent."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass(frozen=True)
class Recorder:
    """A running recording server and what it has seen so far."""

    running: Running
    _server: _RecordingServer

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.2:54321``."""
        return self.running.url

    @property
    def host(self) -> str:
        """The address it listens on."""
        return self.running.address[0]

    def seen(self) -> list[Seen]:
        """The requests served so far, in order."""
        return self._server.seen()

    def clear(self) -> None:
        """Forget the requests served so far."""
        self._server.clear()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _RecordingServer

    def do_GET(self) -> None:
        """Record the request, then answer it by its path (see the module)."""
        self.server.record(Seen(self.command, self.path, tuple(self.headers.items())))
        if self.path.startswith("http://"):
            self._forward()
            return
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if url.path == "/redirect":
            self._answer(int(query.get("code", "302")), location=query["to"])
        elif url.path == "/fail-once":
            self._answer(200 if self.server.seen_key(query["key"]) else 503)
        elif url.path == "/digest":
            if (self.headers.get("Authorization") or "").startswith("Digest "):
                self._answer(200)
            else:
                challenge = 'Digest realm="test", nonce="abc123", qop="auth"'
                self._answer(401, authenticate=challenge)
        else:
            self._answer(200)

    do_POST = do_GET

    def _answer(
        self, status: int, *, location: str = "", authenticate: str = ""
    ) -> None:
        body = f"{status}\n".encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        if authenticate:
            self.send_header("WWW-Authenticate", authenticate)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        """Send the request on to its host, as a forward proxy does."""
        url = urlsplit(self.path)
        connection = http.client.HTTPConnection(
            url.hostname or "", url.port or 80, timeout=_FORWARD_TIMEOUT
        )
        try:
            hop_by_hop = {"proxy-connection", "connection", "keep-alive"}
            headers = {
                key: value
                for key, value in self.headers.items()
                if key.lower() not in hop_by_hop
            }
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request(self.command, target, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        self.send_response(response.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No access log."""


class _RecordingServer(http.server.HTTPServer):
    request_queue_size = 128

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._keys: set[str] = set()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def seen_key(self, key: str) -> bool:
        """Whether *key* was asked for before (and remember it now)."""
        with self._lock:
            seen = key in self._keys
            self._keys.add(key)
        return seen


@contextmanager
def serve_recorder(host: str = "127.0.0.1") -> Iterator[Recorder]:
    """Run a recording server on *host* and an OS-chosen port; see the module.

    On exit it must stop within 10 seconds, or ``RuntimeError`` is raised.
    The start-up probe's request is not among the recorded ones.
    """
    server = _RecordingServer(host)
    serving = serve_in_thread(f"recorder-{host}", server, probe_path="/ok")
    with serving as running:
        server.clear()
        yield Recorder(running, server)
