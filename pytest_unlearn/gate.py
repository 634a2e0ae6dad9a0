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

A gate must ask for at least one check. Metrics and ``max_drop`` are fractions (0.8 = 80%),
within [0, 1], except the perplexities; ``compare`` limits are whole numbers of items. A
domain, a method or a general task the gate names that ran no test fails it.

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

from .data import read_utf8
from .errors import UnlearnError
from .method import float_literal
from .report import row_name
from .settings import DOMAINS

METRICS = ("unlearn_success", "retention_success", "avg_success", "unlearn_success_token",
           "retention_success_token", "unlearn_ppl", "retention_ppl", "unlearn_rouge_l",
           "retention_rouge_l", "attack_unlearn_success", "leak_success")
BOUNDS = ("min", "max")
# The suffix of a gated metric: its mean (the default), or an end of its interval.
STATISTICS = ("mean", "lower", "upper")
COMPARE_KEYS = ("max_newly_leaked", "max_newly_lost")
TOP_KEYS = ("methods", "domains", "general", "compare")
# Metrics that are not fractions in [0, 1].
UNBOUNDED_METRICS = ("unlearn_ppl", "retention_ppl")
_WHAT_A_GATE_NEEDS = ("a gate needs at least one threshold: a metric's bounds under domains "
                      "(domains: {privacy: {unlearn_success: {min: 0.8}}}), general: {max_drop: "
                      "0.05}, or compare: {max_newly_leaked: 0}; the keys are documented in "
                      "pytest_unlearn/gate.py")


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
    if methods is not None and not (isinstance(methods, list) and methods
                                    and all(isinstance(m, str) for m in methods)):
        raise UnlearnError(f"{path}: 'methods' must be a non-empty list of method names; "
                           "remove it to gate every method but none")
    for domain, metrics in _mapping(gate.get("domains", {}), f"{path}: domains").items():
        if domain not in DOMAINS:
            raise UnlearnError(f"{path}: domains: unknown domain {domain!r}; the domains are: "
                               f"{', '.join(DOMAINS)}")
        _check_domain(_mapping(metrics, f"{path}: domains.{domain}"),
                      f"{path}: domains.{domain}")
    general = _mapping(gate.get("general", {}), f"{path}: general")
    _known(general, ("max_drop",), f"{path}: general")
    if "max_drop" in general:
        drop = general["max_drop"]
        if isinstance(drop, dict):
            if not drop:
                raise UnlearnError(f"{path}: general.max_drop: an empty mapping checks no task; "
                                   "give one drop for every task (max_drop: 0.05) or per task "
                                   "({mmlu: 0.03})")
            for task, limit in drop.items():
                drop[task] = _fraction(limit, f"{path}: general.max_drop.{task}")
        else:
            general["max_drop"] = _fraction(drop, f"{path}: general.max_drop")
    compare = _mapping(gate.get("compare", {}), f"{path}: compare")
    _known(compare, COMPARE_KEYS, f"{path}: compare")
    for key, limit in compare.items():
        compare[key] = _count(limit, f"{path}: compare.{key}")
    if not (gate.get("domains") or "max_drop" in general or compare):
        raise UnlearnError(f"{path}: the gate asks for no check, so every run would pass it; "
                           f"{_WHAT_A_GATE_NEEDS}")
    return gate


def _check_domain(metrics: dict[str, Any], where: str) -> None:
    """Check one domain's thresholds, turning the numbers YAML left as strings into floats."""
    if not metrics:
        raise UnlearnError(f"{where}: no thresholds; add one (unlearn_success: {{min: 0.8}}) "
                           "or remove the domain")
    limits: dict[tuple[str, str], dict[str, float]] = {}
    for key, bounds in metrics.items():
        if not isinstance(key, str):
            raise UnlearnError(f"{where}: unknown metric {key!r}; the metrics are: "
                               f"{', '.join(METRICS)}")
        metric, statistic = _metric_and_statistic(key)
        if metric not in METRICS:
            raise UnlearnError(f"{where}: unknown metric {metric!r}; the metrics are: "
                               f"{', '.join(METRICS)}")
        if statistic not in STATISTICS:
            raise UnlearnError(f"{where}: unknown suffix {statistic!r} in {key!r}; the "
                               f"suffixes are: {', '.join(STATISTICS)} (none: the mean)")
        if not _mapping(bounds, f"{where}.{key}"):
            raise UnlearnError(f"{where}.{key}: no bound; give min, max or both "
                               f"({key}: {{min: 0.8}}), or remove the metric")
        _known(bounds, BOUNDS, f"{where}.{key}")
        for bound, limit in bounds.items():
            bounds[bound] = (_number(limit, f"{where}.{key}.{bound}")
                             if metric in UNBOUNDED_METRICS
                             else _fraction(limit, f"{where}.{key}.{bound}"))
        # ``metric`` and ``metric.mean`` gate the same value.
        same = limits.setdefault((metric, statistic), {})
        same.update(bounds)
        if same.keys() == set(BOUNDS) and same["min"] > same["max"]:
            raise UnlearnError(f"{where}.{key}: min {same['min']:g} is greater than max "
                               f"{same['max']:g} for {metric}"
                               f"{'' if statistic == 'mean' else '.' + statistic}, so no run "
                               "can pass; lower the min or raise the max")


def evaluate_gate(gate: dict[str, Any], summary: dict[str, Any]) -> list[Check]:
    """Every check the gate asks for, against the run's summary.

    What the gate names but the run did not test (a domain, a listed method, a general task, a
    baseline sharing no item with the run) is a failing check, never no check."""
    methods = gate.get("methods")
    rows = [row for row in summary["rows"]
            if (row["method"] in methods if methods is not None else row["method"] != "none")]
    checks: list[Check] = []
    for domain, metrics in gate.get("domains", {}).items():
        domain_rows = [row for row in rows if row["domain"] == domain]
        if not domain_rows:
            checks.append(Check(f"{domain}: no item tests of this domain ran", None, "min", 1))
        for row in domain_rows:
            checks += _test_integrity(row_name(row, "/"), row.get("tests", {}))
            for key, bounds in metrics.items():
                for bound, limit in bounds.items():
                    checks.append(_metric_check(row, key, bound, float(limit)))
    if methods is not None and gate.get("domains"):
        checks += _methods_not_run(methods, {row["method"] for row in rows}, "item")
    drop = gate.get("general", {}).get("max_drop")
    if drop is not None:
        results = [result for result in summary.get("general", [])
                   if (result["method"] in methods if methods is not None
                       else result["method"] != "none")]
        for counts in summary.get("general_tests", []):
            if methods is None and counts["method"] == "none" or \
                    methods is not None and counts["method"] not in methods:
                continue
            checks += _test_integrity(f"{counts['method']}/{counts['domain']}",
                                      {"general-task": counts})
        checks += _drop_checks(drop, results)
        if methods is not None and results:
            checks += _methods_not_run(methods, {result["method"] for result in results},
                                       "general-task")
    checks += _compare_checks(gate.get("compare", {}), summary.get("comparison"))
    return checks


def _test_integrity(who: str, tests: dict[str, dict[str, Any]]) -> list[Check]:
    """A gate reads a row's figures only if every test behind them reported a real outcome:
    one failing check per test kind where tests errored (an errored test counts as 0% and
    would satisfy a maximum), were skipped other than by the suite's documented skips, or
    never reported (-x, --maxfail, a crash), so the figures stand on fewer items than the
    suite collected."""
    checks = []
    for kind, counts in tests.items():
        what = f"{who} {kind} tests"
        if counts["errors"]:
            checks.append(Check(f"{what} that errored", float(counts["errors"]), "max", 0,
                                f"first: {counts['first_error']}"))
        if counts["skipped"]:
            checks.append(Check(f"{what} skipped", float(counts["skipped"]), "max", 0,
                                f"no documented skip; first: {counts.get('first_skip')}"))
        if counts["reported"] < counts["collected"]:
            checks.append(Check(
                f"{what} that reported an outcome", float(counts["reported"]), "min",
                float(counts["collected"]), f"{counts['collected']} were collected; the others "
                "did not run (-x, --maxfail, an interrupted run or a crashed worker)"))
    return checks


def _methods_not_run(methods: list[str], ran: set[str], kind: str) -> list[Check]:
    """A failing check for each method the gate lists that ran no test of the kind it gates."""
    return [Check(f"method {method!r} listed in the gate's methods ran no {kind} test", None,
                  "min", 1, "check its name against --unlearn-method, or remove it from methods")
            for method in methods if method not in ran]


def _drop_checks(drop: float | dict[str, float], results: list[dict[str, Any]]) -> list[Check]:
    """The general-task drops against ``max_drop``: one limit for every task, or per task."""
    if not results and not isinstance(drop, dict):
        return [Check("general.max_drop: no general-task test ran", None, "max", float(drop),
                      "run suites/general too, or remove general.max_drop from the gate")]
    checks = []
    for result in results:
        limit = drop.get(result["task"]) if isinstance(drop, dict) else drop
        if limit is not None:
            checks.append(Check(f"{result['method']}/{result['domain']} {result['task']} drop",
                                result.get("drop"), "max", float(limit)))
    if isinstance(drop, dict):
        ran = sorted({result["task"] for result in results})
        checks += [Check(f"general task {task!r} named in the gate ran no test", None, "max",
                         float(limit), "run suites/general with it, or check its name against "
                         f"the tasks that ran: {', '.join(ran) or 'none'}")
                   for task, limit in drop.items() if task not in ran]
    return checks


def _compare_checks(compare: dict[str, int], comparison: dict[str, Any] | None) -> list[Check]:
    """How many items newly leaked or were newly lost since the baseline, against the limits."""
    checks = []
    if compare and comparison is not None and comparison["matched_items"] == 0:
        checks.append(Check(
            f"items matched with baseline {comparison['baseline']!r}", 0.0, "min", 1,
            "the baseline shares no item with this run (a different -k selection, data or "
            "methods?): compare with a baseline saved from the same tests, or save one with "
            "--unlearn-save=NAME"))
    for key, limit in compare.items():
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
        raise UnlearnError(f"{where}: {number:g} is outside [0, 1]{hint}; give a fraction "
                           "between 0 and 1")
    return number


def _count(value: Any, where: str) -> int:
    """A number of items: a whole number, 0 or more."""
    number = _number(value, where)
    if number < 0 or number != int(number):
        raise UnlearnError(f"{where}: expected a whole number of items, 0 or more, got "
                           f"{value!r}")
    return int(number)
