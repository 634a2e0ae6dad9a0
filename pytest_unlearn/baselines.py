"""Named baselines: a run's per-item outcomes saved, and a later run compared with them.

Baselines live in ``<cache dir>/baselines/<name>.json``; names are checked to a safe
alphabet when the options are parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UnlearnError


def baseline_path(cache_dir: Path, name: str) -> Path:
    return cache_dir / "baselines" / f"{name}.json"


def save_baseline(cache_dir: Path, name: str, summary: dict[str, Any]) -> Path:
    path = baseline_path(cache_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"run": summary["run"], "rows": summary["rows"], "items": summary["items"]}
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content, indent=1, default=str))
    temporary.replace(path)
    return path


def compare_with_baseline(cache_dir: Path, name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Items that passed in the baseline and fail now, per scope.

    newly_leaked: unlearn-scope items the model recalls again; newly_lost: retention-scope
    items it no longer recalls. Items are matched by method, seed, prompt variant and item id.
    """
    path = baseline_path(cache_dir, name)
    if not path.is_file():
        saved = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise UnlearnError(
            f"--unlearn-compare={name}: no baseline {path}. Save one with "
            f"--unlearn-save={name}; saved baselines: {', '.join(saved) or 'none'}"
        )

    def key(item: dict[str, Any]) -> tuple[str, int, str, str]:
        return item["method"], item.get("seed", 0), item.get("prompt", "plain"), item["item"]

    before = {key(item): item["outcome"] for item in _saved_items(path, name)}
    newly_leaked: list[str] = []
    newly_lost: list[str] = []
    for item in summary["items"]:
        previous = before.get(key(item))
        if previous == "passed" and item["outcome"] != "passed":
            (newly_leaked if item["scope"] == "unlearn" else newly_lost).append(
                f"{item['method']}:{item['item']}"
            )
    return {
        "baseline": name,
        "newly_leaked": newly_leaked,
        "newly_lost": newly_lost,
        "matched_items": sum(key(item) in before for item in summary["items"]),
    }


def _saved_items(path: Path, name: str) -> list[dict[str, Any]]:
    """The item outcomes a baseline file holds, checked: a file of another shape is an error."""
    fix = f"save it again with --unlearn-save={name}"
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # ValueError: not UTF-8, or not JSON
        raise UnlearnError(
            f"--unlearn-compare={name}: cannot read the baseline {path} ({error}); {fix}"
        ) from None
    items = content.get("items") if isinstance(content, dict) else None
    if not isinstance(items, list):
        got = (
            "an object without an 'items' list"
            if isinstance(content, dict)
            else type(content).__name__
        )
        raise UnlearnError(
            f"--unlearn-compare={name}: {path} is not a baseline (expected a JSON "
            f"object with an 'items' list, got {got}); {fix}"
        )
    for index, item in enumerate(items):
        if not (
            isinstance(item, dict)
            and all(isinstance(item.get(field), str) for field in ("method", "item", "outcome"))
            and type(item.get("seed", 0)) is int
            and isinstance(item.get("prompt", ""), str)
        ):
            raise UnlearnError(
                f"--unlearn-compare={name}: {path}: items[{index}] is not a saved "
                "item outcome (strings method, item and outcome; optional integer "
                f"seed and string prompt), got {item!r}; {fix}"
            )
    return items
