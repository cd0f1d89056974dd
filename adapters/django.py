"""Django ``MIDDLEWARE`` entry: the request id inside Django's own request cycle.

Put it first in ``MIDDLEWARE``::

    MIDDLEWARE = [
        "adapters.django.RequestIdMiddleware",
        ...
    ]

Its config is the setting ``CORRELATION_CONFIG`` (a ``correlation.Config``;
absent or ``None`` means ``Config()``). It serves projects configured through
``MIDDLEWARE`` and Django's test ``Client`` and ``AsyncClient``, which never
pass through ``wsgi.py`` or ``asgi.py``. In production, keep wrapping
``get_wsgi_application()`` or ``get_asgi_application()`` with the WSGI or ASGI
adapter as well: only an adapter around the whole application covers streamed
bodies and ``request_finished``. Behind such an adapter this middleware adopts
the adapter's id (one id, one response header), whatever its own config says.

Django is imported when the middleware is built, never with this module.
"""

from __future__ import annotations

from adapters.wsgi import _environ_key, _environ_reader
from correlation import _context, _ids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

del TYPE_CHECKING

__all__ = ["RequestIdMiddleware"]

#: Where the id is kept in ``request.META``, as the WSGI adapter keeps it in
#: the environ (which is ``request.META`` under WSGI).
_META_KEY = "correlation.request_id"


class RequestIdMiddleware:
    """Bind the request's id around the rest of Django's middleware and the view.

    Sync and async capable: Django calls it the way its handler runs, with no
    thread hop in an async stack. The id comes from ``header_name`` in
    ``request.META`` (then ``fallback_sources``) by the same rules as the
    adapters; ``request.META`` and ``request.headers`` show the final id, and
    the response carries it once (a header the view set itself is kept).
    Afterwards the caller's context holds no id.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction
        from django.conf import settings

        from correlation._config import Config, config_or_default
        from correlation._config import shown as _shown

        config = getattr(settings, "CORRELATION_CONFIG", None)
        if config is not None and not isinstance(config, Config):
            raise TypeError(
                f"the setting CORRELATION_CONFIG must be a correlation.Config or"
                f" None, got {_shown(config)}"
            )
        self.config = config = config_or_default(config)
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)
        self._meta_key = _environ_key(config.header_name)
        self._header_store_key = config.header_name.lower()
        # Any: ``type(headers) is`` it must not narrow ``headers`` to ``object``.
        self._headers_type: Any = _headers_type_to_write_directly()
        self._reads_fallbacks = bool(config.fallback_sources) and config.trust_incoming

    def __call__(self, request: Any) -> Any:
        """Serve one request; see the class docstring."""
        if self._is_async:
            return self._serve_async(request)
        binding, owned = self._begin(request)
        try:
            response = self.get_response(request)
            self._add_header(response, binding, owned)
            if owned and response.status_code >= 400:
                self._log_response(request, response)
            return response
        finally:
            # No ``except`` to note the id on an error: Django turns every
            # exception of the middleware after this one into a response.
            if owned:
                _context.end(binding)

    async def _serve_async(self, request: Any) -> Any:
        binding, owned = self._begin(request)
        try:
            response = await self.get_response(request)
            self._add_header(response, binding, owned)
            if owned and response.status_code >= 400:
                # As Django's handler logs it: off the event loop.
                from asgiref.sync import sync_to_async

                await sync_to_async(self._log_response, thread_sensitive=False)(
                    request, response
                )
            return response
        finally:
            if owned:
                _context.end(binding)

    def _begin(self, request: Any) -> tuple[_context.Binding, bool]:
        """The binding the request runs under, and whether this middleware owns it.

        1. An adapter around the application that serves this very request
           left its mark: under WSGI in the environ, which is ``request.META``;
           under ASGI in ``request.scope``. Its id is the request's.
        2. Otherwise the id is chosen here and bound until the response.
        """
        meta = request.META
        scope = getattr(request, "scope", None)
        if scope is not None:
            outer = _context.outer_binding(scope.get(_context.MARK_KEY))
        else:
            # A WSGI environ a bridge built from an ASGI scope may lack the
            # mark: see outer_binding.
            outer = _context.outer_binding(meta.get(_context.MARK_KEY), True)
        if outer is not None and outer.request_id is not None:
            self._update_request(request, outer.request_id)
            return outer, False
        incoming = meta.get(self._meta_key)
        read = _environ_reader(meta) if self._reads_fallbacks else None
        request_id = _ids.resolve(self.config, incoming, read)
        binding = _context.begin(request_id, "django")
        self._update_request(request, request_id)
        return binding, True

    @staticmethod
    def _log_response(request: Any, response: Any) -> None:
        """Log an error response on ``django.request`` while the id is bound.

        Django's handler logs a 4xx or 5xx response (a 404's "Not Found")
        after the whole middleware chain has returned, where this middleware
        has ended the id. Logged here, as Django would, the record carries the
        id; Django marks the response logged and does not log it again.
        """
        from django.utils.log import log_response

        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
        )

    def _update_request(self, request: Any, request_id: str) -> None:
        """Show the final id in ``request.META`` and ``request.headers``."""
        meta = request.META
        meta[_META_KEY] = request_id
        if self.config.update_request_header and meta.get(self._meta_key) != request_id:
            meta[self._meta_key] = request_id
            # ``request.headers`` is cached on first use: drop the copy made
            # from the old META, so it is built again with the final id.
            vars(request).pop("headers", None)

    def _add_header(
        self, response: Any, binding: _context.Binding, owned: bool
    ) -> None:
        """The id on the response once, unless the view set the header itself.

        Behind an adapter, the adapter writes the response header as its own
        config says: the outermost one decides.
        """
        if not (owned and self.config.response_header):
            return
        headers = response.headers
        if type(headers) is self._headers_type:
            # Django's own ``name not in headers`` raises and catches a
            # KeyError when the header is absent, and its ``headers[name] =``
            # checks the name and value again: 9,000 instructions per request,
            # a third of the middleware's overhead (callgrind, Django 5.2).
            # Both are already known to pass (the name is a token, checked by
            # ``Config``; the id passes the hard floor: visible ASCII), so the
            # entry is written as ``__setitem__`` would write it, into the
            # store whose layout ``_headers_type_to_write_directly`` checked.
            store = headers._store
            if self._header_store_key not in store:
                store[self._header_store_key] = (
                    self.config.header_name,
                    binding.request_id,
                )
        elif self.config.header_name not in headers:
            headers[self.config.header_name] = binding.request_id


def _headers_type_to_write_directly() -> type | None:
    """Django's ``ResponseHeaders``, if its entries are kept as this module expects.

    ``ResponseHeaders`` keeps each header in ``_store`` as ``lowercased name:
    (name, value)``. That is Django's internals, not its API, so it is checked
    on a probe when the middleware loads; with any other layout the middleware
    goes through the public mapping (``None`` here).
    """
    from django.http.response import ResponseHeaders

    probe = ResponseHeaders({})
    probe["X-Probe"] = "value"
    if getattr(probe, "_store", None) == {"x-probe": ("X-Probe", "value")}:
        return ResponseHeaders
    return None
