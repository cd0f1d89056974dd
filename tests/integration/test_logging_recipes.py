"""The logging recipes of the docs, run as written, in real processes.

Each test takes its recipe from the page that shows it, so the page and the
test cannot drift apart:

- uvicorn: the ``log-config.json`` and ``main.py`` blocks of
  ``docs/deployment.md`` ("### uvicorn") are written to a folder and run with
  ``python -m uvicorn --log-config log-config.json main:app`` (on 127.0.0.1,
  port 0), with each HTTP implementation; uvicorn's own startup, error and
  shutdown lines must stay, and every access line must end with its
  request's final id.
- gunicorn: the ``--access-logformat`` of the command in ``docs/deployment.md``
  ("### gunicorn"), with the README's Flask quickstart as ``main:app``, under
  the ``sync`` and ``gthread`` workers: each access line shows the final id
  twice (response header and environ key), never the client's value.
- Django: the ``LOGGING`` of ``docs/logging.md`` ("## Django") in a Django
  process of its own (``settings.configure`` is process-wide), with
  ``DEBUG=True`` and ``False``: each ``django.request`` record is written
  once, with its request's id, and ``mail_admins`` still mails the 500. The
  configuration the page used to show is run too, to show the problem the
  recipe solves: Django's own handler prints the record without the id.

Every process is bounded: started against a deadline, stopped with a
timeout, its output kept for the failure message.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_testing import HEX32
from servers import (
    HOST,
    GunicornWorker,
    ProcessOutput,
    UvicornHTTP,
    http_implementations,
    serve_gunicorn,
    start_in_session,
    stop_process_group,
    subprocess_environment,
    wait_until,
)

import correlation

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
LOGGING_PAGE = ROOT / "docs" / "logging.md"
#: Where this process imports ``correlation`` and ``adapters`` from (the
#: checkout, or an installed wheel): each subprocess runs the same code.
CODE_ROOT = Path(correlation.__file__).resolve().parents[1]

HEADER = "X-Request-ID"
CLIENT_TIMEOUT = httpx.Timeout(20.0)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PROCESS_TIMEOUT = 60.0

_FENCE = re.compile(r"(`{3,})(\S*)\s*$")


def _blocks(page: Path, heading: str) -> list[tuple[str, str]]:
    """The fenced blocks, as (language, text), of the section *heading* of *page*.

    The section runs from the heading line (matched exactly) to the next
    heading of any level outside a code block.
    """
    blocks: list[tuple[str, str]] = []
    in_section = False
    fence: str | None = None
    language = ""
    body: list[str] = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if fence is not None:
            if line.strip() == fence:
                if in_section:
                    blocks.append((language, textwrap.dedent("\n".join(body)) + "\n"))
                fence = None
            else:
                body.append(line)
        elif opening := _FENCE.match(line.strip()):
            fence, language, body = opening[1], opening[2], []
        elif line.startswith("#"):
            if in_section:
                break
            in_section = line.strip() == heading
    return blocks


def _only(page: Path, heading: str, language: str) -> str:
    """The one ``language`` block of the section *heading* of *page*."""
    found = [text for lang, text in _blocks(page, heading) if lang == language]
    assert len(found) == 1, (
        f"{page.name}, {heading!r}: expected one ```{language} block,"
        f" found {len(found)}"
    )
    return found[0]


# --- uvicorn --log-config ------------------------------------------------------

#: uvicorn's own lines, which a --log-config file must not lose.
UVICORN_STARTUP = [
    "Started server process",
    "Waiting for application startup.",
    "Application startup complete.",
    "Uvicorn running on http://127.0.0.1:",
]
UVICORN_SHUTDOWN = [
    "Shutting down",
    "Waiting for application shutdown.",
    "Application shutdown complete.",
    "Finished server process",
]
_RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+) ")


@contextmanager
def _uvicorn(
    folder: Path, http: UvicornHTTP
) -> Iterator[tuple[str, Callable[[], str]]]:
    """Run ``uvicorn --log-config log-config.json main:app`` in *folder*.

    Yields the base URL (read from uvicorn's own "running on" line, the port
    being the OS's pick) and a reader of everything the process wrote, stdout
    and stderr together; after the block, it returns the whole run. On exit
    the process gets SIGINT, as from Ctrl+C, and must exit with status 0
    within ``STOP_TIMEOUT`` seconds (else it is killed and ``RuntimeError``
    raised).
    """
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--log-config",
        "log-config.json",
        "--host",
        HOST,
        "--port",
        "0",
        "--http",
        http,
        "main:app",
    ]
    environment = subprocess_environment([str(CODE_ROOT)], {"PYTHONUNBUFFERED": "1"})
    with ProcessOutput(prefix="uvicorn-") as output:

        def running_port() -> str:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited before it ran{output.details()}")
            found = _RUNNING.search(output.read())
            return found[1] if found else ""

        process = start_in_session(command, output.file, env=environment, cwd=folder)
        try:
            try:
                port = wait_until(
                    running_port,
                    timeout=START_TIMEOUT,
                    what="uvicorn's 'running on' line",
                )
            except TimeoutError as error:
                raise RuntimeError(f"{error}{output.details()}") from None
            yield f"http://{HOST}:{port}", output.read
            process.send_signal(signal.SIGINT)
            # If it does not exit, stop_process_group kills it and says so.
            with suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
        finally:
            stop_process_group(process, "uvicorn", STOP_TIMEOUT, output.details)


@pytest.mark.parametrize("http", http_implementations())
def test_uvicorn_log_config_keeps_uvicorns_lines_and_adds_the_id(
    http: UvicornHTTP, tmp_path: Path
) -> None:
    """The docs' log-config.json: uvicorn's lines stay, each access line has its id.

    Startup, the traceback of a failing request and shutdown are uvicorn's own
    lines, in its format. The access line of a request sent with an id ends
    with that id; of one sent without, or with a rejected value, with the id
    the adapter generated, the one the response carries. The application's
    own line (the ``shop`` logger, through the root handler) has the id too.
    """
    (tmp_path / "log-config.json").write_text(
        _only(DEPLOYMENT, "### uvicorn", "json"), encoding="utf-8"
    )
    (tmp_path / "main.py").write_text(
        _only(DEPLOYMENT, "### uvicorn", "python"), encoding="utf-8"
    )
    with _uvicorn(tmp_path, http) as (url, output):
        with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as client:
            kept = client.get("/", headers={HEADER: "abc-123"})
            missing = client.get("/")
            failed = client.get("/fail", headers={HEADER: "<script>"})
        try:
            wait_until(
                lambda: "RuntimeError: boom" in output(), what="uvicorn's traceback"
            )
        except TimeoutError as error:
            raise AssertionError(f"{error}; its output:\n{output()}") from None
    text = output()  # the whole run, stop included
    log = text.splitlines()

    assert kept.status_code == 200
    assert kept.headers[HEADER] == "abc-123"
    generated = missing.headers[HEADER]
    assert missing.status_code == 200
    assert HEX32.fullmatch(generated), generated
    failed_id = failed.headers[HEADER]
    assert failed.status_code == 500
    assert HEX32.fullmatch(failed_id), failed_id
    assert failed_id != generated

    for expected in UVICORN_STARTUP + UVICORN_SHUTDOWN:
        assert any(line.startswith("INFO:") and expected in line for line in log), (
            f"{expected!r} missing from uvicorn's output:\n{text}"
        )
    assert "ERROR:    Exception in ASGI application" in log, text
    assert "RuntimeError: boom" in log, text
    if sys.version_info >= (3, 11):
        assert f"request_id={failed_id}" in log, text

    access = [line for line in log if '"GET /' in line]
    assert len(access) == 3, text
    assert access[0].endswith('"GET / HTTP/1.1" 200 OK abc-123'), access
    assert access[1].endswith(f'"GET / HTTP/1.1" 200 OK {generated}'), access
    assert access[2].endswith(
        f'"GET /fail HTTP/1.1" 500 Internal Server Error {failed_id}'
    ), access
    assert [line for line in log if "home page" in line] == [
        "INFO [abc-123] shop: home page",
        f"INFO [{generated}] shop: home page",
    ]
    assert "<script>" not in text

    started = text.index("Uvicorn running on")
    assert started < text.index('"GET /') < text.index("Finished server process")


# --- gunicorn's access log ------------------------------------------------------


def _docs_access_format() -> str:
    """The ``--access-logformat`` of the gunicorn command in docs/deployment.md."""
    command = _only(DEPLOYMENT, "### gunicorn", "console")
    found = re.findall(r"--access-logformat\s+'([^']*)'", command)
    assert len(found) == 1, command
    return str(found[0])


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_access_logformat_shows_the_final_id(
    worker: GunicornWorker, tmp_path: Path
) -> None:
    """The docs' --access-logformat logs the id the client got, never its value.

    gunicorn writes the line after the response, when the adapter has ended
    the request, so the id comes from the response header
    (``%({x-request-id}o)s``) and from the environ key the adapter set
    (``%({correlation.request_id}e)s``): both show the kept id, or the
    generated one for a rejected or missing header.
    """
    access_format = _docs_access_format()
    (tmp_path / "main.py").write_text(
        _only(README, "## Quickstart: Flask", "python"), encoding="utf-8"
    )
    options = [
        "--chdir",
        str(tmp_path),
        "--access-logfile",
        "-",
        "--access-logformat",
        access_format,
    ]
    with serve_gunicorn(
        "main:app", worker=worker, env={"GUNICORN_CMD_ARGS": shlex.join(options)}
    ) as server:
        with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
            kept = client.get("/?n=kept", headers={HEADER: "abc-123"})
            replaced = client.get("/?n=replaced", headers={HEADER: "<script>"})
            missing = client.get("/?n=missing")
        generated = replaced.headers[HEADER]
        generated_too = missing.headers[HEADER]
        expected = [
            '127.0.0.1 "GET /?n=kept HTTP/1.1" 200 abc-123 abc-123',
            f'127.0.0.1 "GET /?n=replaced HTTP/1.1" 200 {generated} {generated}',
            f'127.0.0.1 "GET /?n=missing HTTP/1.1" 200 {generated_too} {generated_too}',
        ]
        try:
            wait_until(
                lambda: all(line in server.log().splitlines() for line in expected),
                what="gunicorn's access lines",
            )
        except TimeoutError as error:
            raise AssertionError(
                f"{error}; expected {expected} in:\n{server.log()}"
            ) from None
    text = server.log()
    assert [kept.status_code, replaced.status_code, missing.status_code] == [200] * 3
    assert kept.json() == {"request_id": "abc-123"}
    assert replaced.json() == {"request_id": generated}
    assert HEX32.fullmatch(generated), generated
    assert HEX32.fullmatch(generated_too), generated_too
    # Every access line, the start-up probe's too: the same id twice, never "-".
    access = [line for line in text.splitlines() if line.startswith('127.0.0.1 "')]
    assert [line for line in access if "?n=" in line] == expected, text
    for line in access:
        header_id, environ_id = line.split(" ")[-2:]
        assert header_id == environ_id != "-", line
    assert "<script>" not in text


# --- Django's LOGGING with DEBUG=True -------------------------------------------

#: A Django process: the LOGGING of argv[2] (JSON), DEBUG if argv[1] is
#: "debug"; three requests through the ASGI adapter, each with its own id:
#: ``/`` (the view logs on ``shop.views``), ``/missing`` (404), ``/fail``
#: (500). Then the subjects of the mails sent go to the file argv[3].
DJANGO_PROGRAM = """
import asyncio
import importlib.util
import json
import logging
import sys

import django
import httpx
from django.conf import settings
from django.core import mail
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path

from adapters.asgi import RequestIdMiddleware

# Mails go to django.core.mail.outbox. Django 6.1 names its mailers in
# MAILERS (django.core.mail.handler) and deprecates EMAIL_BACKEND.
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"
if importlib.util.find_spec("django.core.mail.handler") is None:
    MAIL_TO_MEMORY = {"EMAIL_BACKEND": LOCMEM}
else:
    MAIL_TO_MEMORY = {"MAILERS": {"default": {"BACKEND": LOCMEM}}}

settings.configure(
    DEBUG=sys.argv[1] == "debug",
    SECRET_KEY="only-for-this-test",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["testserver"],
    # Django 6 takes addresses; (name, address) pairs before.
    ADMINS=(
        ["ops@example.com"]
        if django.VERSION >= (6,)
        else [("Ops", "ops@example.com")]
    ),
    LOGGING=json.loads(sys.argv[2]),
    **MAIL_TO_MEMORY,
)

logger = logging.getLogger("shop.views")


def home(request: HttpRequest) -> HttpResponse:
    logger.info("home page")
    return HttpResponse("ok")


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


urlpatterns = [path("", home), path("fail", fail)]
application = RequestIdMiddleware(get_asgi_application())


async def main() -> None:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as client:
        for url, request_id, status in [
            ("/", "dj-1", 200),
            ("/missing", "dj-404", 404),
            ("/fail", "dj-500", 500),
        ]:
            response = await client.get(url, headers={"X-Request-ID": request_id})
            assert response.status_code == status, (url, response.status_code)
            assert response.headers["X-Request-ID"] == request_id


asyncio.run(main())
with open(sys.argv[3], "w", encoding="utf-8") as report:
    json.dump([message.subject for message in getattr(mail, "outbox", [])], report)
"""

#: What docs/logging.md showed before the recipe: the filter's handler on
#: the application's logger only.
SHOP_ONLY_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "correlation.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(levelname)s [%(request_id)s] %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["request_id"],
            "formatter": "plain",
        }
    },
    "loggers": {"shop": {"handlers": ["console"], "level": "INFO"}},
}
#: The same handler on the root logger, as the page's dictConfig example has it.
ROOT_LOGGING: dict[str, Any] = {
    **{key: value for key, value in SHOP_ONLY_LOGGING.items() if key != "loggers"},
    "root": {"handlers": ["console"], "level": "INFO"},
}


def _docs_django_logging() -> dict[str, Any]:
    """The ``LOGGING=`` of the Django program in docs/logging.md, as a dict."""
    tree = ast.parse(_only(LOGGING_PAGE, "## Django", "python"))
    values = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "LOGGING"
    ]
    assert len(values) == 1
    logging_setting = ast.literal_eval(values[0])
    assert isinstance(logging_setting, dict)
    return logging_setting


def _run_django(
    logging_setting: dict[str, Any], *, debug: bool, folder: Path
) -> tuple[list[str], list[str], list[str]]:
    """Run ``DJANGO_PROGRAM``: its stdout and stderr lines, and the mails' subjects."""
    report = folder / "mails.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-c",
            DJANGO_PROGRAM,
            "debug" if debug else "no-debug",
            json.dumps(logging_setting),
            str(report),
        ],
        cwd=folder,
        env=subprocess_environment([str(CODE_ROOT)]),
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    mails = json.loads(report.read_text(encoding="utf-8"))
    assert isinstance(mails, list)
    return completed.stdout.splitlines(), completed.stderr.splitlines(), mails


def _mentioning(lines: list[str], text: str) -> list[str]:
    return [line for line in lines if text in line]


@pytest.mark.parametrize(
    "debug", [pytest.param(True, id="DEBUG"), pytest.param(False, id="no-DEBUG")]
)
def test_django_logging_recipe_writes_each_record_once_with_its_id(
    debug: bool, tmp_path: Path
) -> None:
    """The docs' LOGGING: each django.* record once, with the id, on its handler.

    Naming the ``django`` logger replaces the handlers Django's defaults put
    there, so nothing reaches stderr; its ``mail_admins`` handler still mails
    a 500 when ``DEBUG=False``, as Django's own does.
    """
    stdout, stderr, mails = _run_django(
        _docs_django_logging(), debug=debug, folder=tmp_path
    )
    assert stderr == []
    assert _mentioning(stdout, "home page") == ["INFO [dj-1] shop.views: home page"]
    assert _mentioning(stdout, "Not Found: /missing") == [
        "WARNING [dj-404] django.request: Not Found: /missing"
    ]
    assert _mentioning(stdout, "Internal Server Error: /fail") == [
        "ERROR [dj-500] django.request: Internal Server Error: /fail"
    ]
    assert "RuntimeError: boom" in stdout  # the traceback follows its line
    if debug:
        assert mails == []
    else:
        assert len(mails) == 1, mails
        assert mails[0].endswith("Internal Server Error: /fail"), mails


@pytest.mark.parametrize(
    ("logging_setting", "expected"),
    [
        pytest.param(
            SHOP_ONLY_LOGGING,
            ["Not Found: /missing"],
            id="handler-on-shop",
        ),
        pytest.param(
            ROOT_LOGGING,
            [
                "Not Found: /missing",
                "WARNING [dj-404] django.request: Not Found: /missing",
            ],
            id="handler-on-root",
        ),
    ],
)
def test_django_logging_without_the_recipe_loses_the_id(
    logging_setting: dict[str, Any], expected: list[str], tmp_path: Path
) -> None:
    """Without a ``django`` entry, DEBUG=True prints django.* lines without the id.

    Django's own ``console`` handler (on the ``django`` logger, for DEBUG=True)
    writes the record to stderr, bare; a handler with the filter on the root
    logger writes it a second time, with the id. With the handler on the
    application's logger only, the record never gets the id.
    """
    stdout, stderr, _ = _run_django(logging_setting, debug=True, folder=tmp_path)
    assert _mentioning(stderr + stdout, "Not Found: /missing") == expected
    assert _mentioning(stderr, "Not Found: /missing") == ["Not Found: /missing"]
