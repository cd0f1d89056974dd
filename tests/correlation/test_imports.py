"""What importing the packages pulls in, and which way imports point."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import correlation

PACKAGE_DIR = Path(correlation.__file__).resolve().parent
# Where the imported package lives, so a subprocess imports the same code.
IMPORT_ROOT = str(PACKAGE_DIR.parent)

OPTIONAL_LIBRARIES = [
    "django",
    "fastapi",
    "flask",
    "httpx",
    "requests",
    "urllib3",
    "aiohttp",
    "celery",
    "kombu",
    "structlog",
    "loguru",
    "sentry_sdk",
    "opentelemetry",
    "starlette",
    "uvicorn",
    "werkzeug",
]
CORE_FORBIDDEN = sorted([*OPTIONAL_LIBRARIES, "anyio", "asgiref"])

SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


def _modules_loaded_by(statement: str) -> set[str]:
    """Top-level names in sys.modules after *statement* in a fresh interpreter."""
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {IMPORT_ROOT!r})
        {statement}
        print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    loaded: list[str] = json.loads(completed.stdout)
    return set(loaded)


def _imported_names(path: Path) -> list[tuple[str, int]]:
    """(absolute top-level module name, relative level) for each import in *path*."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((alias.name.split(".")[0], 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.append((module.split(".")[0], node.level))
    return names


def test_core_import_loads_no_framework() -> None:
    """Importing the core and its public submodules loads no framework or asgiref."""
    loaded = _modules_loaded_by(
        "import correlation, correlation.logging, correlation.sources,"
        " correlation.threads"
    )
    assert "correlation" in loaded
    assert loaded.isdisjoint(CORE_FORBIDDEN), sorted(loaded & set(CORE_FORBIDDEN))


ADAPTERS = [
    "adapters.asgi",
    "adapters.wsgi",
    "adapters.django",
    "adapters.httpx",
    "adapters.requests",
    "adapters.aiohttp",
    "adapters.celery",
    "adapters.structlog",
    "adapters.loguru",
    "adapters.sentry",
    "adapters.opentelemetry",
]


def _assert_no_optional_library(loaded: set[str]) -> None:
    assert loaded.isdisjoint(OPTIONAL_LIBRARIES), sorted(
        loaded & set(OPTIONAL_LIBRARIES)
    )


@pytest.mark.parametrize("module", ADAPTERS)
def test_adapter_import_loads_no_optional_library(module: str) -> None:
    """Importing an adapter loads no framework, server, client or logging library."""
    loaded = _modules_loaded_by(f"import {module}")
    assert "adapters" in loaded
    _assert_no_optional_library(loaded)


def test_importing_every_package_and_adapter_loads_no_optional_library() -> None:
    """All of them in one process, as an app that uses every integration does."""
    loaded = _modules_loaded_by(f"import correlation, adapters, {', '.join(ADAPTERS)}")
    assert {"correlation", "adapters"} <= loaded
    _assert_no_optional_library(loaded)


def test_core_sources_are_found() -> None:
    """The source scan below sees every core module."""
    names = {path.name for path in SOURCES}
    expected = {"__init__.py", "_config.py", "_context.py", "_ids.py", "logging.py"}
    assert {*expected, "sources.py", "threads.py"} <= names


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=path.relative_to(PACKAGE_DIR).as_posix())
        for path in SOURCES
    ],
)
def test_core_imports_standard_library_only(path: Path) -> None:
    """Every core module imports only the standard library and correlation."""
    foreign = [
        name
        for name, level in _imported_names(path)
        if level == 0 and name not in sys.stdlib_module_names and name != "correlation"
    ]
    assert foreign == []


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=path.relative_to(PACKAGE_DIR).as_posix())
        for path in SOURCES
    ],
)
def test_core_never_imports_adapters(path: Path) -> None:
    """Imports point one way: nothing under correlation/ imports adapters."""
    assert ("adapters", 0) not in _imported_names(path)
    # Nor by name, e.g. importlib.import_module("adapters.asgi").
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    named = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value == "adapters" or node.value.startswith("adapters."))
    ]
    assert named == []


#: Standard-library modules that cost more to import than the whole package:
#: ``dataclasses`` (with ``inspect``, ``ast``, ``dis``, ``enum``), ``re``,
#: ``typing``, ``logging``. Library code importing ``get_request_id``, and an
#: app importing an adapter, load none of them through this package.
HEAVY_STDLIB = ["ast", "dataclasses", "enum", "inspect", "logging", "re", "typing"]


@pytest.mark.parametrize(
    "statement",
    [
        "from correlation import get_request_id",
        "import correlation, adapters.asgi",
        "import correlation, adapters.wsgi",
    ],
)
def test_import_loads_no_heavy_standard_library(statement: str) -> None:
    """The cheap imports stay cheap: no dataclasses, re, typing or logging."""
    bare = _modules_loaded_by("pass")
    loaded = _modules_loaded_by(statement) - bare
    assert loaded.isdisjoint(HEAVY_STDLIB), sorted(loaded & set(HEAVY_STDLIB))


@pytest.mark.parametrize(
    "statement",
    [
        "from correlation import Config",
        "import correlation; correlation.Config()",
        "import adapters.asgi; adapters.asgi.RequestIdMiddleware(None)",
        "import adapters.wsgi; adapters.wsgi.RequestIdMiddleware(None)",
    ],
)
def test_config_loads_dataclasses_on_first_use(statement: str) -> None:
    """Config is loaded when first used: then it is the real dataclass."""
    # The statement loaded dataclasses itself, before the check imports it.
    _modules_loaded_by(
        f"{statement}; assert 'dataclasses' in sys.modules;"
        " import dataclasses, correlation;"
        " assert dataclasses.is_dataclass(correlation.Config)"
    )
