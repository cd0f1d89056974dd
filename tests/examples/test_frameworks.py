"""The framework examples (``examples/<name>/``), run the way their READMEs say.

Each test copies its example into ``tmp_path`` (so nothing is written into the
checkout) and runs it there with the real program its README names: uvicorn
for the ASGI apps, gunicorn or waitress for the WSGI ones, ``celery worker``
and the publisher script, ``python cli.py``. Servers listen on 127.0.0.1 and
a free port; every process is bounded by a timeout and stopped by the test.

What each must show, over real HTTP (httpx) or in the job's output: the
response carries the id, a valid incoming id is echoed, a hostile one is
replaced by a generated id, and the log lines the example prints carry the
same id. The hostile values are ``hostile``'s rows an HTTP client can send;
their marker must appear nowhere. Each test also checks that the command it
runs is the one the README gives. The Django example's ``MIDDLEWARE`` entry
is checked on its own, through Django's test client, which bypasses both
entry points.

The Celery example runs once per broker in ``CORRELATION_TEST_BROKERS``. On
the memory transport, which lives in one process, the worker runs in this
process (``start_worker``), as ``celery_brokers`` does; on the others, a real
``celery worker`` process and the publisher script share the broker.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from asgi_testing import HEX32
from celery.contrib.testing.worker import start_worker
from celery_brokers import open_broker, requested_brokers
from example_runs import (
    RUN_TIMEOUT,
    copy_example,
    example_environment,
    readme_commands,
    run_in_background,
    run_to_end,
    serve_example,
)
from hostile import MARKER, Hostile, hostile_params, select
from log_testing import capture_logs
from servers import wait_until

from adapters.celery import connect, disconnect

if TYPE_CHECKING:
    from celery_brokers import Runners

SUPPORT = Path(__file__).resolve().parents[1] / "support"

HEADER = "X-Request-ID"
VALID_ID = "order-7-from-the-client"
CLIENT_TIMEOUT = httpx.Timeout(10.0)
#: The examples' log format: ``%(levelname)s [%(request_id)s] %(name)s: ...``.
LOG_LINE = re.compile(r"^INFO \[([^\]]*)\] (\S+): (.*)$", re.MULTILINE)


def logged_ids(output: str, logger: str, message: str) -> list[str]:
    """The ids of the INFO lines *logger* wrote with *message*, in order."""
    return [
        request_id
        for request_id, name, text in LOG_LINE.findall(output)
        if name == logger and text == message
    ]


def in_readme(example: str, command: list[str]) -> bool:
    """Whether the example's README gives *command* (without ``NAME=value``)."""
    return command in [given.words for given in readme_commands(example)]


# --- HTTP examples ---------------------------------------------------------------


#: Each served example: its folder, its README's command, and the logger and
#: message of the app's line for ``GET /orders/7``.
SERVED = [
    pytest.param(
        "fastapi",
        ["uvicorn", "app:app"],
        ("shop", "order 7 requested"),
        id="fastapi-uvicorn",
    ),
    pytest.param(
        "starlette",
        ["uvicorn", "app:app"],
        ("shop", "order 7 requested"),
        id="starlette-uvicorn",
    ),
    pytest.param(
        "django",
        ["uvicorn", "shop.asgi:application"],
        ("shop.views", "order 7 requested"),
        id="django-asgi-uvicorn",
    ),
    pytest.param(
        "django",
        ["gunicorn", "shop.wsgi:application"],
        ("shop.views", "order 7 requested"),
        id="django-wsgi-gunicorn",
    ),
    pytest.param(
        "flask",
        ["waitress-serve", "--listen=127.0.0.1:8000", "app:app"],
        ("app", "order 7 requested"),
        id="flask-waitress",
    ),
]


@pytest.mark.parametrize(("example", "command", "line"), SERVED)
def test_a_served_example_echoes_replaces_and_logs_the_id(
    example: str,
    command: list[str],
    line: tuple[str, str],
    tmp_path: Path,
) -> None:
    """A valid id is echoed, a missing or hostile one replaced; the log line agrees.

    Each response carries one id header, the view reports the same id, and
    the app's log line for the request carries it. No hostile value shows up
    in a response or in anything the server printed.
    """
    assert in_readme(example, command)
    logger, message = line
    sent: list[tuple[str, list[tuple[bytes, bytes]]]] = [
        ("valid", [(HEADER.encode(), VALID_ID.encode())]),
        ("absent", []),
    ]
    sent += [
        (row.name, [(HEADER.encode(), value) for value in row.occurrences])
        for row in select(plain_http=True)
    ]
    with (
        serve_example(copy_example(example, tmp_path), command) as server,
        httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        final_ids: list[str] = []
        for name, headers in sent:
            response = client.get("/orders/7", headers=headers)
            assert response.status_code == 200, (name, response.text)
            (final,) = response.headers.get_list(HEADER)
            assert response.json() == {"order": 7, "request_id": final}, name
            assert MARKER not in str(response.headers) + response.text, name
            if name == "valid":
                assert final == VALID_ID
            else:
                assert HEX32.fullmatch(final), (name, final)
            final_ids.append(final)
        wait_until(
            lambda: logged_ids(server.log(), logger, message) == final_ids,
            timeout=10,
            what=f"one {logger!r} line per request, each with its id",
        )
        assert len(set(final_ids)) == len(final_ids)  # a new id each time
    assert MARKER not in server.log()


#: Django's test client on the example's settings: it bypasses asgi.py and
#: wsgi.py, so only the MIDDLEWARE entry can give its requests an id.
_DJANGO_TEST_CLIENT = """
import django
from django.test import Client
from django.test.utils import setup_test_environment

django.setup()
setup_test_environment()  # allows the test client's host, "testserver"
for headers in ({"X-Request-ID": "order-7-from-the-client"}, {}):
    response = Client().get("/orders/7", headers=headers)
    print(response.headers["X-Request-ID"], response.json()["request_id"])
"""


def test_the_django_example_gives_the_test_clients_requests_an_id(
    tmp_path: Path,
) -> None:
    """The MIDDLEWARE entry serves Django's test client: header, view and log agree."""
    finished = run_to_end(
        copy_example("django", tmp_path),
        ["python", "-c", _DJANGO_TEST_CLIENT],
        example_environment([], {"DJANGO_SETTINGS_MODULE": "shop.settings"}),
    )
    (header, seen), (generated, seen_generated) = (
        line.split() for line in finished.stdout.splitlines()
    )
    assert header == seen == VALID_ID
    assert HEX32.fullmatch(generated)
    assert seen_generated == generated
    assert logged_ids(finished.stderr, "shop.views", "order 7 requested") == [
        VALID_ID,
        generated,
    ]


# --- the command-line job -----------------------------------------------------------


#: The job's command, as its README gives it.
CLI_COMMAND = ["python", "cli.py", "a.csv", "b.csv", "c.csv"]


def run_cli(folder: Path, request_id: str | None) -> str:
    """``python cli.py`` on three paths, with REQUEST_ID if given; its output."""
    assert in_readme("cli", CLI_COMMAND)
    extra = {} if request_id is None else {"REQUEST_ID": request_id}
    environment = example_environment([], extra)
    if request_id is None:
        environment.pop("REQUEST_ID", None)
    return run_to_end(folder, CLI_COMMAND, environment).stderr


def cli_ids(output: str) -> dict[str, str]:
    """Per message of the job's INFO lines, the id the line carries."""
    lines = LOG_LINE.findall(output)
    messages = [message for _, _, message in lines]
    assert messages[0] == "run started", output
    assert messages[-1] == "run finished", output
    assert sorted(messages[1:-1]) == [
        f"exported {p}" for p in ("a.csv", "b.csv", "c.csv")
    ]
    # The exports ran in the pool's threads, not in the main thread.
    assert {thread for _, thread, m in lines if m.startswith("exported")} <= {
        f"ThreadPoolExecutor-0_{n}" for n in range(2)
    }
    return {message: request_id for request_id, _, message in lines}


def test_the_cli_job_logs_the_callers_id_in_every_thread(tmp_path: Path) -> None:
    """REQUEST_ID's valid value is the id of every line, the pool's threads too."""
    output = run_cli(copy_example("cli", tmp_path), VALID_ID)
    assert set(cli_ids(output).values()) == {VALID_ID}


def test_the_cli_job_without_an_id_generates_one_for_the_whole_run(
    tmp_path: Path,
) -> None:
    """No REQUEST_ID: one generated id, the same on every line, new each run."""
    folder = copy_example("cli", tmp_path)
    ids = [set(cli_ids(run_cli(folder, None)).values()) for _ in range(2)]
    for run in ids:
        (request_id,) = run
        assert HEX32.fullmatch(request_id)
    assert ids[0] != ids[1]


@pytest.mark.parametrize("row", hostile_params(plain_http=True))
def test_the_cli_job_replaces_a_hostile_id(row: Hostile, tmp_path: Path) -> None:
    """A hostile REQUEST_ID is replaced by one generated id, and shown nowhere."""
    output = run_cli(copy_example("cli", tmp_path), row.joined())
    (request_id,) = set(cli_ids(output).values())
    assert HEX32.fullmatch(request_id)
    assert MARKER not in output


# --- Celery: a publisher and a worker -------------------------------------------------

#: The settings of ``celery_brokers`` the example must not take: it has its
#: own log format, and keeps no results.
_EXAMPLE_OWNS = {
    "worker_log_format",
    "worker_task_log_format",
    "result_backend",
    "result_chord_retry_interval",
}
_SETTINGS_MODULE = "example_broker_settings"

#: The README's commands: the worker, and the publisher.
WORKER_COMMAND = ["celery", "-A", "tasks", "worker", "--loglevel=INFO"]
PUBLISH_COMMAND = ["python", "publish.py", "42"]

CELERY_RUNS = [
    pytest.param(
        (broker, "in-process" if broker == "memory" else "worker"),
        id=f"{broker}-{'in-process' if broker == 'memory' else 'worker'}",
    )
    for broker in requested_brokers()
]


def _settings_module(folder: Path, settings: Mapping[str, Any]) -> Path:
    """Write *settings* as the module CELERY_CONFIG_MODULE names; return its folder."""
    folder.mkdir()
    lines = [f"{key} = {value!r}" for key, value in settings.items()]
    (folder / f"{_SETTINGS_MODULE}.py").write_text("\n".join(lines) + "\n")
    return folder


def publish(folder: Path, environment: Mapping[str, str], request_id: str) -> str:
    """``python publish.py 42`` with REQUEST_ID; the id the publisher logged."""
    finished = run_to_end(
        folder, PUBLISH_COMMAND, {**environment, "REQUEST_ID": request_id}
    )
    assert MARKER not in finished.stderr
    (published,) = logged_ids(
        finished.stderr, "publish", "queueing the receipt for order 42"
    )
    return published


def run_on_worker_process(broker_name: str, folder: Path, tmp_path: Path) -> None:
    """The README's worker and publisher, as processes, on *broker_name*."""
    with open_broker(broker_name, tmp_path / "broker") as broker:
        config = broker.app_config("example")
        settings = {k: v for k, v in config.items() if k not in _EXAMPLE_OWNS}
        environment = example_environment(
            # The settings module, and atomic_filesystem's transport it may name.
            [str(_settings_module(tmp_path / "settings", settings)), str(SUPPORT)],
            {
                "CELERY_BROKER_URL": broker.url,
                "CELERY_CONFIG_MODULE": _SETTINGS_MODULE,
                # Celery warns when a worker runs as root, as CI machines do.
                "PYTHONWARNINGS": "error,ignore:You're running the worker with"
                " superuser privileges",
            },
        )
        command = [
            *WORKER_COMMAND,
            # For a quick, quiet start: one child, no cluster chatter.
            "--concurrency=1",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            f"--hostname={config['task_default_queue']}@%h",
        ]
        with run_in_background(
            folder,
            command,
            ready=lambda output: " ready." in output,
            what="celery worker",
            env=environment,
            clean_exits=(0,),
        ) as output:
            published = [
                publish(folder, environment, VALID_ID),
                publish(folder, environment, select()[0].joined()),
            ]
            assert published[0] == VALID_ID
            assert HEX32.fullmatch(published[1])
            wait_until(
                lambda: (
                    logged_ids(output(), "tasks", "receipt for order 42 sent")
                    == published
                ),
                timeout=RUN_TIMEOUT,
                what="the worker's line for each task, with the publisher's id",
            )
            # Celery's own line for each task's success carries the id too.
            succeeded = re.findall(
                r"^INFO \[([^\]]*)\] celery\.app\.trace: Task tasks\.send_receipt"
                r"\[\S+\] succeeded",
                output(),
                re.MULTILINE,
            )
            assert succeeded == published
        assert MARKER not in output()


def run_in_process(
    folder: Path, monkeypatch: pytest.MonkeyPatch, runners: Runners
) -> None:
    """The example's app and publisher in this process, on the memory transport."""
    # One in-process worker at a time (celery_brokers.Runners): stop the suite's.
    runners.stop_in_process()
    # The suite's Celery app connected the adapter already; the example must
    # connect it itself, as it does in a process of its own.
    disconnect()
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://")
    monkeypatch.delenv("CELERY_CONFIG_MODULE", raising=False)
    monkeypatch.syspath_prepend(str(folder))
    try:
        publisher = importlib.import_module("publish")
        app = sys.modules["tasks"].app
        # The memory transport polls its queues once a second by default.
        app.conf.broker_transport_options = {"polling_interval": 0.01}
        published: list[str] = []
        with (
            capture_logs("publish", level=logging.INFO) as publisher_log,
            capture_logs("tasks", level=logging.INFO) as task_log,
            start_worker(app, pool="solo", perform_ping_check=False, loglevel="INFO"),
        ):
            for request_id in (VALID_ID, select()[0].joined()):
                monkeypatch.setenv("REQUEST_ID", request_id)
                publisher.main(42)
                published.append(vars(publisher_log.records[-1])["request_id"])
                wait_until(
                    lambda: len(task_log.records) == len(published),
                    timeout=RUN_TIMEOUT,
                    what="the task's line",
                )
        assert published[0] == VALID_ID
        assert HEX32.fullmatch(published[1])
        assert [vars(r)["request_id"] for r in task_log.records] == published
        assert [r.getMessage() for r in task_log.records] == [
            "receipt for order 42 sent"
        ] * 2
        assert not any(MARKER in text for text in task_log.texts())
        assert not any(MARKER in text for text in publisher_log.texts())
        app.close()
    finally:
        for module in ("publish", "tasks"):
            sys.modules.pop(module, None)
        connect()  # as the suite's Celery app left it


@pytest.mark.parametrize("runner", CELERY_RUNS)
def test_the_celery_example_carries_the_publishers_id_to_the_task(
    runner: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    celery_runners: Runners,
) -> None:
    """The worker logs each task with its publisher's id: valid kept, hostile replaced.

    The parameter is named ``runner``, a (broker, mode) pair, so
    ``tests/conftest.py`` keeps these tests with the other Celery tests of
    the same broker.
    """
    assert in_readme("celery", WORKER_COMMAND)
    assert in_readme("celery", PUBLISH_COMMAND)
    broker, mode = runner
    folder = copy_example("celery", tmp_path)
    if mode == "in-process":
        run_in_process(folder, monkeypatch, celery_runners)
    else:
        run_on_worker_process(broker, folder, tmp_path)
