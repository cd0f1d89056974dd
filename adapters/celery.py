"""Celery: the id travels from the code that publishes a task to the task.

Call ``connect()`` where the Celery app is defined, so that every process
that imports the app runs it, publishers and workers alike::

    from celery import Celery
    from adapters.celery import connect

    app = Celery("shop")
    connect()

Three Celery signals carry the id, each through the core's seams:

``before_task_publish``
    A task published inside a unit of work (a request, a
    ``bound_request_id`` block, another task) carries the current id in its
    message headers under ``header_key``. A value already there (given with
    ``apply_async(headers=...)``, or carried by a retry) is kept; outside a
    unit of work nothing is added.
``task_prerun``
    The worker binds the id from the message for the task's run, checked like
    an incoming HTTP header with ``config``; a missing, non-string or
    rejected value gets a generated id, and the rejected value is logged
    nowhere. Everything the task publishes carries that id on, so chains,
    groups, chord callbacks and retries keep the first one.
``task_postrun``
    Celery sends it however the task ended; the binding ends there, so the
    worker thread holds no id afterwards and context copies made during the
    task read ``None``.

Eager execution (``task_always_eager``, ``.apply()``) publishes nothing. A
task called eagerly without the header runs under the caller's id and leaves
it intact (with no id current, it gets a fresh one, as a worker would give
it); with the header, it runs under that id and the caller's comes back
afterwards, also when the task raises.

Celery is not imported by this module, only by ``connect()`` and
``disconnect()``; install it with the ``celery`` extra. Message protocol 2,
Celery's default since 4.0, is required: protocol 1 keeps no custom headers
on the task's request.
"""

from __future__ import annotations

import threading

from adapters import _extras
from correlation import _config, _context, _ids

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from celery import Task

    from correlation._config import Config
del TYPE_CHECKING

_extras.require(__name__, "celery", extra="celery", label="Celery")

__all__ = ["DEFAULT_HEADER_KEY", "connect", "disconnect"]

DEFAULT_HEADER_KEY = "correlation_request_id"

#: Names Celery itself puts in a task message's headers, properties and body,
#: or on the task's request (``celery.app.task.Context`` adds its own at
#: ``connect()``). A header under one of them is overwritten or misread:
#: Celery sets ``correlation_id`` to the task id, for one.
_CELERY_NAMES = frozenset(
    {
        "argsrepr",
        "callbacks",
        "chain",
        "chord",
        "compression",
        "correlation_id",
        "delivery_info",
        "errbacks",
        "eta",
        "expires",
        "group",
        "group_index",
        "groups",
        "headers",
        "hostname",
        "id",
        "ignore_result",
        "kwargsrepr",
        "lang",
        "origin",
        "parent_id",
        "reply_to",
        "replaced_task_nesting",
        "retries",
        "root_id",
        "shadow",
        "stamped_headers",
        "stamps",
        "task",
        "timelimit",
        "utc",
    }
)

#: What a header key may hold: the characters every broker keeps in a header
#: name as they are (AMQP, Redis and the filesystem transport's JSON).
_KEY_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
)
_MAX_KEY_LENGTH = 128

#: One ``dispatch_uid`` for the three receivers: Celery keeps one receiver
#: per uid and signal, so ``connect()`` run again adds none.
_DISPATCH_UID = "correlation-toolkit"


class _Running(threading.local):
    """The bindings of the tasks running in this thread, innermost last.

    ``task_prerun`` and ``task_postrun`` run in the thread that runs the task
    (a pool's thread or process, or the caller of an eager ``apply()``), and
    Celery sends ``task_postrun`` however the task ended, so each run's
    binding is the top of its thread's list when it ends. Keeping it here
    rather than on ``task.request`` spares ``task_postrun`` a lookup of the
    request, 40 % of the integration's cost per eager call (callgrind,
    ``bench/celery_tasks.py``: 18,900 instructions above the floor before,
    11,200 after).
    """

    def __init__(self) -> None:
        self.bindings: list[tuple[str, _context.Binding]] = []


_running = _Running()


class _Settings:
    __slots__ = ("config", "header_key")

    def __init__(self, header_key: str, config: Config) -> None:
        self.header_key = header_key
        self.config = config


#: What ``connect()`` last set; ``None`` before it and after ``disconnect()``.
_settings: _Settings | None = None


def connect(
    *, header_key: str = DEFAULT_HEADER_KEY, config: Config | None = None
) -> None:
    """Carry the id from publisher to task, in this process.

    Call it where the Celery app is defined, so that every process importing
    the app (web workers, Celery workers, beat, scripts) runs it. Calling it
    again replaces ``header_key`` and ``config``; the receivers stay connected
    once, and strongly, so garbage collection never drops them.

    Args:
        header_key: The message header that carries the id: letters, digits,
            ``_``, ``-`` and ``.``, at most 128, and none of Celery's own
            message or request fields (``id``, ``correlation_id``,
            ``root_id``, ...), which Celery overwrites or misreads.
        config: How the worker checks the id it receives (the hard floor,
            ``validator``, ``trust_incoming``, ``generator``); ``None`` means
            ``Config()``.

    Raises:
        TypeError: *header_key* is not a ``str`` or *config* not a ``Config``.
        ValueError: *header_key* is empty, too long, holds other characters,
            or is one of Celery's own names.
    """
    global _settings
    key = _checked_header_key(header_key)
    checked_config = _config.config_or_default(config)
    from celery import signals

    _settings = _Settings(key, checked_config)
    signals.before_task_publish.connect(
        _add_id_to_message, weak=False, dispatch_uid=_DISPATCH_UID
    )
    signals.task_prerun.connect(_bind_task_id, weak=False, dispatch_uid=_DISPATCH_UID)
    signals.task_postrun.connect(_end_task_id, weak=False, dispatch_uid=_DISPATCH_UID)


def disconnect() -> None:
    """Undo ``connect()``: messages carry no id and tasks bind none.

    Call it between tasks: a task running when it is called keeps its id in
    its thread until that thread's next task ends.
    """
    global _settings
    from celery import signals

    _settings = None
    for signal in (
        signals.before_task_publish,
        signals.task_prerun,
        signals.task_postrun,
    ):
        signal.disconnect(dispatch_uid=_DISPATCH_UID)


def _checked_header_key(header_key: object) -> str:
    """Refuse a header key that a broker or Celery would not carry as it is."""
    if not isinstance(header_key, str):
        raise TypeError(f"header_key must be a str, got {_config.shown(header_key)}")
    if not header_key or len(header_key) > _MAX_KEY_LENGTH:
        raise ValueError(
            f"header_key must be 1 to {_MAX_KEY_LENGTH} characters long,"
            f" got {_config.shown(header_key)}"
        )
    if not _KEY_CHARACTERS.issuperset(header_key):
        raise ValueError(
            f"header_key must hold only letters, digits, '_', '-' and '.',"
            f" got {_config.shown(header_key)}"
        )
    if header_key.lower() in _celery_names():
        raise ValueError(
            f"header_key must not be a name Celery uses in its messages or task"
            f" requests, got {_config.shown(header_key)}; use a name of your own,"
            f" such as {DEFAULT_HEADER_KEY!r}"
        )
    return header_key


def _celery_names() -> frozenset[str]:
    """Celery's own names: the known ones and those of this Celery's requests."""
    from celery.app.task import Context

    request_fields = {
        name.lower() for name in vars(Context) if not name.startswith("_")
    }
    return _CELERY_NAMES | request_fields


def _add_id_to_message(headers: dict[str, object] | None = None, **_: object) -> None:
    """``before_task_publish``: the current id into the message's headers."""
    settings = _settings
    request_id = _context.get_request_id()
    if settings is None or request_id is None or headers is None:
        return
    headers.setdefault(settings.header_key, request_id)


def _bind_task_id(task_id: str, task: Task[Any, Any], **_: object) -> None:
    """``task_prerun``: bind the task's id for its run."""
    settings = _settings
    if settings is None:
        return
    request = task.request
    # Custom message headers: a worker's request gathers them in ``headers``;
    # ``apply(headers=...)`` puts its argument there.
    headers = request.headers
    incoming = headers.get(settings.header_key) if type(headers) is dict else None
    if incoming is None and request.is_eager and _context.get_request_id() is not None:
        return  # run eagerly under the caller's id, which stays as it is
    if not isinstance(incoming, str):
        incoming = None  # a non-string value is not an id: generate one
    binding = _context.begin(_ids.resolve(settings.config, incoming))
    _running.bindings.append((task_id, binding))


def _end_task_id(task_id: str, **_: object) -> None:
    """``task_postrun``: end the id the task's run was bound to."""
    bindings = _running.bindings
    if bindings and bindings[-1][0] == task_id:
        _context.end(bindings.pop()[1])
