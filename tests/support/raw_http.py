"""The raw-socket HTTP client: bytes no HTTP client library would send.

Not a test module. The server tests use it for what httpx refuses to send
(CR/LF, NUL or escape bytes in a header, 300 KB values, 10,000 repeats) and
for what it cannot do (reset a connection in the middle of a streamed body).
``exchange`` sends one request and reads to the end; ``read_then_reset``
reads part of a response and resets the connection. ``RawResponse`` parses
whatever came back, leniently: a server may answer with nothing at all.
Every socket operation is bounded by the *timeout* given.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "RawResponse",
    "exchange",
    "get_request",
    "header_line",
    "read_then_reset",
]

#: More than any response of the probes; a server that sends more is broken.
_RUNAWAY = 4 * 1024 * 1024


def header_line(value: bytes, name: bytes = b"X-Request-ID") -> bytes:
    """One raw header line, CRLF included."""
    return name + b": " + value + b"\r\n"


def get_request(path: str, header_lines: bytes = b"", *, http11: bool = False) -> bytes:
    """A GET of *path* with *header_lines*, after which the server closes.

    HTTP/1.0 by default (it closes after one response, no chunking); with
    *http11*, HTTP/1.1 with ``Connection: close``.
    """
    if http11:
        start = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    else:
        start = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
    return start.encode("latin-1") + header_lines + b"\r\n"


def _dechunk(body: bytes) -> bytes:
    """Decode a chunked body, as far as it arrived."""
    out = bytearray()
    while body:
        size_line, separator, rest = body.partition(b"\r\n")
        if not separator:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


@dataclass(frozen=True)
class RawResponse:
    """What a server sent back on a raw socket (maybe nothing at all)."""

    raw: bytes
    #: The connection was reset (or the request could not be sent whole)
    #: rather than closed.
    reset: bool

    @property
    def head(self) -> bytes:
        """The status line and headers (everything, if there is no blank line)."""
        return self.raw.partition(b"\r\n\r\n")[0]

    @property
    def status(self) -> int | None:
        """The status code, or ``None`` when the server sent no response."""
        if not self.raw.startswith(b"HTTP/"):
            return None
        return int(self.head.split(b" ", 2)[1])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as (lower-case name, value), blanks stripped."""
        found = []
        for line in self.head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            found.append((name.strip().lower(), value.strip()))
        return found

    def values(self, name: str) -> list[str]:
        """The values of every *name* header, decoded as latin-1."""
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for n, value in self.headers if n == key]

    @property
    def body(self) -> bytes:
        """What follows the head, dechunked if it came chunked."""
        body = self.raw.partition(b"\r\n\r\n")[2]
        if any("chunked" in v.lower() for v in self.values("Transfer-Encoding")):
            return _dechunk(body)
        return body


def exchange(
    address: tuple[str, int], request: bytes, *, timeout: float
) -> RawResponse:
    """Send *request* on a new socket; return all the server sends until it closes.

    The request should make the server close after one response
    (``get_request``). It is sent from a second thread while this one reads,
    so a server that answers (and closes) before it read a huge request is
    still heard. A reset ends the reading and is recorded, not raised.
    """
    received = bytearray()
    reset = False
    with socket.create_connection(address, timeout=timeout) as sock:
        sent_whole = threading.Event()

        def send() -> None:
            # The server may close before it read everything: that is an
            # answer too, which the reader sees.
            try:
                sock.sendall(request)
            except OSError:
                return
            sent_whole.set()

        sender = threading.Thread(target=send, name="raw-sender", daemon=True)
        sender.start()
        try:
            while chunk := sock.recv(65536):
                received += chunk
                assert len(received) < _RUNAWAY, "runaway response"
        except ConnectionError:
            reset = True
        finally:
            sender.join(timeout)
        assert not sender.is_alive(), "the request could not be sent in time"
    return RawResponse(bytes(received), reset or not sent_whole.is_set())


def read_then_reset(
    address: tuple[str, int],
    request: bytes,
    enough: Callable[[RawResponse], bool],
    *,
    timeout: float,
) -> RawResponse:
    """Send *request*, read until *enough* of the response came, then reset.

    The socket is closed with linger 0, so the server sees a reset rather
    than an orderly close, as from a client that crashed or gave up.
    """
    received = b""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        while not enough(RawResponse(received, False)):
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the response early: {received[:500]!r}"
            received += chunk
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return RawResponse(received, False)
