"""The public API is exactly what __all__ lists; both packages are typed."""

from __future__ import annotations
import __future__

import types
from pathlib import Path

import pytest

import adapters
import adapters.asgi
import adapters.wsgi
import correlation

MODULES = [
    pytest.param(correlation, id="correlation"),
    pytest.param(adapters.asgi, id="adapters.asgi"),
    pytest.param(adapters.wsgi, id="adapters.wsgi"),
]


#: Names a module provides on first access (module ``__getattr__``), so that
#: importing it stays cheap; they are public all the same.
LAZY = {"correlation": {"Config"}}


def _public_names(module: types.ModuleType) -> list[str]:
    """Names a reader would take as public: not '_'-prefixed, not a module.

    ``from __future__ import annotations`` binds ``annotations`` in every module;
    it is a compiler directive, not API, so it is left out. So is the
    ``TYPE_CHECKING = False`` constant that stands in for ``typing``'s (whose
    import would cost more than the module itself).
    """
    names = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and value is not __future__.annotations
        and name != "TYPE_CHECKING"
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
