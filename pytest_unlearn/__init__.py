"""pytest-unlearn: test that an LLM forgot what it must forget and kept what it must keep.

Import-light on purpose: the pytest entry module imports this package in every pytest run.
The public names (``pytest_unlearn.api`` for method authors, the registry, and ``evaluate``
for notebooks) are resolved lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "UnlearningMethod": "pytest_unlearn.api",
    "UnlearnContext": "pytest_unlearn.api",
    "MethodResult": "pytest_unlearn.api",
    "UnlearnError": "pytest_unlearn.api",
    "Record": "pytest_unlearn.api",
    "TrainSettings": "pytest_unlearn.api",
    "Trainer": "pytest_unlearn.api",
    "MethodRegistry": "pytest_unlearn.registry",
    "evaluate": "pytest_unlearn.evaluation",
    "Summary": "pytest_unlearn.evaluation",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pytest_unlearn' has no attribute {name!r}")
