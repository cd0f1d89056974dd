"""WSGI (PEP 3333) middleware that gives every request an id.

Wrap any WSGI application with it: Flask
(``app.wsgi_app = RequestIdMiddleware(app.wsgi_app)``) or Django's
``get_wsgi_application()``. It follows the same rules as the ASGI adapter,
through the same core pipeline, so both answer identically.
"""

from __future__ import annotations

import contextvars

from correlation import _context, _ids

# typing is not imported at run time: it would be most of this module's
# import cost (mypy treats any constant named TYPE_CHECKING as True).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from correlation._config import Config

__all__ = ["RequestIdMiddleware"]

_MAX_LENGTH = _ids.MAX_DEFAULT_LENGTH

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

    Args:
        app: The WSGI application to wrap.
        config: The header configuration; ``None`` means ``Config()``.

    .. versionadded:: 0.1
    """

    def __init__(self, app: WSGIApplication, *, config: Config | None = None) -> None:
        # Imported here, not with the module: see correlation._config.
        from correlation._config import config_or_default

        self.app = app
        self.config = config = config_or_default(config)
        name = config.header_name
        self._name_lower = name.lower()
        self._environ_header = "HTTP_" + name.upper().replace("-", "_")
        # Decided once here, not per request (see the ASGI adapter).
        self._default_rule = (
            config.trust_incoming and config.validator is _ids.default_validator
        )
        self._default_generator = config.generator is _ids.generate_id

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Serve one request; see the class docstring."""
        config = self.config
        raw = environ.get(self._environ_header)
        # The live binding of an outer adapter, if any (an ended one has no id).
        outer = _context.get_binding()
        outer_id = None if outer is None else outer.request_id
        owner = None
        if outer_id is not None and (
            # An outer WSGI adapter marks the environ, an outer ASGI adapter
            # its scope (which a2wsgi passes on as environ["asgi.scope"]).
            # Behind asgiref's WsgiToAsgi, which passes no scope, the
            # rewritten request header is the only sign. A binding merely
            # inherited from an earlier request has none of them.
            _marker(environ) is outer or raw == outer_id
        ):
            # The outer adapter chose the id and owns the request's lifetime.
            request_id = outer_id
        else:
            if raw is None:
                if self._default_generator:
                    try:  # generate_id without its frame (see the ASGI adapter)
                        request_id = _ids.take_pooled_id()
                    except IndexError:
                        request_id = _ids.generate_id()
                else:
                    request_id = _ids.resolve_request_id(config, None)
            elif (
                self._default_rule
                and raw.isascii()
                and (
                    # The default rule's own first test, inlined (a hex or
                    # other alphanumeric id), then the whole rule.
                    (
                        (value := raw.encode("ascii")).isalnum()
                        and len(value) <= _MAX_LENGTH
                    )
                    or _ids.default_accepts_bytes(value)
                )
            ):
                # The common case: one value the default rule (which implies
                # the hard floor) accepts as sent. This is default_validator,
                # one call less: it runs on every request.
                request_id = raw
            else:
                incoming = _ids.join_header_values([raw])
                request_id = _ids.resolve_request_id(config, incoming)
            outer = owner = _Request()

        environ[_ENVIRON_KEY] = request_id
        environ[_context.MARKER_KEY] = outer
        if config.update_request_header and request_id is not raw:
            environ[self._environ_header] = request_id
        if config.response_header:
            if owner is None:
                # A nested adapter's wrapper, never bound: reads as ended.
                wrapper = _Request()
                wrapper.request_id = None
            else:
                wrapper = owner
            wrapper.start_response_ = start_response
            wrapper.header = (config.header_name, request_id)
            wrapper.name_lower = self._name_lower
            start_response = wrapper.start_response
        if owner is None:
            return self.app(environ, start_response)

        owner.request_id = request_id
        # The request's own context: bound with the ContextVar's own method
        # and entered with Context.run, no Python frame of ours in between.
        context = contextvars.copy_context()
        context.run(_context.set_binding, owner)
        try:
            result = context.run(self.app, environ, start_response)
            if type(result) in (list, tuple):
                # No application code runs while a list is sent.
                # _end, inlined: this is the common path.
                owner.request_id = None
                owner.start_response_ = _start_response_after_end
                return result
            file_wrapper = environ.get("wsgi.file_wrapper")
            if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
                return _close_file_wrapper_in_request(result, context, owner)
            # Built field by field: an __init__ would cost a Python call.
            body = _new_body(_Body)
            body._iterable = result
            body._iterator = context.run(iter, result)
            body._context = context
            body._request = owner
            return body
        except BaseException as exc:
            # BaseException too: a SystemExit or KeyboardInterrupt must not
            # leave the id alive in contexts the request copied.
            if isinstance(exc, Exception):
                _context.note_request_id(exc, request_id)
            _end(owner)
            raise


class _Request(_context.Binding):
    """The owning adapter's binding, and its wrapper of ``start_response``.

    The environ holds it (the stacking mark), and it holds the server's
    ``start_response``, which often holds the environ (waitress's is a
    closure over the task that owns it): a reference cycle. ``_end`` breaks
    it, so the request is freed when the server drops it, not at the next
    run of the cyclic garbage collector.
    """

    __slots__ = ("header", "name_lower", "start_response_")

    start_response_: StartResponse
    #: The response header to add: (name, id).
    header: tuple[str, str]
    name_lower: str

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        """The server's ``start_response``, with the id header added once."""
        name_lower = self.name_lower
        for key, _ in headers:
            # Lowering a short name costs less than checking its length first.
            if key.lower() == name_lower:
                # The application chose its own value: keep it, add no second.
                break
        else:
            headers = [*headers, self.header]
        return self.start_response_(status, headers, exc_info)


def _marker(environ: WSGIEnvironment) -> object:
    marker = environ.get(_context.MARKER_KEY)
    if marker is None:
        scope = environ.get("asgi.scope")
        if isinstance(scope, dict):
            marker = scope.get(_context.MARKER_KEY)
    return marker


def _close_file_wrapper_in_request(
    result: Iterable[bytes], context: contextvars.Context, request: _Request
) -> Iterable[bytes]:
    """Keep the file wrapper itself (sendfile), but close it in the request.

    Wrapping it in ``_Body`` would hide it from the server's sendfile check,
    so its ``close`` attribute is replaced instead. Where that is impossible
    (no ``close``, or an object that refuses the attribute) the request ends
    now: no application code runs while a file is sent.
    """
    close = getattr(result, "close", None)
    if close is not None:

        def close_in_request() -> None:
            _close_in_request(close, context, request)

        try:
            setattr(result, "close", close_in_request)  # noqa: B010
        except (AttributeError, TypeError):
            pass
        else:
            return result
    _end(request)
    return result


def _end(request: _Request) -> None:
    """End *request* for every context copy, and let go of the server's callable."""
    request.request_id = None
    request.start_response_ = _start_response_after_end


def _start_response_after_end(
    status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
) -> Callable[[bytes], object]:
    raise RuntimeError("start_response was called after the request ended")


def _close_in_request(
    close: Callable[[], object] | None,
    context: contextvars.Context,
    request: _Request,
) -> None:
    """Run a body's ``close`` in the request's context, then end the request."""
    try:
        if close is not None:
            context.run(close)
    except Exception as exc:
        _context.note_request_id(exc, request.request_id)
        raise
    finally:
        # _end, inlined: Flask's and Django's bodies end here.
        request.request_id = None
        request.start_response_ = _start_response_after_end


_new_body = object.__new__

#: What ``next`` returns at the end of a body (no chunk is this object).
_END: Any = object()


class _Body:
    """The response body, iterated and closed in the request's own context.

    A plain iterable, as PEP 3333 asks: servers call ``iter()`` on it once.
    """

    __slots__ = ("_context", "_iterable", "_iterator", "_request")

    _iterable: Iterable[bytes]
    _iterator: Iterator[bytes]
    _context: contextvars.Context
    _request: _Request

    def __iter__(self) -> Iterator[bytes]:
        # A generator, not a __next__ method: resuming it costs less than a
        # Python call per chunk, and it ends on a return, not an exception.
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        run = self._context.run
        iterator = self._iterator
        try:
            while True:
                # The default, not StopIteration, marks the end: an exception
                # would cost more than the chunk.
                chunk = run(next, iterator, _END)
                if chunk is _END:
                    return
                yield chunk
        except Exception as exc:
            _context.note_request_id(exc, self._request.request_id)
            raise

    def close(self) -> None:
        """Close the wrapped body in the request's context, then end it."""
        _close_in_request(
            getattr(self._iterable, "close", None), self._context, self._request
        )

    def __del__(self) -> None:
        # A server that drops the body without calling close() (PEP 3333 says
        # it must; asgiref's WsgiToAsgi, django/asgiref#587, does not) still
        # ends the request here: copies of its context stop seeing the id.
        _end(self._request)
