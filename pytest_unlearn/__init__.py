"""pytest-unlearn: test that an LLM forgot what it must forget and kept what it must keep.

Import-light on purpose: the pytest entry module imports this package in every pytest run.
The public names are resolved lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "UnlearningMethod": "pytest_unlearn.method",
    "UnlearnContext": "pytest_unlearn.method",
    "MethodResult": "pytest_unlearn.method",
    "MethodRegistry": "pytest_unlearn.registry",
    "UnlearnError": "pytest_unlearn.errors",
    "Record": "pytest_unlearn.data",
    "TrainSettings": "pytest_unlearn.training",
    "Trainer": "pytest_unlearn.training",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pytest_unlearn' has no attribute {name!r}")
