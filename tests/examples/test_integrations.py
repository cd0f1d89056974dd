"""The integration examples (``examples/<name>/``), run as their READMEs say.

Each test copies one example folder into ``tmp_path`` and starts it there with
the server command its README shows (uvicorn or waitress-serve, the scripts
next to this interpreter, so the example imports the installed toolkit), on
127.0.0.1 and a free port instead of 8000. It sends the README's ``curl``
request, whose answer must be the output the README shows, then two requests
without an id, and checks where each id went: to the downstream service on the
wire (a recording server), into the log line, onto the span printed to stdout,
or into the tag of the event the real Sentry SDK posted to a local DSN host.
Every server is stopped by the test and must exit within a timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_testing import HEX32
from example_runs import copy_example, readme_commands, serve_example
from recording_http import Recorder
from sentry_host import serve_sentry_host
from servers import Running, free_port, wait_until

TIMEOUT = 10.0
#: The servers the READMEs start.
SERVERS = ("uvicorn", "waitress-serve")
#: The README's request, e.g. ``curl -s -H 'X-Request-ID: abc-123' http://...``.
CURL = re.compile(
    r"curl -s -H X-Request-ID: (?P<id>\S+) http://127\.0\.0\.1:8000(?P<path>/\S*)"
)


@dataclass(frozen=True)
class Readme:
    """What an example's README tells a user to run and to expect."""

    #: The server command, as shown (port 8000).
    command: list[str]
    #: The id the README's curl sends, the path it asks for, the body it shows.
    request_id: str
    path: str
    body: str

    @classmethod
    def of(cls, name: str) -> Readme:
        commands = readme_commands(name)
        (command,) = [given.words for given in commands if given.words[0] in SERVERS]
        (curl,) = [given for given in commands if given.words[0] == "curl"]
        request = CURL.fullmatch(" ".join(curl.words))
        assert request is not None, curl.words
        (body,) = curl.output
        return cls(command, request["id"], request["path"], body)


@dataclass(frozen=True)
class Example:
    """An example being served: its README, its base URL and its output."""

    readme: Readme
    running: Running

    @property
    def url(self) -> str:
        return self.running.url

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.running.log()

    def get(self, path: str, request_id: str | None = None) -> httpx.Response:
        headers = {} if request_id is None else {"X-Request-ID": request_id}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=TIMEOUT)

    def get_as_readme(self) -> httpx.Response:
        """Send the README's curl request; its body must be what the README shows."""
        response = self.get(self.readme.path, self.readme.request_id)
        assert response.text.strip() == self.readme.body, self.output()
        assert response.headers["X-Request-ID"] == self.readme.request_id
        return response

    def get_twice_without_id(self, path: str) -> list[httpx.Response]:
        """Two requests with no id: each answer carries a new id, not the other's."""
        responses = [self.get(path) for _ in range(2)]
        ids = ids_of(responses)
        assert all(HEX32.fullmatch(rid) for rid in ids), ids
        assert ids[0] != ids[1]
        return responses


def ids_of(responses: list[httpx.Response]) -> list[str]:
    """The id each response carries in its X-Request-ID header."""
    return [response.headers["X-Request-ID"] for response in responses]


@contextmanager
def run_example(
    name: str,
    tmp_path: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Example]:
    """Serve a copy of ``examples/<name>`` as its README says, until the block ends."""
    readme = Readme.of(name)
    folder = copy_example(name, tmp_path)
    with serve_example(folder, readme.command, port=port, env=env) as running:
        yield Example(readme, running)


# --- outbound: httpx, aiohttp, requests --------------------------------------------

OUTBOUND = ["httpx", "aiohttp", "requests"]


@pytest.mark.parametrize("name", OUTBOUND)
def test_outbound_example_sends_each_requests_id_downstream(
    name: str, first: Recorder, tmp_path: Path
) -> None:
    """The id the caller sent, and each generated one, reach DOWNSTREAM_URL's server."""
    downstream = {"DOWNSTREAM_URL": f"{first.url}/ok"}
    with run_example(name, tmp_path, env=downstream) as example:
        given = example.get("/", "abc-123")
        fresh = ids_of(example.get_twice_without_id("/"))
    assert given.headers["X-Request-ID"] == "abc-123"
    assert given.json() == {"request_id": "abc-123", "downstream": "200\n"}
    assert [seen.values("X-Request-ID") for seen in first.seen()] == [
        ["abc-123"],
        [fresh[0]],
        [fresh[1]],
    ]


@pytest.mark.parametrize("name", OUTBOUND)
def test_outbound_example_answers_as_its_readme_shows(
    name: str, tmp_path: Path
) -> None:
    """With its own /echo as the downstream, as by default, the README's curl works."""
    port = free_port()
    echo = {"DOWNSTREAM_URL": f"http://127.0.0.1:{port}/echo"}
    with run_example(name, tmp_path, port=port, env=echo) as example:
        example.get_as_readme()
        fresh = example.get_twice_without_id("/")
    # Each generated id is the one sent on: the echo answers with it.
    assert [response.json() for response in fresh] == [
        {"request_id": rid, "downstream": rid} for rid in ids_of(fresh)
    ]


# --- logs: structlog, loguru ----------------------------------------------------------


def test_structlog_example_logs_each_requests_id(tmp_path: Path) -> None:
    """Each JSON event logged in a request has its id; the startup event has none."""
    with run_example("structlog", tmp_path) as example:
        example.get_as_readme()
        fresh = ids_of(example.get_twice_without_id(example.readme.path))
    lines = example.output().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert events == [
        {"event": "ready", "level": "info"},
        *(
            {"order": 42, "event": "order received", "request_id": rid, "level": "info"}
            for rid in [example.readme.request_id, *fresh]
        ),
    ]


def test_loguru_example_logs_each_requests_id(tmp_path: Path) -> None:
    """Each line logged in a request shows its id; the line logged at import, ``-``."""
    with run_example("loguru", tmp_path) as example:
        example.get_as_readme()
        fresh = ids_of(example.get_twice_without_id(example.readme.path))
    logged = re.findall(r"^\d\d:\d\d:\d\d INFO \[(\S+)\] (.+)$", example.output(), re.M)
    assert logged == [
        ("-", "app loaded"),
        (example.readme.request_id, "order received"),
        (fresh[0], "order received"),
        (fresh[1], "order received"),
    ]


# --- errors: Sentry ------------------------------------------------------------------


def test_sentry_example_tags_each_error_with_its_requests_id(tmp_path: Path) -> None:
    """The SDK posts one event per failed request, tagged with that request's id."""
    with serve_sentry_host() as host:
        with run_example("sentry", tmp_path, env={"SENTRY_DSN": host.dsn}) as example:
            assert example.get_as_readme().status_code == 500
            fresh = ids_of(example.get_twice_without_id(example.readme.path))
            wait_until(lambda: len(host.events()) >= 3, what="three Sentry events")
        events = host.events()  # the process has exited: nothing more to come
    assert [event["tags"] for event in events] == [
        {"request_id": rid} for rid in [example.readme.request_id, *fresh]
    ]
    assert {
        value["type"] for event in events for value in event["exception"]["values"]
    } == {"RuntimeError"}


# --- traces: OpenTelemetry ------------------------------------------------------------


def printed_spans(output: str) -> list[dict[str, Any]]:
    """The spans ``ConsoleSpanExporter`` printed: JSON objects opening a line."""
    decoder = json.JSONDecoder()
    spans = []
    for start in (m.start() for m in re.finditer(r"^\{", output, re.MULTILINE)):
        span, _end = decoder.raw_decode(output, start)
        spans.append(span)
    return spans


def test_opentelemetry_example_puts_each_requests_id_on_its_spans(
    tmp_path: Path,
) -> None:
    """The server span and the app's span of each request carry its id."""
    with run_example("opentelemetry", tmp_path) as example:
        example.get_as_readme()
        fresh = ids_of(example.get_twice_without_id(example.readme.path))
    spans = printed_spans(example.output())
    for request_id in [example.readme.request_id, *fresh]:
        mine = [s for s in spans if s["attributes"].get("request_id") == request_id]
        kinds = {(s["name"], s["kind"]) for s in mine}
        assert ("GET /order", "SpanKind.SERVER") in kinds, spans
        assert ("load order", "SpanKind.INTERNAL") in kinds, spans
        # One trace per request, and every span in it carries its id.
        (trace_id,) = {s["context"]["trace_id"] for s in mine}
        in_trace = [s for s in spans if s["context"]["trace_id"] == trace_id]
        assert in_trace == mine
