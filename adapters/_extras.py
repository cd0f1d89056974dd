"""The check every integration module runs on import: is its library installed?

``find_spec`` looks the library up without importing it, so the check keeps
the promise that importing an adapter loads no optional library, and a
missing one fails at once, with the extra that installs it, rather than on
first use.
"""

from __future__ import annotations

import importlib.util


def require(adapter: str, library: str, *, extra: str, label: str) -> None:
    """Raise ``ImportError`` naming *extra* when *library* is not installed.

    *adapter* is the importing module's name, *label* the library as people
    write it (``"sentry-sdk"``, ``"OpenTelemetry"``).
    """
    if importlib.util.find_spec(library) is None:
        raise ImportError(
            f"{adapter} needs {label}: pip install 'correlation-toolkit[{extra}]'",
            name=library,
        )
