"""The Celery tests' brokers: named ones must answer, and runs leave nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celery_app import build_app
from celery_brokers import (
    BrokerUnavailable,
    open_broker,
    requested_brokers,
)
from servers import free_port

from correlation import bound_request_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("memory,filesystem", ["memory", "filesystem"]),
        (" redis , amqp,redis ", ["redis", "amqp"]),
        ("memory,filesystem,redis,amqp", ["memory", "filesystem", "redis", "amqp"]),
    ],
)
def test_the_variable_names_the_brokers(value: str, expected: list[str]) -> None:
    assert requested_brokers(value) == expected


@pytest.mark.parametrize("value", ["", ",", "rabbitmq", "memory,sqs"])
def test_an_unknown_broker_is_an_error(value: str) -> None:
    with pytest.raises(ValueError, match=r"CORRELATION_TEST_BROKERS=.* must name"):
        requested_brokers(value)


def test_an_unreachable_redis_fails_loudly(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    with (
        pytest.raises(BrokerUnavailable, match=f"no Redis server answers at .*:{port}"),
        open_broker("redis", tmp_path, redis_address=("127.0.0.1", port)),
    ):
        pass


def test_an_unreachable_amqp_broker_fails_loudly(tmp_path: Path) -> None:
    port = free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}//"
    with (
        pytest.raises(BrokerUnavailable, match=f"no AMQP broker answers at .*:{port}"),
        open_broker("amqp", tmp_path, amqp_url=url),
    ):
        pass


def test_a_filesystem_run_writes_only_in_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages and kombu's exchange tables stay in the broker's folder."""
    elsewhere = tmp_path / "working-directory"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with open_broker("filesystem", tmp_path / "broker") as broker:
        app = build_app(broker.app_config("cleanup"))
        with bound_request_id():
            app.tasks["probe.whoami"].delay()
        app.close()
        assert list((tmp_path / "broker" / "cleanup" / "control").iterdir())
    assert list(elsewhere.iterdir()) == []


# Where a server broker is in the run, a run on it must leave nothing behind.
# (Defined only then: a broker the run does not name is never contacted.)

if "redis" in requested_brokers():

    def test_a_redis_run_uses_an_empty_database_and_flushes_it(tmp_path: Path) -> None:
        import redis

        with open_broker("redis", tmp_path) as broker:
            client = redis.Redis.from_url(broker.url)
            app = build_app(broker.app_config("cleanup"))
            with bound_request_id():
                app.tasks["probe.whoami"].delay()  # a message nobody takes
            assert client.dbsize() > 1
            app.close()
        assert client.dbsize() == 0
        client.close()


if "amqp" in requested_brokers():

    def test_an_amqp_run_deletes_its_queues(tmp_path: Path) -> None:
        from kombu import Connection

        with open_broker("amqp", tmp_path) as broker:
            app = build_app(broker.app_config("cleanup"))
            with bound_request_id():
                app.tasks["probe.whoami"].delay()
            app.close()
            (queue,) = broker.names
            with Connection(broker.url) as connection:
                channel: Any = connection.default_channel  # kombu's type lacks it
                declared = channel.queue_declare(queue, passive=True)
                assert declared.message_count == 1
        with Connection(broker.url) as connection:
            channel = connection.default_channel
            with pytest.raises(Exception, match="NOT_FOUND"):
                channel.queue_declare(queue, passive=True)
