"""WSGI (PEP 3333) middleware that gives every request an id.

Wrap any WSGI application with it: Flask
(``app.wsgi_app = RequestIdMiddleware(app.wsgi_app)``) or Django's
``get_wsgi_application()``. It follows the same rules as the ASGI adapter,
through the same core pipeline, so both answer identically.
"""

from __future__ import annotations

import contextvars
import typing

from correlation import _config, _context, _ids

if typing.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

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

    Args:
        app: The WSGI application to wrap.
        config: The header configuration; ``None`` means ``Config()``.

    .. versionadded:: 0.1
    """

    def __init__(
        self, app: WSGIApplication, *, config: _config.Config | None = None
    ) -> None:
        self.app = app
        self.config = config = _config.config_or_default(config)
        name = config.header_name
        self._name_lower = name.lower()
        self._environ_header = "HTTP_" + name.upper().replace("-", "_")

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Serve one request; see the class docstring."""
        context = contextvars.copy_context()
        return context.run(self._serve, context, environ, start_response)

    def _serve(
        self,
        context: contextvars.Context,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        config = self.config
        raw = environ.get(self._environ_header)

        binding = None
        outer = _context.current_binding()
        if (
            outer is not None
            and outer.request_id is not None
            # An outer WSGI adapter marks the environ, an outer ASGI adapter
            # its scope (which a2wsgi passes on as environ["asgi.scope"]).
            # Behind asgiref's WsgiToAsgi, which passes no scope, the
            # rewritten request header is the only sign. A binding merely
            # inherited from an earlier request has none of them.
            and (_marker(environ) is outer or raw == outer.request_id)
        ):
            request_id = outer.request_id
        else:
            incoming = None if raw is None else _ids.join_header_values([raw])
            request_id = _config.resolve_request_id(config, incoming)
            binding = outer = _context.bind_request_id(request_id)

        environ[_ENVIRON_KEY] = request_id
        environ[_context.MARKER_KEY] = outer
        if config.update_request_header:
            environ[self._environ_header] = request_id

        if config.response_header:
            start_response = _id_start_response(
                start_response, config.header_name, self._name_lower, request_id
            )

        try:
            result = self.app(environ, start_response)
            if binding is None:
                # The outer adapter owns the request's lifetime.
                return result
            if type(result) in (list, tuple):
                _context.unbind(binding)
                return result
            if _is_file_wrapper(environ, result):
                return _close_file_wrapper_in_context(result, context, binding)
            return _Body(result, iter(result), context, binding)
        except BaseException as exc:
            # BaseException too: a SystemExit or KeyboardInterrupt must not
            # leave the id alive in contexts the request copied.
            if binding is not None and binding.request_id is not None:
                if isinstance(exc, Exception):
                    _context.note_request_id(exc, request_id)
                _context.unbind(binding)
            raise


def _id_start_response(
    start_response: StartResponse, name: str, name_lower: str, request_id: str
) -> StartResponse:
    """Wrap the server's ``start_response`` to add the id header once."""

    def start_response_with_id(
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> typing.Callable[[bytes], object]:
        for key, _ in headers:
            if key.lower() == name_lower:
                # The application chose its own value: keep it, add no second.
                break
        else:
            headers = [*headers, (name, request_id)]
        return start_response(status, headers, exc_info)

    return start_response_with_id


def _marker(environ: WSGIEnvironment) -> object:
    marker = environ.get(_context.MARKER_KEY)
    if marker is None:
        scope = environ.get("asgi.scope")
        if isinstance(scope, dict):
            marker = scope.get(_context.MARKER_KEY)
    return marker


def _is_file_wrapper(environ: WSGIEnvironment, result: object) -> bool:
    file_wrapper = environ.get("wsgi.file_wrapper")
    return isinstance(file_wrapper, type) and isinstance(result, file_wrapper)


def _close_file_wrapper_in_context(
    result: Iterable[bytes], context: contextvars.Context, binding: _context.Binding
) -> Iterable[bytes]:
    """Keep the file wrapper itself (sendfile), but close it in the request.

    Wrapping it in ``_Body`` would hide it from the server's sendfile check,
    so its ``close`` attribute is replaced instead. Where that is impossible
    (no ``close``, or an object that refuses the attribute) the request ends
    now: no application code runs while a file is sent.
    """
    close = getattr(result, "close", None)
    if close is not None:

        def close_in_context() -> None:
            _close_in_context(close, context, binding)

        try:
            setattr(result, "close", close_in_context)  # noqa: B010
        except (AttributeError, TypeError):
            pass
        else:
            return result
    _context.unbind(binding)
    return result


def _close_in_context(
    close: typing.Callable[[], object] | None,
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
        if binding.request_id is not None:
            context.run(_context.unbind, binding)


class _Body:
    """The response body, iterated and closed in the request's own context."""

    __slots__ = ("_binding", "_context", "_iterable", "_iterator")

    def __init__(
        self,
        iterable: Iterable[bytes],
        iterator: Iterator[bytes],
        context: contextvars.Context,
        binding: _context.Binding,
    ) -> None:
        self._iterable = iterable
        self._iterator = iterator
        self._context = context
        self._binding = binding

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        try:
            return self._context.run(next, self._iterator)
        except StopIteration:
            raise
        except Exception as exc:
            _context.note_request_id(exc, self._binding.request_id)
            raise

    def close(self) -> None:
        """Close the wrapped body in the request's context, then end it."""
        close = getattr(self._iterable, "close", None)
        _close_in_context(close, self._context, self._binding)

    def __del__(self) -> None:
        # A server that drops the body without calling close() (PEP 3333 says
        # it must; asgiref's WsgiToAsgi, django/asgiref#587, does not) still
        # ends the request here: copies of its context stop seeing the id.
        self._binding.request_id = None
