"""Sentry: every event captured inside a unit of work is tagged with its id.

Call ``install()`` once, next to ``sentry_sdk.init()`` (before or after)::

    import sentry_sdk
    from adapters.sentry import install

    sentry_sdk.init(dsn="https://key@sentry.example/1")
    install()

It adds one global event processor, which Sentry runs for every event and
transaction as it is captured. The processor reads ``get_request_id()`` at
that moment and puts it in that event's ``tags``; it never writes the id
into a Sentry scope. Writing it into a scope is what leaks: a scope outlives
the request whenever the toolkit's adapter wraps the app outside Sentry's
own middleware, and the next event captured there (a startup error, a
background job) would carry the finished request's id.

Where Sentry captures an error matters. Sentry's framework integrations
(Django, Flask, Starlette, FastAPI) capture a view's error inside the app,
inside the toolkit's adapter, so the event is tagged. Sentry's bare
``SentryAsgiMiddleware`` and ``SentryWsgiMiddleware`` capture an error that
escapes the app where the error comes out of them: wrap them with the
toolkit's adapter (the adapter outermost), or that event is captured after
the request's unit of work has ended and carries no tag.

sentry-sdk is not imported by this module, only by ``install()``; install it
with the ``sentry`` extra.
"""

from __future__ import annotations

from adapters import _extras
from correlation import _context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint
del TYPE_CHECKING

_extras.require(__name__, "sentry_sdk", extra="sentry", label="sentry-sdk")

__all__ = ["install"]

#: Sentry's rule for a tag key: at most 32 letters, digits, ``_``, ``.``,
#: ``:`` and ``-``. Sentry drops a tag whose key breaks it.
_TAG_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
)
_MAX_TAG_LENGTH = 32

#: The tag ``install()`` last set; ``None`` before the first ``install()``.
_tag: str | None = None


def install(*, tag: str = "request_id") -> None:
    """Tag every Sentry event captured while an id is current, in this process.

    An event captured inside a unit of work (a request, a
    ``bound_request_id`` block, a task) gets ``tag`` set to the id, unless
    the event already has that tag (``sentry_sdk.set_tag(tag, ...)`` by the
    application is kept); an event captured outside one gets none. Calling
    it again changes the tag's name and adds no second processor.

    Args:
        tag: The tag's name: 1 to 32 letters, digits, ``_``, ``.``, ``:`` or
            ``-``, as Sentry requires of a tag key.

    Raises:
        TypeError: *tag* is not a ``str``.
        ValueError: *tag* is empty, longer than 32 characters or holds other
            characters.
    """
    global _tag
    if not isinstance(tag, str):
        raise TypeError(f"tag must be a str, got {tag!r:.100}")
    if not 0 < len(tag) <= _MAX_TAG_LENGTH or not _TAG_CHARACTERS.issuperset(tag):
        raise ValueError(
            f"tag must be 1 to {_MAX_TAG_LENGTH} letters, digits, '_', '.', ':'"
            f" or '-' (Sentry's rule for a tag key), got {tag!r:.100}"
        )
    first = _tag is None
    _tag = tag
    if first:
        from sentry_sdk.scope import add_global_event_processor

        add_global_event_processor(_tag_event)


def _tag_event(event: Event, hint: Hint) -> Event:
    """The global event processor: the current id as the event's tag."""
    request_id = _context.get_request_id()
    tag = _tag
    if request_id is None or tag is None:
        return event
    tags = event.setdefault("tags", {})
    # Sentry's own integrations keep tags in a dict; an event built by hand
    # may hold something else, which is left alone rather than broken.
    if isinstance(tags, dict):
        tags.setdefault(tag, request_id)
    return event
