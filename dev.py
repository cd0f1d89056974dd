"""Project tasks that need nothing but Python and pip.

    python dev.py demo     run the demo (--broker URL: Redis or RabbitMQ
                           instead of the filesystem transport)
    python dev.py test     run the whole test suite against the built wheel
    python dev.py check    ruff check, ruff format --check, mypy --strict
    python dev.py docs     build the documentation site into site/, strictly
                           (--serve: serve it instead, on
                           http://127.0.0.1:8000/correlation-toolkit/)

Each task makes a fresh virtual environment under ``.venv/`` for the Python
that runs this script, so ``python3.10 dev.py test`` and ``python3.13 dev.py
test`` do not disturb each other. Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TAG = f"py{sys.version_info.major}.{sys.version_info.minor}"
# PEP 735 dependency groups (`pip install --group`) need pip 25.1 or newer.
PIP_MIN = "pip>=25.1"


def _run(
    *args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=cwd, env=env, check=True)


def _fresh_venv(name: str) -> Path:
    """Create ``.venv/<name>-<python>`` from scratch and return its python."""
    path = ROOT / ".venv" / f"{name}-{TAG}"
    venv.EnvBuilder(clear=True, with_pip=True).create(path)
    python = path / ("Scripts" if os.name == "nt" else "bin") / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", PIP_MIN)
    return python


def _build_wheel(python: Path, into: Path) -> Path:
    _run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", into, ROOT)
    (wheel,) = into.glob("correlation_toolkit-*.whl")
    return wheel


def test(pytest_args: list[str]) -> None:
    """Build the wheel, install it with the test group, run pytest against it.

    Tests run against the installed wheel, not the checkout: pytest is started
    through its console script with ``--import-mode=importlib``, so the
    checkout's directories are not on ``sys.path``, and a test checks that.
    """
    python = _fresh_venv("test")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _build_wheel(python, Path(tmp))
        _run(python, "-m", "pip", "install", "--quiet", "--group", "test", wheel)
        env = dict(os.environ, CORRELATION_TOOLKIT_WHEEL=str(wheel))
        env.pop("PYTHONPATH", None)
        pytest = python.parent / "pytest"
        _run(pytest, "--cov", "--cov-report=term", *pytest_args, env=env)


def check() -> None:
    """Lint, format check and strict type check of the packages and tests."""
    python = _fresh_venv("check")
    _run(python, "-m", "pip", "install", "--quiet", "--group", "dev", "-e", ROOT)
    bindir = python.parent
    _run(bindir / "ruff", "check", ".")
    _run(bindir / "ruff", "format", "--check", ".")
    _run(bindir / "mypy", "--strict")
    # Each example is a project of its own, and their modules share names
    # (app.py), so mypy checks one example at a time.
    for example in sorted(path for path in (ROOT / "examples").iterdir()):
        if example.is_dir():
            _run(bindir / "mypy", "--strict", example.relative_to(ROOT))


def docs(docs_args: list[str]) -> None:
    """Build the site from docs/ with mkdocs --strict: a warning fails it.

    mkdocstrings reads the docstrings from the checkout without importing it,
    so the docs group is all the site needs.
    """
    python = _fresh_venv("docs")
    _run(python, "-m", "pip", "install", "--quiet", "--group", "docs")
    # Material prints a notice about MkDocs 2.0 on every build; it is not a
    # warning about this site (mkdocs.yml says why we stay on MkDocs).
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    if docs_args == ["--serve"]:
        _run(python, "-m", "mkdocs", "serve", "--strict", env=env)
    else:
        _run(python, "-m", "mkdocs", "build", "--strict", *docs_args, env=env)


def demo(demo_args: list[str]) -> None:
    """Install the checkout with the demo's servers and run the demo."""
    python = _fresh_venv("demo")
    _run(python, "-m", "pip", "install", "--quiet", "--group", "demo", ROOT)
    _run(python, ROOT / "demo" / "run.py", *demo_args, cwd=ROOT / "demo")


def main(argv: list[str]) -> int:
    tasks = {"check": check}
    if argv[:1] == ["test"]:
        test(argv[1:])
    elif argv[:1] == ["demo"]:
        demo(argv[1:])
    elif argv[:1] == ["docs"]:
        docs(argv[1:])
    elif len(argv) == 1 and argv[0] in tasks:
        tasks[argv[0]]()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
