"""Run the projects in ``examples/`` the way their READMEs say.

Not a test module: the plumbing ``tests/examples/`` shares. A test copies an
example into its ``tmp_path`` (``copy_example``), so nothing is written into
the checkout, and checks that what it runs is a command of the example's
README (``readme_commands``). It runs that command with this environment's
scripts (``SCRIPTS``), so the example imports the toolkit under test, in an
environment whose output is unbuffered and whose warnings are errors
(``example_environment``): an example that uses something deprecated fails.

- ``run_to_end``: a command that exits by itself (``python cli.py ...``);
  it must exit 0 within ``RUN_TIMEOUT`` seconds.
- ``run_in_background``: a long-running one (a server, a ``celery worker``),
  started in a session of its own, awaited until it is ready, and on exit
  stopped with SIGTERM; it must exit cleanly, with its whole process group,
  within ``STOP_TIMEOUT`` seconds.
- ``serve_example``: a README's server command (uvicorn, gunicorn,
  waitress-serve) on 127.0.0.1 and a free port instead of its own.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers import (
    HOST,
    ProcessOutput,
    Running,
    answers_http,
    await_started,
    free_port,
    gunicorn_options,
    start_in_session,
    stop_process_group,
    subprocess_environment,
)

__all__ = [
    "EXAMPLES",
    "PROCESS_VARIABLES",
    "RUN_TIMEOUT",
    "SCRIPTS",
    "START_TIMEOUT",
    "STOPPED",
    "STOP_TIMEOUT",
    "Command",
    "copy_example",
    "example_environment",
    "readme_commands",
    "run_in_background",
    "run_to_end",
    "serve_example",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The scripts of this environment: uvicorn, gunicorn, waitress-serve, celery.
SCRIPTS = Path(sys.executable).parent
#: For every process an example test starts: output unbuffered, warnings as
#: errors (as in this suite).
PROCESS_VARIABLES = {"PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "error"}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
RUN_TIMEOUT = 30.0
#: How a stopped server may exit: uvicorn and gunicorn stop gracefully on
#: SIGTERM (uvicorn then re-raises it); waitress-serve has no handler, so the
#: signal's default action ends it.
STOPPED = (0, -signal.SIGTERM)
#: A path no example serves: start-up probes get a 404 and run no view.
_PROBE_PATH = "/startup-probe"
#: The port the READMEs' servers listen on.
_README_PORT = "8000"


def copy_example(name: str, tmp_path: Path) -> Path:
    """A copy of ``examples/<name>`` in *tmp_path*, to run the example in."""
    folder = tmp_path / name
    shutil.copytree(
        EXAMPLES / name, folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    return folder


@dataclass(frozen=True)
class Command:
    """A command of a README, and the output the README shows for it."""

    #: Split as a shell would, without a trailing comment or leading
    #: ``NAME=value`` assignments.
    words: list[str]
    #: The lines shown after a ``$ `` prompt's command, up to the next prompt.
    output: list[str]


def readme_commands(example: str) -> list[Command]:
    """Every command of the ``console`` blocks of the example's README, in order.

    In a block with ``$ `` prompts, the commands are the prompted lines and
    the other lines their output; in a block without, every line is a command.
    """
    text = (EXAMPLES / example / "README.md").read_text(encoding="utf-8")
    commands: list[Command] = []
    for block in text.split("```console\n")[1:]:
        lines = block.split("```", 1)[0].splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        for line in lines:
            if prompted and not line.startswith("$ "):
                commands[-1].output.append(line)
                continue
            words = shlex.split(line.removeprefix("$ "), comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words.pop(0)
            if words:
                commands.append(Command(words, []))
    return commands


def example_environment(
    paths: Sequence[str] = (), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment with ``PROCESS_VARIABLES`` and *extra*.

    *paths* go first on ``PYTHONPATH``.
    """
    return subprocess_environment(paths, {**PROCESS_VARIABLES, **(extra or {})})


def _executable(command: Sequence[str]) -> list[str]:
    """*command* as a README gives it, run with this environment's scripts."""
    program, *arguments = command
    if program == "python":
        return [sys.executable, *arguments]
    script = SCRIPTS / program
    assert script.exists(), f"{script} is not installed"
    return [str(script), *arguments]


def run_to_end(
    folder: Path, command: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run *command* in *folder* with *env*; it must exit 0 within ``RUN_TIMEOUT``."""
    finished = subprocess.run(
        _executable(command),
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished


@contextmanager
def run_in_background(
    folder: Path,
    command: Sequence[str],
    *,
    ready: Callable[[str], bool],
    what: str,
    env: Mapping[str, str],
    clean_exits: Collection[int] = STOPPED,
) -> Iterator[Callable[[], str]]:
    """Run *command* in *folder*; yield a reader of all it printed, once ready.

    *ready* is asked with its output so far until it answers true, within
    ``START_TIMEOUT`` seconds; a process that exits first fails the start.
    On exit it gets SIGTERM and must exit with a status in *clean_exits*,
    with its whole process group, within ``STOP_TIMEOUT`` seconds. *env* is
    its whole environment (``example_environment`` builds one).
    """
    with ProcessOutput(prefix=f"example-{folder.name}-") as output:
        process = start_in_session(
            _executable(command), output.file, env=env, cwd=folder
        )
        try:
            await_started(
                what,
                lambda: ready(output.read()),
                lambda: process.poll() is None,
                START_TIMEOUT,
                output.details,
            )
            yield output.read
        finally:
            stop_process_group(
                process, what, STOP_TIMEOUT, output.details, clean_exits=clean_exits
            )


def _on_port(command: Sequence[str], port: int) -> list[str]:
    """A README's server *command*, listening on 127.0.0.1 and *port*.

    A command that names port 8000 gets *port* instead; one that names none
    gets its server's option for the address. gunicorn also gets the
    suite's ``gunicorn_options()``.
    """
    program, *arguments = command
    moved = [word.replace(_README_PORT, str(port)) for word in arguments]
    if moved == arguments:
        address = {
            "uvicorn": ["--host", HOST, "--port", str(port)],
            "gunicorn": ["--bind", f"{HOST}:{port}"],
        }
        assert program in address, f"{command}: no port to move"
        moved += address[program]
    if program == "gunicorn":
        moved += gunicorn_options()
    return [program, *moved]


@contextmanager
def serve_example(
    folder: Path,
    command: Sequence[str],
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[Running]:
    """Serve the example in *folder* with its README's server *command*.

    On *port*, or a free one, of 127.0.0.1; *env* is added to the example's
    environment. Yields once ``GET /startup-probe`` gets any answer; its
    ``log()`` is everything the server printed. Stopped as
    ``run_in_background`` says, with an exit status in ``STOPPED``.
    """
    port = free_port() if port is None else port
    name = f"the {folder.name} example ({command[0]})"
    with run_in_background(
        folder,
        _on_port(command, port),
        ready=lambda _output: answers_http(port, _PROBE_PATH),
        what=name,
        env=example_environment([], env),
    ) as output:
        yield Running(name, f"http://{HOST}:{port}", output, in_process=False)
