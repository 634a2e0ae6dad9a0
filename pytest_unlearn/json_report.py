"""The JSON report (--unlearn-json): the summary, with what a reader needs to trust and
reproduce it, written strictly and described by a published JSON Schema.

Besides the summary's run, rows, items, general-task results, comparison and gate, the report
holds its schema version, the plugin's and the main libraries' versions, when and how the
run was started (the command line, the invocation folder) and every resolved setting. Each
item carries its question and reference answer, what the model generated and any sensitive
strings a leak test found. ``report.schema.json`` (in the package) is the schema;
``SCHEMA_VERSION`` is raised when a field changes meaning or goes away.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shlex
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from . import __version__
from .data import DomainData
from .errors import UnlearnError
from .settings import Settings

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("report.schema.json")

# The libraries whose versions a result depends on (torch ... rouge-score) or that ran it.
LIBRARIES = (
    "pytest",
    "torch",
    "transformers",
    "peft",
    "tokenizers",
    "safetensors",
    "accelerate",
    "lm_eval",
    "datasets",
    "rouge_score",
    "pytest-xdist",
)


def report_metadata(
    settings: Settings,
    started: float,
    args: Sequence[str],
    invocation_dir: Path,
    line: str | None = None,
) -> dict[str, Any]:
    """The report's first fields: schema version, versions, start time, command (``line``:
    how it was started, default the pytest command line of ``args``), settings."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "pytest-unlearn", "version": __version__},
        "versions": versions(),
        "timestamp": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "command": {
            "line": shlex.join(["pytest", *args]) if line is None else line,
            "args": list(args),
            "invocation_dir": str(invocation_dir),
        },
        "settings": settings_as_dict(settings),
    }


def versions() -> dict[str, str | None]:
    """Python's and each library's installed version (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    """Every resolved setting, paths as strings and tuples as lists."""
    return {
        field.name: _plain(getattr(settings, field.name)) for field in dataclasses.fields(settings)
    }


def with_texts(
    items: list[dict[str, Any]], domain_data: Callable[[str], DomainData]
) -> list[dict[str, Any]]:
    """Item outcomes with each item's question and reference answer, from its domain's data.

    An item the data no longer holds (a conftest changed it mid-run) is an error of the run,
    not something to leave out silently."""
    records: dict[str, dict[str, Any]] = {}
    texts = []
    for item in items:
        domain = item["domain"]
        if domain not in records:
            records[domain] = {each.id: each.record for each in domain_data(domain).items()}
        record = records[domain].get(item["item"])
        if record is None:
            raise UnlearnError(
                f"item {item['item']} reported a result but the {domain} data has no such "
                "item: was the data changed while the run went on?"
            )
        texts.append({**item, "question": record.question, "answer": record.answer})
    return texts


def write_json(path: Path, summary: dict[str, Any]) -> None:
    """Strict JSON: a metric with no items (NaN) is written as null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_strict(summary), indent=2, default=str, allow_nan=False) + "\n")


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(each) for each in value]
    if isinstance(value, dict):
        return {str(key): _plain(each) for key, each in value.items()}
    return value


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(each) for key, each in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(each) for each in value]
    return value
