"""The wheel: what it holds, what it declares, and that the tests run against it."""

from __future__ import annotations

import email.message
import email.parser
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import adapters
import correlation

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel dev.py built, or one built here when pytest runs on its own."""
    built = os.environ.get("CORRELATION_TOOLKIT_WHEEL")
    if built is None:
        out = tmp_path_factory.mktemp("wheel")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, ROOT],
            check=True,
            timeout=300,
        )
        (path,) = out.glob("*.whl")
    else:
        path = Path(built)
    with zipfile.ZipFile(path) as archive:
        yield archive


def _metadata(archive: zipfile.ZipFile) -> email.message.Message:
    (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    return email.parser.Parser().parsestr(archive.read(name).decode())


def test_wheel_holds_exactly_the_two_packages(wheel: zipfile.ZipFile) -> None:
    """Only correlation/ and adapters/ (each with py.typed) and the dist-info."""
    names = wheel.namelist()
    top = {n.split("/", 1)[0] for n in names if ".dist-info/" not in n}
    assert top == {"correlation", "adapters"}
    assert "correlation/py.typed" in names
    assert "adapters/py.typed" in names
    assert not [n for n in names if "test" in n.lower()]


def test_wheel_metadata(wheel: zipfile.ZipFile) -> None:
    """Not named correlation, Python 3.10+, runtime deps asgiref and werkzeug only.

    Each integration's library is an optional extra, never a runtime dependency.
    """
    meta = _metadata(wheel)
    assert meta["Name"] == "correlation-toolkit"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Version"] == correlation.__version__
    requires = meta.get_all("Requires-Dist") or []
    runtime = sorted(
        r.split(">")[0].split(";")[0].strip() for r in requires if "extra ==" not in r
    )
    assert runtime == ["asgiref", "werkzeug"]
    extras = [r.replace("'", '"') for r in requires if "extra ==" in r]
    assert sorted(extras) == [
        'aiohttp>=3.12; extra == "aiohttp"',
        'celery>=5.4; extra == "celery"',
        'django>=4.2; extra == "django"',
        'httpx>=0.27; extra == "httpx"',
        'loguru>=0.7; extra == "loguru"',
        'opentelemetry-api>=1.25; extra == "opentelemetry"',
        'opentelemetry-sdk>=1.25; extra == "opentelemetry"',
        'requests>=2.32; extra == "requests"',
        'sentry-sdk>=2.0; extra == "sentry"',
        'structlog>=24.1; extra == "structlog"',
    ]
    assert sorted(meta.get_all("Provides-Extra") or []) == [
        "aiohttp",
        "celery",
        "django",
        "httpx",
        "loguru",
        "opentelemetry",
        "requests",
        "sentry",
        "structlog",
    ]
    assert "Typing :: Typed" in (meta.get_all("Classifier") or [])


def test_wheel_names_the_project_addresses(wheel: zipfile.ZipFile) -> None:
    """The index page links to the site, the source and the issues.

    The README is the package's description there, so its links are absolute
    (test_docs checks that); the same addresses are the site's in mkdocs.yml.
    """
    urls = dict(
        entry.split(", ", 1) for entry in _metadata(wheel).get_all("Project-URL") or []
    )
    repository = "https://github.com/correlation-toolkit/correlation-toolkit"
    site = "https://correlation-toolkit.github.io/correlation-toolkit/"
    assert urls == {
        "Homepage": repository,
        "Documentation": site,
        "Source": repository,
        "Issues": f"{repository}/issues",
        "Changelog": f"{site}changelog/",
    }
    mkdocs = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").splitlines()
    assert f"site_url: {site}" in mkdocs
    assert f"repo_url: {repository}" in mkdocs


def test_tests_run_against_the_installed_wheel() -> None:
    """Under dev.py the packages come from site-packages, never from the checkout."""
    if "CORRELATION_TOOLKIT_WHEEL" not in os.environ:
        # Run directly from a checkout (e.g. an editable install): then the
        # packages must at least be the checkout's own.
        assert Path(correlation.__file__).parent == ROOT / "correlation"
        return
    for package in (correlation, adapters):
        location = Path(package.__file__ or "").resolve()
        assert "site-packages" in location.parts, location
        assert location.parent.parent != ROOT, "imported from the checkout"
