"""The release gate: thresholds on the run's metrics that decide its exit status.

A gate file (YAML) names, per domain, minimums and maximums of the summary metrics; for the
general tasks, the largest allowed drop from the vanilla (or reference) score; and, with a
baseline comparison, how many items may newly leak or be newly lost::

    methods: [memflex]            # optional: the rows it applies to (default: all but none)
    domains:
      privacy:
        unlearn_success: {min: 0.80}
        retention_success: {min: 0.75}
        retention_ppl: {max: 5.0}
    general:
      max_drop: 0.05              # every task; or per task: {mmlu: 0.03}
    compare:
      max_newly_leaked: 0
      max_newly_lost: 5

Like coverage's fail-under, the gate alone decides whether the run passes: failing item tests
stay visible in the JUnit report, but do not fail a run whose gate passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UnlearnError

METRICS = ("unlearn_success", "retention_success", "avg_success", "unlearn_success_token",
           "retention_success_token", "unlearn_ppl", "retention_ppl", "unlearn_rouge_l",
           "retention_rouge_l")
BOUNDS = ("min", "max")
COMPARE_KEYS = ("max_newly_leaked", "max_newly_lost")
TOP_KEYS = ("methods", "domains", "general", "compare")


@dataclass(frozen=True)
class Check:
    """One threshold applied to one value."""

    what: str
    value: float | None
    bound: str
    limit: float

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.limit if self.bound == "min" else self.value <= self.limit

    def describe(self) -> str:
        sign = ">=" if self.bound == "min" else "<="
        shown = "missing" if self.value is None or math.isnan(self.value) else f"{self.value:.4g}"
        return f"{self.what} = {shown} (needs {sign} {self.limit:g})"


def load_gate(path: Path) -> dict[str, Any]:
    """Read and check a gate file; unknown keys and metrics are errors that list the valid ones."""
    import yaml

    try:
        gate = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise UnlearnError(f"{path}: not valid YAML: {error}") from None
    _mapping(gate, str(path))
    _known(gate, TOP_KEYS, str(path))
    methods = gate.get("methods")
    if methods is not None and not (isinstance(methods, list)
                                    and all(isinstance(m, str) for m in methods)):
        raise UnlearnError(f"{path}: 'methods' must be a list of method names")
    for domain, metrics in _mapping(gate.get("domains", {}), f"{path}: domains").items():
        where = f"{path}: domains.{domain}"
        for metric, bounds in _mapping(metrics, where).items():
            if metric not in METRICS:
                raise UnlearnError(f"{where}: unknown metric {metric!r}; the metrics are: "
                                   f"{', '.join(METRICS)}")
            for bound, limit in _mapping(bounds, f"{where}.{metric}").items():
                _known({bound: 0}, BOUNDS, f"{where}.{metric}")
                _number(limit, f"{where}.{metric}.{bound}")
    general = _mapping(gate.get("general", {}), f"{path}: general")
    _known(general, ("max_drop",), f"{path}: general")
    if "max_drop" in general:
        drop = general["max_drop"]
        if isinstance(drop, dict):
            for task, limit in drop.items():
                _number(limit, f"{path}: general.max_drop.{task}")
        else:
            _number(drop, f"{path}: general.max_drop")
    compare = _mapping(gate.get("compare", {}), f"{path}: compare")
    _known(compare, COMPARE_KEYS, f"{path}: compare")
    for key, limit in compare.items():
        _number(limit, f"{path}: compare.{key}")
    return gate


def evaluate_gate(gate: dict[str, Any], summary: dict[str, Any]) -> list[Check]:
    """Every check the gate asks for, against the run's summary."""
    methods = gate.get("methods")
    rows = [row for row in summary["rows"]
            if (row["method"] in methods if methods is not None else row["method"] != "none")]
    checks: list[Check] = []
    for domain, metrics in gate.get("domains", {}).items():
        domain_rows = [row for row in rows if row["domain"] == domain]
        if not domain_rows:
            checks.append(Check(f"{domain}: no item tests of this domain ran", None, "min", 1))
        for row in domain_rows:
            for metric, bounds in metrics.items():
                for bound, limit in bounds.items():
                    checks.append(Check(f"{row['method']}/{domain} {metric}", row.get(metric),
                                        bound, float(limit)))
    drop = gate.get("general", {}).get("max_drop")
    if drop is not None:
        for result in summary.get("general", []):
            if (result["method"] not in methods if methods is not None
                    else result["method"] == "none"):
                continue
            limit = drop.get(result["task"]) if isinstance(drop, dict) else drop
            if limit is not None:
                checks.append(Check(f"{result['method']}/{result['domain']} {result['task']} "
                                    "drop", result.get("drop"), "max", float(limit)))
    comparison = summary.get("comparison")
    for key, limit in gate.get("compare", {}).items():
        if comparison is None:
            checks.append(Check(f"{key}: the gate compares with a baseline, but the run has "
                                "no --unlearn-compare", None, "max", float(limit)))
            continue
        count = len(comparison["newly_leaked" if key == "max_newly_leaked" else "newly_lost"])
        checks.append(Check(key.removeprefix("max_"), float(count), "max", float(limit)))
    return checks


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnlearnError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _known(mapping: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = [key for key in mapping if key not in keys]
    if unknown:
        raise UnlearnError(f"{where}: unknown key {unknown[0]!r}; the keys are: {', '.join(keys)}")


def _number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnlearnError(f"{where}: expected a number, got {value!r}")
