"""The release gate: thresholds on the run's metrics that decide its exit status.

A gate file (YAML) names, per domain, minimums and maximums of the summary metrics; for the
general tasks, the largest allowed drop from the vanilla (or reference) score; and, with a
baseline comparison, how many items may newly leak or be newly lost::

    methods: [memflex]            # optional: the rows it applies to (default: all but none)
    domains:
      privacy:
        unlearn_success: {min: 0.80}
        retention_success.lower: {min: 0.75}
        retention_ppl.upper: {max: 5.0}
    general:
      max_drop: 0.05              # every task; or per task: {mmlu: 0.03}
    compare:
      max_newly_leaked: 0
      max_newly_lost: 5

A metric alone (or ``metric.mean``) gates its mean; ``metric.lower`` and ``metric.upper``
gate the ends of its interval over seeds and items (`pytest_unlearn.stats`, with
``--unlearn-seeds``). ``retention_success.lower: {min: 0.75}`` asks that retention be high
even at the low end of what the seeds and items leave plausible, not just on average; a
row without that interval fails the check.

Like coverage's fail-under, the gate alone decides whether the run passes: failing item tests
stay visible in the JUnit report, but do not fail a run whose gate passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UnlearnError
from .report import row_name

METRICS = ("unlearn_success", "retention_success", "avg_success", "unlearn_success_token",
           "retention_success_token", "unlearn_ppl", "retention_ppl", "unlearn_rouge_l",
           "retention_rouge_l", "attack_unlearn_success", "leak_success")
BOUNDS = ("min", "max")
# The suffix of a gated metric: its mean (the default), or an end of its interval.
STATISTICS = ("mean", "lower", "upper")
COMPARE_KEYS = ("max_newly_leaked", "max_newly_lost")
TOP_KEYS = ("methods", "domains", "general", "compare")


@dataclass(frozen=True)
class Check:
    """One threshold applied to one value."""

    what: str
    value: float | None
    bound: str
    limit: float
    detail: str = ""  # what else the reader needs, e.g. the interval around the value

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.limit if self.bound == "min" else self.value <= self.limit

    def describe(self) -> str:
        sign = ">=" if self.bound == "min" else "<="
        shown = _shown(self.value)
        needs = f"needs {sign} {self.limit:g}"
        return f"{self.what} = {shown} ({f'{self.detail}; ' if self.detail else ''}{needs})"


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
        for key, bounds in _mapping(metrics, where).items():
            metric, statistic = _metric_and_statistic(key)
            if metric not in METRICS:
                raise UnlearnError(f"{where}: unknown metric {metric!r}; the metrics are: "
                                   f"{', '.join(METRICS)}")
            if statistic not in STATISTICS:
                raise UnlearnError(f"{where}: unknown suffix {statistic!r} in {key!r}; the "
                                   f"suffixes are: {', '.join(STATISTICS)} (none: the mean)")
            for bound, limit in _mapping(bounds, f"{where}.{key}").items():
                _known({bound: 0}, BOUNDS, f"{where}.{key}")
                _number(limit, f"{where}.{key}.{bound}")
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
            for key, bounds in metrics.items():
                for bound, limit in bounds.items():
                    checks.append(_metric_check(row, key, bound, float(limit)))
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


def _metric_check(row: dict[str, Any], key: str, bound: str, limit: float) -> Check:
    """A threshold on a summary row's metric: on its mean, or on an end of its interval."""
    metric, statistic = _metric_and_statistic(key)
    what = f"{row_name(row, '/')} {key}"
    interval = (row.get("intervals") or {}).get(metric)
    if statistic == "mean":
        return Check(what, row.get(metric), bound, limit,
                     "" if interval is None else _interval_text(interval))
    if interval is None:
        return Check(what, None, bound, limit,
                     f"the run computed no interval of {metric}: run with --unlearn-seeds to "
                     "get one, or gate its mean")
    return Check(what, interval.get(statistic), bound, limit,
                 f"mean {_shown(row.get(metric))}, {_interval_text(interval)}")


def _metric_and_statistic(key: str) -> tuple[str, str]:
    """``retention_success.lower`` -> (``retention_success``, ``lower``); no suffix: the mean."""
    if "." not in key:
        return key, "mean"
    metric, statistic = key.split(".", 1)
    return metric, statistic


def _interval_text(interval: dict[str, Any]) -> str:
    confidence = interval.get("confidence")
    seeds = interval.get("seeds")
    return (f"{'' if confidence is None else f'{confidence:.0%} '}interval "
            f"[{_shown(interval.get('lower'))}, {_shown(interval.get('upper'))}]"
            + ("" if seeds is None else f", {seeds} seed{'' if seeds == 1 else 's'}"))


def _shown(value: float | None) -> str:
    return "missing" if value is None or math.isnan(value) else f"{value:.4g}"


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
