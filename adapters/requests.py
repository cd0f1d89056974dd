"""requests: the current request id on every request a session sends.

::

    import requests
    from adapters.requests import propagate

    session = propagate(requests.Session(), hosts=[".internal"])

or, mounting the adapter yourself (its keyword arguments pass through to
``HTTPAdapter``)::

    session.mount("https://", RequestIdAdapter(hosts=[".internal"], max_retries=3))

``RequestIdAdapter`` is an ``HTTPAdapter``; requests sends every hop through
it (the first request, each redirect, each authentication re-send), and
urllib3's retries re-send what it prepared. The rules are
``correlation._outbound``'s. The module-level ``requests.get`` builds a new
session per call and cannot be covered: use a session.

Importing this module imports no requests: ``RequestIdAdapter`` is loaded on
first use. Install requests with the ``requests`` extra.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import requests

    from adapters._requests_adapter import RequestIdAdapter as RequestIdAdapter

del TYPE_CHECKING

__all__ = ["RequestIdAdapter", "propagate"]


def __getattr__(name: str) -> Any:
    # RequestIdAdapter subclasses requests' HTTPAdapter, so its module imports
    # requests: it is loaded when the name is first asked for.
    if name == "RequestIdAdapter":
        try:
            from adapters._requests_adapter import RequestIdAdapter
        except ImportError as exc:
            if exc.name != "requests":
                raise
            raise ImportError(
                "adapters.requests needs requests: pip install"
                " 'correlation-toolkit[requests]'",
                name="requests",
            ) from exc
        globals()[name] = RequestIdAdapter  # later lookups skip this function
        return RequestIdAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def propagate(
    session: requests.Session,
    *,
    header_name: str = "X-Request-ID",
    hosts: list[str] | None = None,
) -> requests.Session:
    """Mount a ``RequestIdAdapter`` for ``http://`` and ``https://``; return *session*.

    The settings of the ``HTTPAdapter`` mounted there before (``max_retries``
    and the pool sizes) are kept, so calling it on a tuned session, or again
    with other settings, changes only what this toolkit adds. Adapters mounted
    on longer prefixes (``https://api.example/``) are left alone and do not
    add the id.
    """
    from requests.adapters import HTTPAdapter

    adapter_type = __getattr__("RequestIdAdapter")
    mounted = getattr(session, "adapters", None)
    if not isinstance(mounted, dict):
        raise TypeError(
            f"propagate() takes a requests.Session, got {type(session).__name__}"
        )
    for prefix in ("http://", "https://"):
        current = mounted.get(prefix)
        if current is not None and not isinstance(current, HTTPAdapter):
            raise TypeError(
                f"propagate() replaces the adapter mounted for {prefix!r}, which is"
                f" not an HTTPAdapter ({type(current).__name__}); mount"
                f" RequestIdAdapter yourself, or subclass it"
            )
        settings: dict[str, Any] = {}
        if current is not None:
            settings = {
                "max_retries": current.max_retries,
                "pool_connections": current._pool_connections,
                "pool_maxsize": current._pool_maxsize,
                "pool_block": current._pool_block,
            }
        session.mount(
            prefix, adapter_type(header_name=header_name, hosts=hosts, **settings)
        )
    return session
