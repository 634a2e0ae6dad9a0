"""Named baselines: a run's per-item outcomes saved, and a later run compared with them.

Baselines live in ``<cache dir>/baselines/<name>.json``; names are checked to a safe
alphabet when the options are parsed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import UnlearnError
from .vocabulary import DEFAULT_PROMPT, RECALL


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
    """The tests that passed in the baseline and fail now, per scope.

    newly_leaked: unlearn-scope tests that fail again (the item is recalled, recalled after
    the attack, or written in a generation); newly_lost: retention-scope items no longer
    recalled. A test is matched by everything that identifies it: method, domain, seed,
    prompt variant, test kind and item; each appears once, labelled with what is not the
    default.
    """
    path = baseline_path(cache_dir, name)
    if not path.is_file():
        saved = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise UnlearnError(
            f"--unlearn-compare={name}: no baseline {path}. Save one with "
            f"--unlearn-save={name}; saved baselines: {', '.join(saved) or 'none'}"
        )
    before = {identity_of(item): item["outcome"] for item in _saved_items(path, name)}
    several_seeds = len({item.get("seed", 0) for item in summary["items"]}) > 1
    newly_leaked: list[str] = []
    newly_lost: list[str] = []
    matched = 0
    for item in summary["items"]:
        previous = before.get(identity_of(item))
        matched += previous is not None
        if previous == "passed" and item["outcome"] != "passed":
            changed = newly_leaked if item["scope"] == "unlearn" else newly_lost
            changed.append(label_of(item, several_seeds))
    comparison: dict[str, Any] = {
        "baseline": name,
        "newly_leaked": newly_leaked,
        "newly_lost": newly_lost,
        "matched_items": matched,
    }
    changes = privleak_changes(path, summary["rows"])
    if changes:
        comparison["privleak"] = changes
    return comparison


def privleak_changes(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and domain that has PrivLeak (membership tests, docs/privacy.md) in the
    baseline and now: both values and the change."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get("rows") or []
    except (OSError, ValueError, AttributeError):
        return []
    before = {
        (row.get("method"), row.get("domain")): row.get("privleak")
        for row in saved
        if isinstance(row, dict) and isinstance(row.get("privleak"), (int, float))
    }
    changes = []
    for row in rows:
        previous = before.get((row["method"], row["domain"]))
        now = row.get("privleak")
        if previous is not None and isinstance(now, (int, float)):
            changes.append(
                {
                    "method": row["method"],
                    "domain": row["domain"],
                    "before": previous,
                    "now": now,
                    "change": now - previous,
                }
            )
    return changes


def identity_of(item: dict[str, Any]) -> tuple[str, str, int, str, str, str]:
    """What identifies an item test across runs (older baselines lack domain and test kind:
    the domain is the item id's prefix, the kind the teacher-forced one)."""
    return (
        item["method"],
        item.get("domain") or item["item"].split("-", 1)[0],
        item.get("seed", 0),
        item.get("prompt", DEFAULT_PROMPT),
        item.get("test", RECALL),
        item["item"],
    )


def label_of(item: dict[str, Any], with_seed: bool) -> str:
    """``method:item``, then what is not the default: the test kind, the prompt, the seed."""
    details = []
    if item.get("test", RECALL) != RECALL:
        details.append(item["test"])
    if item.get("prompt", DEFAULT_PROMPT) != DEFAULT_PROMPT:
        details.append(f"prompt {item['prompt']}")
    if with_seed:
        details.append(f"seed {item.get('seed', 0)}")
    return f"{item['method']}:{item['item']}" + (f" ({', '.join(details)})" if details else "")


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
            and isinstance(item.get("test", ""), str)
            and isinstance(item.get("domain", ""), str)
        ):
            raise UnlearnError(
                f"--unlearn-compare={name}: {path}: items[{index}] is not a saved "
                "item outcome (strings method, item and outcome; optional integer "
                f"seed and strings prompt, test and domain), got {item!r}; {fix}"
            )
    return items
