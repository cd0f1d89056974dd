"""WSGI (PEP 3333) middleware that gives every request an id.

Wrap any WSGI application with it: Flask
(``app.wsgi_app = RequestIdMiddleware(app.wsgi_app)``) or Django's
``get_wsgi_application()``. It follows the same rules as the ASGI adapter,
through the same core seams, so both answer identically.
"""

from __future__ import annotations

import contextvars

from correlation import _context, _ids

# typing is not imported at run time: it would be most of this module's
# import cost (mypy treats any constant named TYPE_CHECKING as True).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from typing import Any

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from correlation._config import Config
del TYPE_CHECKING

__all__ = ["RequestIdMiddleware"]

# The environ key holding the final id (fixed by the contract), for code that
# has the environ but not the context: a server's access-log atoms, say.
_ENVIRON_KEY = "correlation.request_id"


class RequestIdMiddleware:
    """Read, check or generate the request id, and bind it for the request.

    For each request the middleware:

    - takes the incoming ``config.header_name`` header when it passes the hard
      floor and ``config.validator``, and generates a new id otherwise;
    - makes it visible through ``correlation.get_request_id()`` while the
      application runs, in every chunk of the response body (generator bodies
      run after the application has returned) and in the body's ``close()``;
    - stores it in the environ, in place, as ``environ["correlation.request_id"]``
      and, unless ``config.update_request_header`` is ``False``, as the
      request header itself (``HTTP_X_REQUEST_ID``);
    - adds the id to the response headers, unless the application set that
      header itself or ``config.response_header`` is ``False``.

    The application, its body and its ``close()`` run in a context of their
    own, a copy of the server thread's, so the thread's context is never
    changed: a thread that serves the next request cannot see this one's id,
    even when the server abandons the body without calling ``close()``.

    List bodies are returned untouched, so the server still sees their length
    (Content-Length); no application code runs while they are sent, so the
    request ends when the application returns them. ``wsgi.file_wrapper``
    bodies are returned as the same object, so the server can still use
    sendfile; only their ``close`` is replaced by one that runs the original
    in the request's context and then ends the request, so close callbacks
    (Django's ``request_finished`` for a ``FileResponse``) see the id.

    Behind another adapter that serves the same request (an ASGI adapter in
    front of a WSGI bridge, or this adapter twice), it takes that adapter's id
    instead of choosing one.

    Args:
        app: The WSGI application to wrap.
        config: The header configuration; ``None`` means ``Config()``.
    """

    def __init__(self, app: WSGIApplication, *, config: Config | None = None) -> None:
        # Imported here, not with the module: see correlation._config.
        from correlation._config import config_or_default

        self.app = app
        self.config = config = config_or_default(config)
        self._header_name_lower = config.header_name.lower()
        # Whether ``resolve`` may need other headers: only fallback sources
        # the config trusts.
        self._reads_fallbacks = bool(config.fallback_sources) and config.trust_incoming
        self._environ_key = _environ_key(config.header_name)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Serve one request; see the class docstring."""
        incoming = environ.get(self._environ_key)

        # 1. Agree with an adapter further out that serves this very request:
        # it marked the environ, or a bridge's scope, or (behind asgiref's
        # WsgiToAsgi, which passes no mark) it is the live ASGI binding.
        mark = environ.get(_context.MARK_KEY)
        if mark is None and "asgi.scope" in environ:
            mark = _scope_mark(environ["asgi.scope"])
        outer = _context.outer_binding(mark, True)  # bridged: see there
        if outer is not None:
            return self._serve_inside(outer, environ, incoming, start_response)

        # 2. Choose the id and bind it, in a context of the request's own: the
        # server thread's is never touched.
        # The fallback headers are read only if the config names some, and
        # only when the id header gives no id.
        read = _environ_reader(environ) if self._reads_fallbacks else None
        request_id = _ids.resolve(self.config, incoming, read)
        context = contextvars.copy_context()
        binding = context.run(_context.begin, request_id, "wsgi")

        # 3. Call the app with the id in the environ and the response header.
        self._update_environ(environ, incoming, binding, request_id)
        start_response = self._start_response_for_app(
            start_response, binding, request_id
        )
        try:
            body = context.run(self.app, environ, start_response)
            # 4. End the request once the body has been sent and closed.
            return _body_in_request(body, environ, context, binding)
        except BaseException as exc:
            # BaseException too: a SystemExit or KeyboardInterrupt must not
            # leave the id alive in contexts the request copied.
            if isinstance(exc, Exception):
                _context.note_request_id(exc, request_id)
            _context.end(binding)
            raise

    def _serve_inside(
        self,
        outer: _context.Binding,
        environ: WSGIEnvironment,
        incoming: str | None,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Serve a request whose id an adapter further out chose and owns.

        This adapter writes what its own config asks for (the environ, the
        response header), with the outer adapter's id; the outer one ends it.
        """
        request_id = outer.request_id
        if request_id is None:  # pragma: no cover - outer_binding gives live ones
            raise RuntimeError("the request of the outer adapter has ended")
        self._update_environ(environ, incoming, outer, request_id)
        start_response = self._start_response_for_app(start_response, outer, request_id)
        return self.app(environ, start_response)

    def _update_environ(
        self,
        environ: WSGIEnvironment,
        incoming: str | None,
        mark: _context.Binding,
        request_id: str,
    ) -> None:
        """Put the id and the mark in the environ, in place (WSGI's custom)."""
        environ[_ENVIRON_KEY] = request_id
        environ[_context.MARK_KEY] = mark
        # ``resolve`` returns the very object it kept, so identity tells
        # whether the header already holds the final id.
        if self.config.update_request_header and request_id is not incoming:
            environ[self._environ_key] = request_id

    def _start_response_for_app(
        self,
        start_response: StartResponse,
        binding: _context.Binding,
        request_id: str,
    ) -> StartResponse:
        """*start_response*, adding the id header; as it is when none is echoed."""
        if not self.config.response_header:
            return start_response
        header = (self.config.header_name, request_id, self._header_name_lower)
        return _StartResponse(start_response, header, binding).start_response


def _environ_key(header_name: str) -> str:
    """Where a WSGI server files a request header: ``HTTP_X_REQUEST_ID``.

    Django's ``request.META`` follows the same convention under ASGI too, so
    ``adapters.django`` uses this and ``_environ_reader`` as well.
    """
    return "HTTP_" + header_name.upper().replace("-", "_")


def _environ_reader(environ: Mapping[str, Any]) -> Callable[[str], str | None]:
    """For ``resolve``: a header's value by name, as the server filed it."""

    def read(name: str) -> str | None:
        value = environ.get(_environ_key(name))
        return value if isinstance(value, str) else None

    return read


def _scope_mark(scope: object) -> object:
    """The mark an outer ASGI adapter left in the scope a2wsgi passes on."""
    return scope.get(_context.MARK_KEY) if isinstance(scope, dict) else None


class _StartResponse:
    """The server's ``start_response``, with the id header added once."""

    __slots__ = ("_binding", "_header", "_start_response")

    def __init__(
        self,
        start_response: StartResponse,
        header: tuple[str, str, str],
        binding: _context.Binding,
    ) -> None:
        self._start_response = start_response
        #: (name, id, name lowercased)
        self._header = header
        self._binding = binding

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        """Start the response, adding the id header unless the app set it."""
        if self._binding.request_id is None:
            raise RuntimeError("start_response was called after the request ended")
        name, request_id, name_lower = self._header
        for key, _ in headers:
            if key.lower() == name_lower:
                # The application chose its own value: keep it, add no second.
                break
        else:
            headers = [*headers, (name, request_id)]
        return self._start_response(status, headers, exc_info)


def _body_in_request(
    body: Iterable[bytes],
    environ: WSGIEnvironment,
    context: contextvars.Context,
    binding: _context.Binding,
) -> Iterable[bytes]:
    """The body to hand the server: its iteration and ``close`` in the request."""
    if type(body) is list or type(body) is tuple:
        # No application code runs while a list is sent: the request is over.
        _context.end(binding)
        return body
    file_wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
        return _file_wrapper_closed_in_request(body, context, binding)
    return _Body(body, context, binding)


def _file_wrapper_closed_in_request(
    body: Iterable[bytes], context: contextvars.Context, binding: _context.Binding
) -> Iterable[bytes]:
    """Keep the file wrapper itself (sendfile), but close it in the request.

    Wrapping it in ``_Body`` would hide it from the server's sendfile check,
    so its ``close`` attribute is replaced instead. Where that is impossible
    (no ``close``, or an object that refuses the attribute) the request ends
    now: no application code runs while a file is sent.
    """
    close = getattr(body, "close", None)
    if close is not None:

        def close_in_request() -> None:
            _close_in_request(close, context, binding)

        try:
            setattr(body, "close", close_in_request)  # noqa: B010
        except (AttributeError, TypeError):
            pass
        else:
            return body
    _context.end(binding)
    return body


def _close_in_request(
    close: Callable[[], object] | None,
    context: contextvars.Context,
    binding: _context.Binding,
) -> None:
    """Run a body's ``close`` in the request's context, then end the request."""
    try:
        if close is not None:
            context.run(close)
    except Exception as exc:
        _context.note_request_id(exc, binding.request_id)
        raise
    finally:
        _context.end(binding)


#: What ``next`` returns at the end of a body (no chunk is this object).
_END: Any = object()


class _Body:
    """The response body, iterated and closed in the request's own context.

    A plain iterable, as PEP 3333 asks: servers call ``iter()`` on it once.
    """

    __slots__ = ("_binding", "_context", "_iterable", "_iterator")

    def __init__(
        self,
        iterable: Iterable[bytes],
        context: contextvars.Context,
        binding: _context.Binding,
    ) -> None:
        self._iterable = iterable
        self._context = context
        self._binding = binding
        self._iterator: Iterator[bytes] = context.run(iter, iterable)

    def __iter__(self) -> Iterator[bytes]:
        # A generator, not a __next__ method: resuming it costs less than a
        # Python call per chunk, and it ends on a return, not an exception
        # (with the sentinel below, 10 % of the overhead of a wrapped body,
        # counted when it replaced the __next__ wrapper).
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        run = self._context.run
        iterator = self._iterator
        try:
            while True:
                # The default, not StopIteration, marks the end: catching the
                # exception would cost 1,100 instructions per body (callgrind,
                # 4 % of the adapter's overhead inside Flask).
                chunk = run(next, iterator, _END)
                if chunk is _END:
                    return
                yield chunk
        except Exception as exc:
            _context.note_request_id(exc, self._binding.request_id)
            raise

    def close(self) -> None:
        """Close the wrapped body in the request's context, then end it."""
        _close_in_request(
            getattr(self._iterable, "close", None), self._context, self._binding
        )

    def __del__(self, end: Callable[[_context.Binding], None] = _context.end) -> None:
        # A server that drops the body without calling close() (PEP 3333 says
        # it must; asgiref's WsgiToAsgi, django/asgiref#587, does not) still
        # ends the request here: copies of its context stop seeing the id.
        # The garbage collector may run this in any context, and at interpreter
        # shutdown, when module globals are gone: hence ``end`` bound here.
        # Closed bodies, the common case, have ended already: no call at all.
        if self._binding.request_id is not None:
            end(self._binding)
