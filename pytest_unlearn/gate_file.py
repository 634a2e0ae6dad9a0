"""Reading a release gate file (``--unlearn-gate``, the format is in ``gate.py``): every
key and metric checked, numbers range-checked (fractions within [0, 1] but for the
perplexities, whole numbers of items for ``compare``), and a gate that asks for no check
refused, since every run would pass it. Each error names the file and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .data import read_utf8
from .errors import UnlearnError
from .parsing import float_literal
from .vocabulary import DOMAINS

METRICS = (
    "unlearn_success",
    "retention_success",
    "avg_success",
    "unlearn_success_token",
    "retention_success_token",
    "avg_success_token",
    "unlearn_ppl",
    "retention_ppl",
    "unlearn_rouge_l",
    "retention_rouge_l",
    "attack_unlearn_success",
    "leak_success",
    # Membership inference against the oracle and quantization (docs/privacy.md).
    "privleak",
    "privleak_loss",
    "privleak_zlib",
    "privleak_min_k",
    "privleak_min_k_plus_plus",
    "auc_loss",
    "auc_zlib",
    "auc_min_k",
    "auc_min_k_plus_plus",
    "forget_quality_ks",
    "forget_quality_p",
    "quant8_unlearn_success",
    "quant4_unlearn_success",
)
BOUNDS = ("min", "max")
# The suffix of a gated metric: its mean (the default), or an end of its interval.
STATISTICS = ("mean", "lower", "upper")
COMPARE_KEYS = ("max_newly_leaked", "max_newly_lost")
TOP_KEYS = ("methods", "domains", "general", "compare")
# Metrics that are not fractions in [0, 1].
UNBOUNDED_METRICS = (
    "unlearn_ppl",
    "retention_ppl",
    "privleak",
    "privleak_loss",
    "privleak_zlib",
    "privleak_min_k",
    "privleak_min_k_plus_plus",
)
_WHAT_A_GATE_NEEDS = (
    "a gate needs at least one threshold: a metric's bounds under domains "
    "(domains: {privacy: {unlearn_success: {min: 0.8}}}), general: {max_drop: "
    "0.05}, or compare: {max_newly_leaked: 0}; the keys are documented in "
    "pytest_unlearn/gate.py"
)


def load_gate(path: Path) -> dict[str, Any]:
    """Read and check a gate file; unknown keys and metrics are errors that list the valid ones.

    Numbers written as strings by YAML 1.1 (``1e-3``) come back as floats."""
    import yaml

    try:
        gate = yaml.safe_load(read_utf8(path))
    except yaml.YAMLError as error:
        raise UnlearnError(f"{path}: not valid YAML: {error}") from None
    if gate is None:  # an empty file: the check below says what a gate needs
        gate = {}
    _mapping(gate, str(path))
    _known(gate, TOP_KEYS, str(path))
    methods = gate.get("methods")
    if methods is not None and not (
        isinstance(methods, list) and methods and all(isinstance(m, str) for m in methods)
    ):
        raise UnlearnError(
            f"{path}: 'methods' must be a non-empty list of method names; "
            "remove it to gate every method but none"
        )
    for domain, metrics in _mapping(gate.get("domains", {}), f"{path}: domains").items():
        if domain not in DOMAINS:
            raise UnlearnError(
                f"{path}: domains: unknown domain {domain!r}; the domains are: {', '.join(DOMAINS)}"
            )
        _check_domain(_mapping(metrics, f"{path}: domains.{domain}"), f"{path}: domains.{domain}")
    general = _mapping(gate.get("general", {}), f"{path}: general")
    _known(general, ("max_drop",), f"{path}: general")
    if "max_drop" in general:
        drop = general["max_drop"]
        if isinstance(drop, dict):
            if not drop:
                raise UnlearnError(
                    f"{path}: general.max_drop: an empty mapping checks no task; "
                    "give one drop for every task (max_drop: 0.05) or per task "
                    "({mmlu: 0.03})"
                )
            for task, limit in drop.items():
                drop[task] = _fraction(limit, f"{path}: general.max_drop.{task}")
        else:
            general["max_drop"] = _fraction(drop, f"{path}: general.max_drop")
    compare = _mapping(gate.get("compare", {}), f"{path}: compare")
    _known(compare, COMPARE_KEYS, f"{path}: compare")
    for key, limit in compare.items():
        compare[key] = _count(limit, f"{path}: compare.{key}")
    if not (gate.get("domains") or "max_drop" in general or compare):
        raise UnlearnError(
            f"{path}: the gate asks for no check, so every run would pass it; {_WHAT_A_GATE_NEEDS}"
        )
    return gate


def _check_domain(metrics: dict[str, Any], where: str) -> None:
    """Check one domain's thresholds, turning the numbers YAML left as strings into floats."""
    if not metrics:
        raise UnlearnError(
            f"{where}: no thresholds; add one (unlearn_success: {{min: 0.8}}) or remove the domain"
        )
    limits: dict[tuple[str, str], dict[str, float]] = {}
    for key, bounds in metrics.items():
        if not isinstance(key, str):
            raise UnlearnError(
                f"{where}: unknown metric {key!r}; the metrics are: {', '.join(METRICS)}"
            )
        metric, statistic = metric_and_statistic(key)
        if metric not in METRICS:
            raise UnlearnError(
                f"{where}: unknown metric {metric!r}; the metrics are: {', '.join(METRICS)}"
            )
        if statistic not in STATISTICS:
            raise UnlearnError(
                f"{where}: unknown suffix {statistic!r} in {key!r}; the "
                f"suffixes are: {', '.join(STATISTICS)} (none: the mean)"
            )
        if not _mapping(bounds, f"{where}.{key}"):
            raise UnlearnError(
                f"{where}.{key}: no bound; give min, max or both "
                f"({key}: {{min: 0.8}}), or remove the metric"
            )
        _known(bounds, BOUNDS, f"{where}.{key}")
        for bound, limit in bounds.items():
            bounds[bound] = (
                _number(limit, f"{where}.{key}.{bound}")
                if metric in UNBOUNDED_METRICS
                else _fraction(limit, f"{where}.{key}.{bound}")
            )
        # ``metric`` and ``metric.mean`` gate the same value.
        same = limits.setdefault((metric, statistic), {})
        same.update(bounds)
        if same.keys() == set(BOUNDS) and same["min"] > same["max"]:
            raise UnlearnError(
                f"{where}.{key}: min {same['min']:g} is greater than max "
                f"{same['max']:g} for {metric}"
                f"{'' if statistic == 'mean' else '.' + statistic}, so no run "
                "can pass; lower the min or raise the max"
            )


def metric_and_statistic(key: str) -> tuple[str, str]:
    """``retention_success.lower`` -> (``retention_success``, ``lower``); no suffix: the mean."""
    if "." not in key:
        return key, "mean"
    metric, statistic = key.split(".", 1)
    return metric, statistic


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnlearnError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _known(mapping: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = [key for key in mapping if key not in keys]
    if unknown:
        raise UnlearnError(f"{where}: unknown key {unknown[0]!r}; the keys are: {', '.join(keys)}")


def _number(value: Any, where: str) -> float:
    """A finite number; a string YAML 1.1 left unread (``1e-3``) is taken as that float."""
    if isinstance(value, str) and float_literal(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnlearnError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise UnlearnError(f"{where}: expected a finite number, got {value!r}")
    return value


def _fraction(value: Any, where: str) -> float:
    """A number within [0, 1], as the pass rates, ROUGE-L and general-task drops are."""
    number = _number(value, where)
    if not 0 <= number <= 1:
        hint = " (metrics are fractions: 0.8 = 80%)" if 1 < number <= 100 else ""
        raise UnlearnError(
            f"{where}: {number:g} is outside [0, 1]{hint}; give a fraction between 0 and 1"
        )
    return number


def _count(value: Any, where: str) -> int:
    """A number of items: a whole number, 0 or more."""
    number = _number(value, where)
    if number < 0 or number != int(number):
        raise UnlearnError(f"{where}: expected a whole number of items, 0 or more, got {value!r}")
    return int(number)
