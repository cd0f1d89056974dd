"""Hand-built WSGI for the tests: environs, a server's start_response, drivers.

Not a test module. pytest puts this folder on ``sys.path`` (``pythonpath`` in
pyproject.toml), so tests import it as ``wsgi_testing``. No web framework is
involved: apps are plain PEP 3333 callables, optionally wrapped in
``wsgiref.validate.validator`` and werkzeug's ``LintMiddleware``, and
``run_wsgi`` plays the server.

Two wrappers cannot sit between the adapter and an app in every test:

- both replace the body with their own iterator, so a test that checks the
  adapter returns the app's very body (list, tuple, ``wsgi.file_wrapper``)
  wraps only the outside, or nothing;
- both complain when a body is garbage collected unclosed, so a test of an
  abandoned body uses a bare app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
from asgi_testing import HEX32, TIMEOUT, assert_unbound, counting_generator
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client, EnvironBuilder

from correlation import get_request_id

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "HEX32",
    "TIMEOUT",
    "Capture",
    "Endpoint",
    "HeaderList",
    "RecordingBody",
    "ServerStartResponse",
    "StartResponseCall",
    "Write",
    "WsgiResult",
    "assert_unbound",
    "builder_environ",
    "checked",
    "counting_generator",
    "environ_key",
    "httpx_client",
    "linted",
    "make_environ",
    "run_wsgi",
    "validated",
    "values_of",
    "werkzeug_client",
]

#: A response header list, as ``start_response`` takes it.
HeaderList = list[tuple[str, str]]

#: The legacy ``write`` callable ``start_response`` returns.
Write = Callable[[bytes], object]


# --- environs -------------------------------------------------------------


def environ_key(header_name: str) -> str:
    """Return the environ key a WSGI server files *header_name* under.

    ``X-Request-ID`` becomes ``HTTP_X_REQUEST_ID``, as in wsgiref, werkzeug
    and gunicorn.
    """
    return "HTTP_" + header_name.upper().replace("-", "_")


def make_environ(
    headers: Iterable[tuple[str, str]] = (), **extra: Any
) -> WSGIEnvironment:
    """Return a complete environ for ``GET /``, as a server would build it.

    Args:
        headers: Request headers as ``(name, value)`` pairs, values already
            decoded as latin-1 (PEP 3333). A repeated name is joined into one
            environ value with ``", "``, as most servers do.
        extra: Environ keys that override the defaults of
            ``wsgiref.util.setup_testing_defaults``.
    """
    environ: WSGIEnvironment = {"QUERY_STRING": ""}
    setup_testing_defaults(environ)
    for name, value in headers:
        key = environ_key(name)
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    environ.update(extra)
    return environ


def builder_environ(headers: Iterable[tuple[str, str]] = ()) -> WSGIEnvironment:
    """Return the environ werkzeug's ``EnvironBuilder`` makes for ``GET /``.

    A repeated header name is joined with ``", "``, as werkzeug's server does.
    """
    builder = EnvironBuilder(path="/", headers=list(headers))
    try:
        return builder.get_environ()
    finally:
        builder.close()


# --- the server side ------------------------------------------------------


@dataclass(frozen=True)
class StartResponseCall:
    """One call of the server's ``start_response``."""

    status: str
    #: A copy of the header list as the server received it.
    headers: HeaderList
    #: The very object passed, so tests can check its identity.
    exc_info: OptExcInfo | None
    #: ``get_request_id()`` as the server saw it during the call.
    request_id: str | None


class ServerStartResponse:
    """A WSGI server's ``start_response`` that records every call.

    It behaves as PEP 3333 asks of a server: a second call needs ``exc_info``,
    and one with ``exc_info`` after the body started re-raises that exception.
    It returns ``write``, which by default collects the bytes in ``written``;
    pass *write* to have it return another callable (to check its identity).
    """

    def __init__(self, write: Write | None = None) -> None:
        self.calls: list[StartResponseCall] = []
        self.written: list[bytes] = []
        #: Set once a non-empty chunk or a ``write`` reached the "client".
        self.headers_sent = False
        self.write: Write = self._collect if write is None else write

    def _collect(self, data: bytes) -> None:
        assert self.calls, "write() called before start_response()"
        assert type(data) is bytes, data
        self.headers_sent = True
        self.written.append(data)

    def __call__(
        self, status: str, headers: HeaderList, exc_info: OptExcInfo | None = None, /
    ) -> Write:
        if exc_info is not None:
            if self.headers_sent and exc_info[1] is not None:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.calls:
            raise AssertionError("start_response() called twice without exc_info")
        call = StartResponseCall(status, list(headers), exc_info, get_request_id())
        self.calls.append(call)
        return self.write

    @property
    def status(self) -> str:
        """The status of the last call, the one the client gets."""
        assert self.calls, "start_response() was never called"
        return self.calls[-1].status

    @property
    def headers(self) -> HeaderList:
        """The headers of the last call, the ones the client gets."""
        assert self.calls, "start_response() was never called"
        return self.calls[-1].headers


def values_of(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Return the values of every *name* header, matched case-insensitively."""
    return [value for key, value in headers if key.lower() == name.lower()]


@dataclass
class WsgiResult:
    """What ``run_wsgi`` saw of one request."""

    #: Exactly what the app (the outermost one passed) returned.
    returned: Iterable[bytes]
    #: The body chunks, in order, as the server iterated them.
    chunks: list[bytes]
    server: ServerStartResponse
    #: ``get_request_id()`` in the server's own context: before the call,
    #: after it returned, after every chunk and after ``close()``.
    caller_ids: list[str | None]

    @property
    def status(self) -> str:
        """The final status line."""
        return self.server.status

    @property
    def headers(self) -> HeaderList:
        """The final response headers."""
        return self.server.headers

    @property
    def body(self) -> bytes:
        """Everything sent: ``write()`` calls first, then the chunks."""
        return b"".join([*self.server.written, *self.chunks])

    def values(self, name: str) -> list[str]:
        """Return the final response's *name* header values."""
        return values_of(self.headers, name)


def run_wsgi(
    app: WSGIApplication,
    environ: WSGIEnvironment | None = None,
    *,
    server: ServerStartResponse | None = None,
) -> WsgiResult:
    """Serve one request through *app* as a WSGI server does, in this thread.

    Calls the app, iterates the body and always closes it (PEP 3333), also
    when iterating raises; the exception then propagates. *environ* defaults
    to ``make_environ()``.
    """
    environ = make_environ() if environ is None else environ
    server = ServerStartResponse() if server is None else server
    caller_ids = [get_request_id()]
    returned = app(environ, server)
    caller_ids.append(get_request_id())
    chunks: list[bytes] = []
    try:
        for chunk in returned:
            caller_ids.append(get_request_id())
            if chunk:
                server.headers_sent = True
            chunks.append(chunk)
    finally:
        close = getattr(returned, "close", None)
        if close is not None:
            close()
    caller_ids.append(get_request_id())
    return WsgiResult(returned, chunks, server, caller_ids)


# --- validators -----------------------------------------------------------


def validated(app: WSGIApplication) -> WSGIApplication:
    """Wrap *app* in ``wsgiref.validate.validator``: a violation raises."""
    return validator(app)


def linted(app: WSGIApplication) -> WSGIApplication:
    """Wrap *app* in werkzeug's ``LintMiddleware``: a violation warns.

    With ``filterwarnings = error`` every warning fails the test. It replaces
    ``environ["wsgi.file_wrapper"]`` with its own.
    """
    return LintMiddleware(app)


def checked(app: WSGIApplication) -> WSGIApplication:
    """Wrap *app* in both validators, wsgiref's outside werkzeug's."""
    return validated(linted(app))


class Capture:
    """A pass-through middleware that keeps what the app it wraps returned.

    Put it between a validator and the adapter to check the adapter's return
    value while the validator checks the whole exchange.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.returned: list[Iterable[bytes]] = []

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        result = self.app(environ, start_response)
        self.returned.append(result)
        return result


# --- the app side ---------------------------------------------------------


class RecordingBody:
    """A response body with ``close()``, recording the id at every step.

    Iterating it yields *chunks*; ``get_request_id()`` is recorded before each
    chunk in ``chunk_ids`` and in ``close()`` in ``close_ids``. *on_chunk* is
    called with each chunk's index just before it is yielded; *error*, if
    given, is raised after the last chunk.
    """

    def __init__(
        self,
        chunks: Sequence[bytes] = (b"one", b"two", b"three"),
        *,
        on_chunk: Callable[[int], None] | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.chunks = chunks
        self.on_chunk = on_chunk
        self.error = error
        self.chunk_ids: list[str | None] = []
        self.close_ids: list[str | None] = []

    def __iter__(self) -> Iterator[bytes]:
        for index, chunk in enumerate(self.chunks):
            self.chunk_ids.append(get_request_id())
            if self.on_chunk is not None:
                self.on_chunk(index)
            yield chunk
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Record the id the body's cleanup sees."""
        self.close_ids.append(get_request_id())


class Endpoint:
    """A plain WSGI app that records what it saw and answers 200.

    Each call records the environ dict itself (``environs``), a shallow copy
    of it as it was at the call (``snapshots``) and ``get_request_id()``
    (``ids``), then calls ``start_response`` with *headers* and returns a new
    body from *body* (a list ``[b"ok"]`` by default), kept in ``bodies``.
    """

    def __init__(
        self,
        headers: HeaderList | None = None,
        body: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        self.headers: HeaderList = (
            [("Content-Type", "text/plain")] if headers is None else headers
        )
        self.body = body
        self.environs: list[WSGIEnvironment] = []
        self.snapshots: list[dict[str, Any]] = []
        self.ids: list[str | None] = []
        self.bodies: list[Iterable[bytes]] = []

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        self.environs.append(environ)
        self.snapshots.append(dict(environ))
        self.ids.append(get_request_id())
        start_response("200 OK", self.headers)
        body = [b"ok"] if self.body is None else self.body()
        self.bodies.append(body)
        return body

    @property
    def request_id(self) -> str | None:
        """The id the single call saw."""
        assert len(self.ids) == 1, self.ids
        return self.ids[0]

    @property
    def snapshot(self) -> dict[str, Any]:
        """The environ of the single call, as it was when the app ran."""
        assert len(self.snapshots) == 1, self.snapshots
        return self.snapshots[0]


# --- in-process clients ---------------------------------------------------


def werkzeug_client(app: WSGIApplication) -> Client:
    """Return werkzeug's test client for *app*."""
    return Client(app)


def httpx_client(app: WSGIApplication) -> httpx.Client:
    """Return an httpx client that serves *app* in process."""
    return httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url="http://testserver"
    )
