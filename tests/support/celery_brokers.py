"""Celery on real brokers: which ones a run uses, and ways of running a task.

Not a test module. ``CORRELATION_TEST_BROKERS`` names the brokers, comma
separated (default ``memory,filesystem``, which need no server):

``memory``
    kombu's in-memory transport; it lives in one process, so only eager calls
    and a worker in the test process (``start_worker``) use it.
``filesystem``
    kombu's filesystem transport (``atomic_filesystem``, which writes each
    message whole before a reader can see it), in a folder of the run's own:
    real ``celery worker`` processes too.
``redis``
    Redis at 127.0.0.1:6379, in a database of the run's own that is empty
    when claimed and flushed afterwards.
``amqp``
    RabbitMQ at 127.0.0.1:5672 (guest/guest), with queues and exchanges of the
    run's own, deleted afterwards.

A broker that is named and does not answer raises ``BrokerUnavailable``,
which fails every test that uses it: nothing is skipped. Each broker has
several ways of running a task (``MODES``), each a ``Runner`` with an app and
a queue of its own, started on first use and kept until the session ends
(``Runners``).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery_app import CONFIG_VARIABLE, LIFETIME_VARIABLE, LOG_FORMAT, build_app
from servers import (
    ProcessOutput,
    await_started,
    start_in_session,
    stop_process_group,
    subprocess_environment,
)

import correlation

__all__ = [
    "AMQP_URL",
    "BROKERS_VARIABLE",
    "MODES",
    "REDIS_ADDRESS",
    "Broker",
    "BrokerUnavailable",
    "Runner",
    "Runners",
    "modes_for",
    "open_broker",
    "requested_brokers",
]

BROKERS_VARIABLE = "CORRELATION_TEST_BROKERS"
DEFAULT_BROKERS = "memory,filesystem"
KNOWN_BROKERS = ("memory", "filesystem", "redis", "amqp")
REDIS_ADDRESS = ("127.0.0.1", 6379)
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"

#: Ways of running a task: an eager call, a worker thread in this process,
#: and ``celery worker`` processes with each pool.
MODES = ("eager", "in-process", "prefork", "solo", "threads")
WORKER_POOLS = ("prefork", "solo", "threads")

#: A worker process stops itself after this many seconds, whatever happens.
WORKER_LIFETIME = 900
#: The key a run sets in the Redis database it claims.
_CLAIM_KEY = "correlation-toolkit-tests:claimed-by"

#: Celery's file result backend, writing each result whole (``atomic_filesystem``).
_FILE_RESULTS = "atomic_filesystem:ResultBackend+file://{}"

_SUPPORT_DIR = Path(__file__).resolve().parent
# Where the installed package lives, so a worker imports the same code.
_CODE_ROOT = Path(correlation.__file__).resolve().parents[1]


class BrokerUnavailable(RuntimeError):
    """A broker named in ``CORRELATION_TEST_BROKERS`` does not answer."""


def requested_brokers(value: str | None = None) -> list[str]:
    """The brokers *value* (default: the environment variable) names, checked."""
    if value is None:
        value = os.environ.get(BROKERS_VARIABLE, DEFAULT_BROKERS)
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in KNOWN_BROKERS]
    if unknown or not names:
        raise ValueError(
            f"{BROKERS_VARIABLE}={value!r} must name one or more of"
            f" {', '.join(KNOWN_BROKERS)}, comma separated"
        )
    return list(dict.fromkeys(names))


def modes_for(broker: str) -> tuple[str, ...]:
    """The ways a task runs on *broker*: the memory transport has no processes."""
    return MODES[:2] if broker == "memory" else MODES


@dataclass
class Broker:
    """One broker for this run: the settings each runner's app starts from."""

    name: str
    url: str
    backend: str
    workdir: Path
    #: Per-runner transport options (the filesystem transport's folders).
    transport_options: Callable[[str], dict[str, Any]] = lambda _: {}
    #: A transport class instead of the one the URL names (``module:Class``).
    transport: str | None = None
    #: Queue and exchange names used so far, for the clean-up.
    names: list[str] = field(default_factory=list)
    run_token: str = field(default_factory=lambda: secrets.token_hex(4))

    def app_config(self, runner: str) -> dict[str, Any]:
        """The config of *runner*'s app: its own queue, exchanges and events off."""
        queue = f"correlation-tests-{self.run_token}-{runner}"
        self.names.append(queue)
        return {
            "broker_url": self.url,
            "broker_transport": self.transport,
            "result_backend": self.backend,
            "broker_transport_options": self.transport_options(runner),
            "broker_connection_retry_on_startup": True,
            "task_default_queue": queue,
            "task_default_exchange": queue,
            "task_default_routing_key": queue,
            "event_exchange": f"{queue}.events",
            "control_exchange": f"{queue}.control",
            "worker_enable_remote_control": False,
            "worker_send_task_events": False,
            "worker_log_format": LOG_FORMAT,
            "worker_task_log_format": LOG_FORMAT,
            "worker_redirect_stdouts": False,
            # A chord's callback waits for its header in a polling task.
            "result_chord_retry_interval": 0.1,
        }


@contextmanager
def open_broker(
    name: str,
    workdir: Path,
    *,
    redis_address: tuple[str, int] = REDIS_ADDRESS,
    amqp_url: str = AMQP_URL,
) -> Iterator[Broker]:
    """*name*'s broker for the block; ``BrokerUnavailable`` if it does not answer."""
    (workdir / "results").mkdir(parents=True, exist_ok=True)
    if name == "memory":
        yield Broker(
            name,
            "memory://",
            "cache+memory://",
            workdir,
            transport_options=lambda _: {"polling_interval": 0.01},
        )
    elif name == "filesystem":
        yield Broker(
            name,
            "filesystem://",
            _FILE_RESULTS.format(workdir / "results"),
            workdir,
            transport_options=lambda runner: _filesystem_folders(workdir / runner),
            # kombu's own can hand a worker a message still being written.
            transport="atomic_filesystem:Transport",
        )
    elif name == "redis":
        with _redis_database(redis_address) as url:
            yield Broker(name, url, url, workdir)
    elif name == "amqp":
        _check_amqp(amqp_url)
        results = _FILE_RESULTS.format(workdir / "results")
        broker = Broker(name, amqp_url, results, workdir)
        try:
            yield broker
        finally:
            _delete_amqp_names(amqp_url, broker.names)
    else:
        raise ValueError(f"unknown broker {name!r}")


def _filesystem_folders(folder: Path) -> dict[str, Any]:
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "messages"),
        "data_folder_out": str(folder / "messages"),
        # Its exchange tables; by default a "control" folder in the working
        # directory, which would be left behind in the checkout.
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }


@contextmanager
def _redis_database(address: tuple[str, int]) -> Iterator[str]:
    """Claim an empty Redis database for the block; flush it afterwards."""
    import redis

    host, port = address
    token = secrets.token_hex(8)
    claimed: redis.Redis | None = None
    number = 0
    # Database 0 is left to whatever else uses the server.
    for number in range(1, 16):
        client = redis.Redis(host=host, port=port, db=number, socket_timeout=5)
        try:
            won = client.set(_CLAIM_KEY, token, nx=True)
        except redis.ConnectionError as exc:
            client.close()
            raise BrokerUnavailable(
                f"{BROKERS_VARIABLE} names redis, but no Redis server answers at"
                f" {host}:{port} ({exc}); start one there, or leave redis out of"
                f" {BROKERS_VARIABLE}"
            ) from None
        except redis.ResponseError:  # no such database: the server has fewer
            client.close()
            break
        if won and client.dbsize() == 1:
            claimed = client
            break
        if won:  # it held other keys: someone else's data
            client.delete(_CLAIM_KEY)
        client.close()
    if claimed is None:
        raise BrokerUnavailable(
            f"no empty Redis database to claim at {host}:{port} (databases 1 to"
            f" {number} are in use)"
        )
    try:
        yield f"redis://{host}:{port}/{number}"
    finally:
        claimed.flushdb()
        claimed.close()


def _check_amqp(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=5) as connection:
        try:
            connection.ensure_connection(max_retries=1)
        except Exception as exc:
            raise BrokerUnavailable(
                f"{BROKERS_VARIABLE} names amqp, but no AMQP broker answers at"
                f" {connection.as_uri()} ({exc.__class__.__name__}: {exc}); start"
                f" RabbitMQ there, or leave amqp out of {BROKERS_VARIABLE}"
            ) from None


def _delete_amqp_names(url: str, queues: list[str]) -> None:
    """Delete the queues and exchanges the run's apps declared."""
    from kombu import Connection

    with Connection(url, connect_timeout=5) as connection:
        channel: Any = connection.default_channel  # kombu's own type lacks these
        for queue in dict.fromkeys(queues):
            channel.queue_delete(queue)
            for exchange in (queue, f"{queue}.events", f"{queue}.control"):
                channel.exchange_delete(exchange)


@dataclass
class Runner:
    """One way of running tasks on one broker: an app, a queue, and its log."""

    broker: str
    mode: str
    app: Celery
    #: The worker's log lines so far (``processName|request_id|logger|message``);
    #: empty for eager and in-process runners, whose records the test captures.
    log_lines: Callable[[], list[str]] = list

    @property
    def in_test_process(self) -> bool:
        return self.mode in ("eager", "in-process")

    def task(self, name: str) -> Any:
        return self.app.tasks[f"probe.{name}"]


class Runners:
    """Every runner a test has asked for, started on first use, all stopped at the end.

    One in-process worker at a time: two ``start_worker`` threads in one
    process share Celery's and kombu's module-level state (the worker state,
    the event loop), and one of them stops taking tasks (seen: with a memory
    and an amqp worker both running, the memory one ran nothing). Asking for
    another broker's in-process runner stops the one running; the test
    session keeps each broker's tests together (``tests/conftest.py``), so
    that happens once per broker.
    """

    def __init__(self, stack: ExitStack, workdir: Path) -> None:
        self._stack = stack
        self._workdir = workdir
        self._brokers: dict[str, Broker] = {}
        self._runners: dict[tuple[str, str], Runner] = {}
        self._in_process: tuple[tuple[str, str], ExitStack] | None = None
        # Closed last: the brokers outlive every worker.
        self._broker_stack = stack.enter_context(ExitStack())
        stack.callback(self.stop_in_process)

    def get(self, broker: str, mode: str) -> Runner:
        key = (broker, mode)
        if key not in self._runners:
            self._runners[key] = self._start(key, self._broker(broker), mode)
        return self._runners[key]

    def _broker(self, name: str) -> Broker:
        if name not in self._brokers:
            folder = self._workdir / name
            folder.mkdir()
            broker = self._broker_stack.enter_context(open_broker(name, folder))
            self._brokers[name] = broker
        return self._brokers[name]

    def stop_in_process(self) -> None:
        """Stop the in-process worker, if one runs; a later ``get`` starts it again.

        For a test that runs a ``start_worker`` of its own: only one runs at a time.
        """
        if self._in_process is not None:
            key, worker = self._in_process
            self._in_process = None
            del self._runners[key]
            worker.close()

    def _start(self, key: tuple[str, str], broker: Broker, mode: str) -> Runner:
        config = broker.app_config(mode)
        if mode == "eager":
            config.update(task_always_eager=True, task_store_eager_result=True)
        app = build_app(config)
        self._stack.callback(_close_app, app)
        if mode == "in-process":
            self.stop_in_process()
            worker = ExitStack()
            worker.enter_context(
                start_worker(
                    app, pool="solo", perform_ping_check=False, loglevel="INFO"
                )
            )
            self._in_process = (key, worker)
        elif mode in WORKER_POOLS:
            log = self._stack.enter_context(
                worker_process(config, mode, broker.workdir / f"{mode}.log")
            )
            return Runner(broker.name, mode, app, log)
        return Runner(broker.name, mode, app)


def _close_app(app: Celery) -> None:
    """Close *app*'s connections: the broker's, and the result backend's.

    ``app.close()`` leaves the result backend's open; the Redis one's sockets
    would be collected unclosed, which pytest reports as an error.
    """
    app.close()
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None:
        consumer.stop()  # the Redis backend's subscription
    # The Redis backend's client; the cache backend's has no close().
    close_client = getattr(getattr(backend, "client", None), "close", None)
    if close_client is not None:
        close_client()


@contextmanager
def worker_process(
    config: dict[str, Any],
    pool: str,
    log_path: Path,
    *,
    start_timeout: float = 60.0,
    stop_timeout: float = 30.0,
) -> Iterator[Callable[[], list[str]]]:
    """A ``celery worker`` process with *pool*; yields a reader of its log lines.

    Yields once the worker says it is ready. On exit it must stop (a warm
    shutdown on SIGTERM) within *stop_timeout* seconds, with no process of
    its group left, else ``RuntimeError`` with its output.
    """
    environment = subprocess_environment(
        [str(_SUPPORT_DIR), str(_CODE_ROOT)],
        {
            CONFIG_VARIABLE: json.dumps(config),
            LIFETIME_VARIABLE: str(WORKER_LIFETIME),
            "PYTHONUNBUFFERED": "1",
        },
    )
    queue = config["task_default_queue"]
    command = [
        sys.executable,
        "-m",
        "celery",
        "--app",
        "celery_app",
        "worker",
        f"--pool={pool}",
        "--concurrency=2",
        f"--queues={queue}",
        f"--hostname={queue}@%h",
        "--loglevel=INFO",
        f"--logfile={log_path}",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]

    def lines() -> list[str]:
        try:
            return log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    with ProcessOutput(prefix=f"celery-{pool}-") as output:

        def details() -> str:
            return f"{output.details()}\nits log:\n" + "\n".join(lines())

        process = start_in_session(
            command, output.file, env=environment, cwd=_SUPPORT_DIR
        )
        try:
            await_started(
                f"the {pool} worker",
                lambda: any(line.endswith(" ready.") for line in lines()),
                lambda: process.poll() is None,
                start_timeout,
                details,
            )
            yield lines
        finally:
            stop_process_group(process, f"the {pool} worker", stop_timeout, details)
