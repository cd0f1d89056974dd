"""``adapters.celery``: connecting, the header key's rules, and the receivers.

What a task sees on each broker and way of running is in
``integration/test_celery.py``; here the publish side is read off real
messages (kombu's in-memory transport, no worker), and the task side off
eager calls.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals
from celery_app import build_app

import adapters.celery
from adapters.celery import DEFAULT_HEADER_KEY, connect, disconnect
from correlation import Config, bound_request_id, get_request_id


@pytest.fixture(autouse=True)
def _connected_as_the_suite_expects() -> Iterator[None]:
    """Each test may connect or disconnect; afterwards the defaults are back."""
    yield
    connect()


@pytest.fixture
def app() -> Iterator[Celery]:
    app = build_app(
        {
            "broker_url": "memory://",
            "result_backend": "cache+memory://",
            "task_default_queue": "correlation-tests-adapter",
        }
    )
    yield app
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's own type lacks it
        channel.queue_purge("correlation-tests-adapter")
    app.close()


def published_headers(app: Celery, **options: Any) -> dict[str, Any]:
    """The headers of the message ``probe.whoami`` is published with."""
    seen: list[dict[str, Any]] = []

    def record(headers: dict[str, Any], **_: object) -> None:
        seen.append(dict(headers))

    signals.after_task_publish.connect(record, weak=False, dispatch_uid="test-record")
    try:
        app.tasks["probe.whoami"].apply_async(**options)
    finally:
        signals.after_task_publish.disconnect(dispatch_uid="test-record")
    (headers,) = seen
    return headers


def our_receivers() -> list[int]:
    """How many receivers the integration has on each of its three signals."""
    return [
        sum(1 for key, _ in signal.receivers if key[0] == adapters.celery._DISPATCH_UID)
        for signal in (
            signals.before_task_publish,
            signals.task_prerun,
            signals.task_postrun,
        )
    ]


# --- the publish side -------------------------------------------------------------


def test_publishing_inside_a_unit_of_work_adds_the_id(app: Celery) -> None:
    with bound_request_id() as request_id:
        headers = published_headers(app)
    assert headers[DEFAULT_HEADER_KEY] == request_id


def test_publishing_outside_adds_nothing(app: Celery) -> None:
    assert DEFAULT_HEADER_KEY not in published_headers(app)


@pytest.mark.parametrize("explicit", ["explicit-id", None, 7])
def test_an_explicit_value_is_kept(app: Celery, explicit: object) -> None:
    with bound_request_id():
        headers = published_headers(app, headers={DEFAULT_HEADER_KEY: explicit})
    assert headers[DEFAULT_HEADER_KEY] == explicit


def test_connect_again_replaces_the_settings_and_adds_no_receiver(app: Celery) -> None:
    connect(header_key="x-job-id")
    connect(header_key="x-job-id")
    assert our_receivers() == [1, 1, 1]
    with bound_request_id() as request_id:
        headers = published_headers(app)
    assert headers["x-job-id"] == request_id
    assert DEFAULT_HEADER_KEY not in headers


def test_the_worker_checks_the_id_with_the_config(app: Celery) -> None:
    whoami = app.tasks["probe.whoami"]
    connect(config=Config(validator=str.isdigit, generator=lambda: "424242"))
    assert whoami.apply(headers={DEFAULT_HEADER_KEY: "12345"}).get() == "12345"
    assert whoami.apply(headers={DEFAULT_HEADER_KEY: "abc"}).get() == "424242"
    connect(config=Config(trust_incoming=False, generator=lambda: "fresh"))
    assert whoami.apply(headers={DEFAULT_HEADER_KEY: "12345"}).get() == "fresh"


def test_receivers_survive_garbage_collection(app: Celery) -> None:
    def connect_somewhere_else() -> None:
        connect(header_key="x-gc")

    connect_somewhere_else()
    gc.collect()
    assert our_receivers() == [1, 1, 1]
    with bound_request_id() as request_id:
        assert published_headers(app)["x-gc"] == request_id


def test_disconnect_undoes_connect(app: Celery) -> None:
    disconnect()
    assert our_receivers() == [0, 0, 0]
    with bound_request_id() as request_id:
        assert DEFAULT_HEADER_KEY not in published_headers(app)
        # Nothing binds the header's id: the eager task sees the caller's.
        whoami = app.tasks["probe.whoami"]
        assert (
            whoami.apply(headers={DEFAULT_HEADER_KEY: "explicit-id"}).get()
            == request_id
        )
    disconnect()  # twice: nothing to undo
    assert our_receivers() == [0, 0, 0]


def test_the_receivers_never_raise(app: Celery) -> None:
    """Celery logs a receiver's exception with its repr: there must be none."""
    whoami = app.tasks["probe.whoami"]
    with bound_request_id():
        responses = signals.before_task_publish.send(sender="probe.whoami")
        assert not any(isinstance(r, Exception) for _, r in responses)
    # A message header named "headers" that is no dict.
    assert whoami.apply(headers="not a dict").get() is not None  # type: ignore[arg-type]
    assert get_request_id() is None


# --- the header key ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "id",
        "task",
        "correlation_id",
        "root_id",
        "parent_id",
        "retries",
        "eta",
        "headers",
        "is_eager",
        "reply_to",
        "stamps",
        "Correlation_ID",
    ],
)
def test_a_celery_name_is_refused(name: str) -> None:
    with pytest.raises(
        ValueError, match=rf"header_key must not be a name Celery .*'{name}'"
    ):
        connect(header_key=name)


@pytest.mark.parametrize(
    ("value", "error", "rule"),
    [
        ("", ValueError, "must be 1 to 128 characters"),
        ("x" * 129, ValueError, "must be 1 to 128 characters"),
        ("request id", ValueError, "must hold only letters, digits"),
        ("id\r\nX", ValueError, "must hold only letters, digits"),
        ("caf\u00e9", ValueError, "must hold only letters, digits"),
        (b"request_id", TypeError, "must be a str"),
        (None, TypeError, "must be a str"),
    ],
)
def test_a_bad_header_key_is_refused(value: object, error: type, rule: str) -> None:
    with pytest.raises(error, match=f"header_key {rule}"):
        connect(header_key=value)  # type: ignore[arg-type]


def test_a_refused_setting_leaves_the_last_one(app: Celery) -> None:
    connect(header_key="x-kept")
    with pytest.raises(ValueError, match="header_key"):
        connect(header_key="id")
    with pytest.raises(TypeError, match=r"config must be a correlation\.Config"):
        connect(config={"header_name": "X"})  # type: ignore[arg-type]
    with bound_request_id() as request_id:
        assert published_headers(app)["x-kept"] == request_id


@pytest.mark.parametrize("key", [DEFAULT_HEADER_KEY, "x-request-id", "job.id", "A1"])
def test_a_key_of_your_own_is_accepted(key: str) -> None:
    connect(header_key=key)
    assert adapters.celery._settings is not None
    assert adapters.celery._settings.header_key == key
