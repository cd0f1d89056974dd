"""An integration whose library is missing says which extra installs it."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("adapters.celery", "celery", "celery"),
        ("adapters.structlog", "structlog", "structlog"),
        ("adapters.loguru", "loguru", "loguru"),
        ("adapters.sentry", "sentry_sdk", "sentry"),
        ("adapters.opentelemetry", "opentelemetry", "opentelemetry"),
    ],
)
def test_the_import_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, library: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, library, None)  # as if not installed
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(
        ImportError, match=rf"pip install 'correlation-toolkit\[{extra}\]'"
    ) as raised:
        importlib.import_module(module)
    assert raised.value.name == library
