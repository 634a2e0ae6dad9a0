"""Hooks that pytest-unlearn adds to pytest.

Implement them in a ``conftest.py`` or a plugin. A third-party plugin that may be installed
without pytest-unlearn marks its implementations ``@pytest.hookimpl(optionalhook=True)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .registry import MethodRegistry


@pytest.hookspec
def pytest_unlearn_register_methods(registry: MethodRegistry) -> None:
    """Register unlearning methods defined outside an installed package.

    Called once per session, before any method name is resolved. Installed packages use
    the ``pytest_unlearn.methods`` entry-point group instead. A name that is already taken
    is an error.

    Example, in a ``conftest.py``::

        from my_methods import ScrubMethod

        def pytest_unlearn_register_methods(registry):
            registry.register("scrub", ScrubMethod)
    """


@pytest.hookspec
def pytest_unlearn_update_summary(summary: dict[str, Any]) -> None:
    """Change the run's summary in place before it is printed and written.

    ``summary["rows"]`` is a list of dicts, one per (method, domain), with the metrics;
    ``summary["run"]`` holds the settings of the run. Mutate only: the return value is
    ignored. Runs on the controller process only (not on xdist workers).

    Example::

        def pytest_unlearn_update_summary(summary):
            for row in summary["rows"]:
                row["team"] = "privacy-eng"
    """
