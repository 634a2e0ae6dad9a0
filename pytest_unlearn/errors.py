"""The exception the harness raises for problems a user can fix, and the warning it gives
when a run can go on but its figures deserve doubt."""

from __future__ import annotations


class UnlearnError(Exception):
    """A problem with the user's input or environment.

    The message always says what went wrong, where, and how to fix it. The plugin turns it
    into a `pytest.UsageError` while the run is being configured, and into a clean test
    error (no internal traceback) once tests run.
    """


class InjectionWarning(UserWarning):
    """Knowledge injection left the vanilla model recalling too few of its records: what it
    never learned passes every forget test, so Unlearn Success overstates every method."""
