"""Project-level pytest configuration.

The plugin's own tests drive pytest in-process and in subprocesses with `pytester`.
"""

pytest_plugins = ("pytester",)
