"""The public API is exactly what __all__ lists; both packages are typed."""

from __future__ import annotations
import __future__

import importlib
import types
from pathlib import Path

import pytest

import adapters
import adapters.aiohttp
import adapters.asgi
import adapters.celery
import adapters.django
import adapters.httpx
import adapters.loguru
import adapters.opentelemetry
import adapters.requests
import adapters.sentry
import adapters.structlog
import adapters.wsgi
import correlation
import correlation.logging
import correlation.sources
import correlation.threads

MODULES = [
    pytest.param(correlation, id="correlation"),
    pytest.param(correlation.logging, id="correlation.logging"),
    pytest.param(correlation.sources, id="correlation.sources"),
    pytest.param(correlation.threads, id="correlation.threads"),
    pytest.param(adapters.asgi, id="adapters.asgi"),
    pytest.param(adapters.wsgi, id="adapters.wsgi"),
    pytest.param(adapters.django, id="adapters.django"),
    pytest.param(adapters.httpx, id="adapters.httpx"),
    pytest.param(adapters.requests, id="adapters.requests"),
    pytest.param(adapters.aiohttp, id="adapters.aiohttp"),
    pytest.param(adapters.celery, id="adapters.celery"),
    pytest.param(adapters.structlog, id="adapters.structlog"),
    pytest.param(adapters.loguru, id="adapters.loguru"),
    pytest.param(adapters.sentry, id="adapters.sentry"),
    pytest.param(adapters.opentelemetry, id="adapters.opentelemetry"),
]


#: Names a module provides on first access (module ``__getattr__``), so that
#: importing it stays cheap; they are public all the same.
LAZY = {
    "correlation": {"Config"},
    "adapters.requests": {"RequestIdAdapter"},
    "adapters.opentelemetry": {"RequestIdSpanProcessor"},
}


def _public_names(module: types.ModuleType) -> list[str]:
    """Names a reader would take as public: not '_'-prefixed, not a module.

    ``from __future__ import annotations`` binds ``annotations`` in every module;
    it is a compiler directive, not API, so it is left out.
    """
    names = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and value is not __future__.annotations
    }
    return sorted(names | LAZY.get(module.__name__, set()))


@pytest.mark.parametrize("module", MODULES)
def test_all_is_sorted(module: types.ModuleType) -> None:
    """__all__ is a sorted list of unique names."""
    exported = module.__all__
    assert isinstance(exported, list)
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)


@pytest.mark.parametrize("module", MODULES)
def test_all_equals_public_names(module: types.ModuleType) -> None:
    """__all__ lists every public name of the module and nothing else."""
    assert module.__all__ == _public_names(module)


@pytest.mark.parametrize("module", MODULES)
def test_every_name_in_all_exists(module: types.ModuleType) -> None:
    """Every name in __all__ is an attribute of the module."""
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_lazy_names_resolve_to_what_they_name() -> None:
    """correlation's module __getattr__ hands out Config and the logging module."""
    import correlation.logging as logging_module
    from correlation._config import Config

    lazy = correlation.__getattr__
    assert lazy("Config") is Config
    assert lazy("logging") is logging_module
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        lazy("nothing")


def test_correlation_exports_the_fixed_names() -> None:
    """The contract's fixed core names are exported."""
    assert {"Config", "get_request_id"} <= set(correlation.__all__)
    assert adapters.asgi.__all__ == ["RequestIdMiddleware"]
    assert adapters.wsgi.__all__ == ["RequestIdMiddleware"]
    assert adapters.django.__all__ == ["RequestIdMiddleware"]
    assert adapters.httpx.__all__ == ["RequestIdHook", "propagate"]
    assert adapters.requests.__all__ == ["RequestIdAdapter", "propagate"]
    assert adapters.aiohttp.__all__ == ["RequestIdClientMiddleware"]
    assert adapters.celery.__all__ == ["DEFAULT_HEADER_KEY", "connect", "disconnect"]
    assert adapters.structlog.__all__ == ["add_request_id"]
    assert adapters.loguru.__all__ == ["patcher"]
    assert adapters.sentry.__all__ == ["install"]
    assert adapters.opentelemetry.__all__ == [
        "RequestIdSpanProcessor",
        "trace_id_or_new",
    ]


def test_version_is_a_str() -> None:
    """correlation.__version__ is a non-empty str."""
    assert isinstance(correlation.__version__, str)
    assert correlation.__version__


@pytest.mark.parametrize(
    "package",
    [
        pytest.param(correlation, id="correlation"),
        pytest.param(adapters, id="adapters"),
    ],
)
def test_py_typed_ships_with_the_package(package: types.ModuleType) -> None:
    """A py.typed marker sits next to the package's __init__.py."""
    assert package.__file__ is not None
    assert (Path(package.__file__).parent / "py.typed").is_file()


ALL_MODULES = [
    "correlation",
    "correlation.logging",
    "correlation.sources",
    "correlation.threads",
    "correlation._bound",
    "correlation._config",
    "correlation._context",
    "correlation._ids",
    "correlation._outbound",
    "adapters",
    "adapters.asgi",
    "adapters.wsgi",
    "adapters.django",
    "adapters.httpx",
    "adapters.requests",
    "adapters._requests_adapter",
    "adapters.aiohttp",
    "adapters._types",
    "adapters._extras",
    "adapters.celery",
    "adapters.structlog",
    "adapters.loguru",
    "adapters.sentry",
    "adapters.opentelemetry",
    "adapters._opentelemetry_processor",
]


@pytest.mark.parametrize("name", ALL_MODULES)
def test_no_module_keeps_a_typing_only_constant(name: str) -> None:
    """No module has a TYPE_CHECKING attribute: it exists only for mypy."""
    module = importlib.import_module(name)
    assert not hasattr(module, "TYPE_CHECKING")


def test_dir_lists_the_public_names_and_lazy_ones() -> None:
    """dir(correlation) shows Config, the submodules and __all__, nothing private."""
    listed = dir(correlation)
    assert {
        *correlation.__all__,
        "logging",
        "sources",
        "threads",
        "__version__",
    } <= set(listed)
    assert "Config" in listed
    assert [name for name in listed if name.startswith("_")] == ["__version__"]


@pytest.mark.parametrize(
    ("value", "module"),
    [
        pytest.param(correlation.Config, "correlation", id="Config"),
        pytest.param(correlation.get_request_id, "correlation", id="get_request_id"),
        pytest.param(
            correlation.bound_request_id, "correlation", id="bound_request_id"
        ),
        pytest.param(
            correlation.default_validator, "correlation", id="default_validator"
        ),
        pytest.param(correlation.generate_id, "correlation", id="generate_id"),
        pytest.param(
            correlation.logging.RequestIdFilter,
            "correlation.logging",
            id="RequestIdFilter",
        ),
        pytest.param(correlation.threads.carry, "correlation.threads", id="carry"),
        pytest.param(
            correlation.threads.ThreadPoolExecutor,
            "correlation.threads",
            id="ThreadPoolExecutor",
        ),
        pytest.param(correlation.threads.Thread, "correlation.threads", id="Thread"),
        pytest.param(correlation.sources.Source, "correlation.sources", id="Source"),
        pytest.param(correlation.sources.header, "correlation.sources", id="header"),
        pytest.param(
            adapters.asgi.RequestIdMiddleware, "adapters.asgi", id="asgi-middleware"
        ),
        pytest.param(
            adapters.wsgi.RequestIdMiddleware, "adapters.wsgi", id="wsgi-middleware"
        ),
    ],
)
def test_exported_objects_report_their_public_module(
    value: object, module: str
) -> None:
    """Each exported object names the module users import it from."""
    assert getattr(value, "__module__", None) == module


def test_threads_exports_its_three_names() -> None:
    """correlation.threads exports carry, ThreadPoolExecutor and Thread."""
    assert correlation.threads.__all__ == ["Thread", "ThreadPoolExecutor", "carry"]


def test_sources_exports_its_four_names() -> None:
    """correlation.sources exports Source and the three ways to make one."""
    assert correlation.sources.__all__ == [
        "Source",
        "aws_trace_root",
        "header",
        "traceparent",
    ]
