"""The one exception type the harness raises for problems a user can fix."""

from __future__ import annotations


class UnlearnError(Exception):
    """A problem with the user's input or environment.

    The message always says what went wrong, where, and how to fix it. The plugin turns it
    into a `pytest.UsageError` while the run is being configured, and into a clean test
    error (no internal traceback) once tests run.
    """
