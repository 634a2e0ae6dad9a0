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

``gate_file.py`` reads and checks the file; this module applies it. A gate must ask for
at least one check. Metrics and ``max_drop`` are fractions (0.8 = 80%),
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

from .gate_file import metric_and_statistic
from .report import row_name


@dataclass(frozen=True)
class Check:
    """One threshold applied to one value."""

    what: str
    value: float | None
    bound: str
    limit: float
    detail: str = ""  # what else the reader needs, e.g. the interval around the value
    # Structured: "metric" (a row's metric), "tests" (the tests behind a row), "general" (a
    # general-task drop), "compare" (the baseline), or "missing" (something the gate names
    # that did not run); whose it is ("memflex/privacy"); and what was measured.
    kind: str = "missing"
    subject: str = ""
    metric: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.limit if self.bound == "min" else self.value <= self.limit

    def to_dict(self) -> dict[str, Any]:
        """The check for the JSON report: its text and its parts."""
        return {
            "check": self.describe(),
            "passed": self.passed,
            "kind": self.kind,
            "subject": self.subject,
            "metric": self.metric,
            "value": self.value,
            "bound": self.bound,
            "limit": self.limit,
            "detail": self.detail,
        }

    def describe(self) -> str:
        sign = ">=" if self.bound == "min" else "<="
        shown = _shown(self.value)
        needs = f"needs {sign} {self.limit:g}"
        return f"{self.what} = {shown} ({f'{self.detail}; ' if self.detail else ''}{needs})"


def gate_verdict(gate: dict[str, Any], file: Path | str, summary: dict[str, Any]) -> dict[str, Any]:
    """The gate's verdict for the summary: passed, the gate file and every check."""
    checks = evaluate_gate(gate, summary)
    return {
        "passed": all(check.passed for check in checks),
        "file": str(file),
        "checks": [check.to_dict() for check in checks],
    }


def evaluate_gate(gate: dict[str, Any], summary: dict[str, Any]) -> list[Check]:
    """Every check the gate asks for, against the run's summary.

    What the gate names but the run did not test (a domain, a listed method, a general task, a
    baseline sharing no item with the run) is a failing check, never no check."""
    methods = gate.get("methods")
    rows = [row for row in summary["rows"] if _gated(row, methods)]
    checks: list[Check] = []
    for domain, metrics in gate.get("domains", {}).items():
        domain_rows = [row for row in rows if row["domain"] == domain]
        if not domain_rows:
            checks.append(
                Check(
                    f"{domain}: no item tests of this domain ran",
                    None,
                    "min",
                    1,
                    subject=domain,
                    metric="item tests",
                )
            )
        for row in domain_rows:
            checks += _test_integrity(row_name(row, "/"), row.get("tests", {}))
            for key, bounds in metrics.items():
                for bound, limit in bounds.items():
                    checks.append(_metric_check(row, key, bound, float(limit)))
    if methods is not None and gate.get("domains"):
        checks += _methods_not_run(methods, {row["method"] for row in rows}, "item")
    drop = gate.get("general", {}).get("max_drop")
    if drop is not None:
        results = [result for result in summary.get("general", []) if _gated(result, methods)]
        for counts in summary.get("general_tests", []):
            if _gated(counts, methods):
                checks += _test_integrity(
                    f"{counts['method']}/{counts['domain']}", {"general-task": counts}
                )
        checks += _drop_checks(drop, results)
        if methods is not None and results:
            checks += _methods_not_run(
                methods, {result["method"] for result in results}, "general-task"
            )
    checks += _compare_checks(gate.get("compare", {}), summary.get("comparison"))
    return checks


def _gated(record: dict[str, Any], methods: list[str] | None) -> bool:
    """Whether the gate reads a row or general-task result: the methods it lists, or by
    default every method that unlearns (not the vanilla model's ``none``)."""
    return record["method"] in methods if methods is not None else record.get("unlearns", True)


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
            checks.append(
                Check(
                    f"{what} that errored",
                    float(counts["errors"]),
                    "max",
                    0,
                    f"first: {counts['first_error']}",
                    "tests",
                    who,
                    f"{kind} tests that errored",
                )
            )
        if counts["skipped"]:
            checks.append(
                Check(
                    f"{what} skipped",
                    float(counts["skipped"]),
                    "max",
                    0,
                    f"no documented skip; first: {counts.get('first_skip')}",
                    "tests",
                    who,
                    f"{kind} tests skipped",
                )
            )
        if counts["reported"] < counts["collected"]:
            checks.append(
                Check(
                    f"{what} that reported an outcome",
                    float(counts["reported"]),
                    "min",
                    float(counts["collected"]),
                    f"{counts['collected']} were collected; the others "
                    "did not run (-x, --maxfail, an interrupted run or a crashed worker)",
                    "tests",
                    who,
                    f"{kind} tests that reported an outcome",
                )
            )
    return checks


def _methods_not_run(methods: list[str], ran: set[str], kind: str) -> list[Check]:
    """A failing check for each method the gate lists that ran no test of the kind it gates."""
    return [
        Check(
            f"method {method!r} listed in the gate's methods ran no {kind} test",
            None,
            "min",
            1,
            "check its name against --unlearn-method, or remove it from methods",
            subject=method,
            metric=f"{kind} tests",
        )
        for method in methods
        if method not in ran
    ]


def _drop_checks(drop: float | dict[str, float], results: list[dict[str, Any]]) -> list[Check]:
    """The general-task drops against ``max_drop``: one limit for every task, or per task."""
    if not results and not isinstance(drop, dict):
        return [
            Check(
                "general.max_drop: no general-task test ran",
                None,
                "max",
                float(drop),
                "run suites/general too, or remove general.max_drop from the gate",
                subject="general",
                metric="general-task tests",
            )
        ]
    checks = []
    for result in results:
        limit = drop.get(result["task"]) if isinstance(drop, dict) else drop
        if limit is not None:
            checks.append(
                Check(
                    f"{result['method']}/{result['domain']} {result['task']} drop",
                    result.get("drop"),
                    "max",
                    float(limit),
                    kind="general",
                    subject=f"{result['method']}/{result['domain']}",
                    metric=f"{result['task']} drop",
                )
            )
    if isinstance(drop, dict):
        ran = sorted({result["task"] for result in results})
        checks += [
            Check(
                f"general task {task!r} named in the gate ran no test",
                None,
                "max",
                float(limit),
                "run suites/general with it, or check its name against "
                f"the tasks that ran: {', '.join(ran) or 'none'}",
                subject=task,
                metric="general-task tests",
            )
            for task, limit in drop.items()
            if task not in ran
        ]
    return checks


def _compare_checks(compare: dict[str, int], comparison: dict[str, Any] | None) -> list[Check]:
    """How many items newly leaked or were newly lost since the baseline, against the limits."""
    checks = []
    if compare and comparison is not None and comparison["matched_items"] == 0:
        checks.append(
            Check(
                f"items matched with baseline {comparison['baseline']!r}",
                0.0,
                "min",
                1,
                "the baseline shares no item with this run (a different -k selection, data or "
                "methods?): compare with a baseline saved from the same tests, or save one with "
                "--unlearn-save=NAME",
                kind="compare",
                subject=comparison["baseline"],
                metric="matched tests",
            )
        )
    for key, limit in compare.items():
        if comparison is None:
            checks.append(
                Check(
                    f"{key}: the gate compares with a baseline, but the run has "
                    "no --unlearn-compare",
                    None,
                    "max",
                    float(limit),
                    subject="baseline",
                    metric=key.removeprefix("max_"),
                )
            )
            continue
        count = len(comparison["newly_leaked" if key == "max_newly_leaked" else "newly_lost"])
        checks.append(
            Check(
                key.removeprefix("max_"),
                float(count),
                "max",
                float(limit),
                kind="compare",
                subject=comparison["baseline"],
                metric=key.removeprefix("max_"),
            )
        )
    return checks


def _metric_check(row: dict[str, Any], key: str, bound: str, limit: float) -> Check:
    """A threshold on a summary row's metric: on its mean, or on an end of its interval."""
    metric, statistic = metric_and_statistic(key)
    subject = row_name(row, "/")
    parts = {"kind": "metric", "subject": subject, "metric": key}
    interval = (row.get("intervals") or {}).get(metric)
    if statistic == "mean":
        detail = "" if interval is None else _interval_text(interval)
        return Check(f"{subject} {key}", row.get(metric), bound, limit, detail, **parts)
    if interval is None:
        detail = (
            f"the run computed no interval of {metric}: run with --unlearn-seeds to get one, "
            "or gate its mean"
        )
        return Check(f"{subject} {key}", None, bound, limit, detail, **parts)
    detail = f"mean {_shown(row.get(metric))}, {_interval_text(interval)}"
    return Check(f"{subject} {key}", interval.get(statistic), bound, limit, detail, **parts)


def _interval_text(interval: dict[str, Any]) -> str:
    confidence = interval.get("confidence")
    seeds = interval.get("seeds")
    return (
        f"{'' if confidence is None else f'{confidence:.0%} '}interval "
        f"[{_shown(interval.get('lower'))}, {_shown(interval.get('upper'))}]"
        + ("" if seeds is None else f", {seeds} seed{'' if seeds == 1 else 's'}")
    )


def _shown(value: float | None) -> str:
    return "missing" if value is None or math.isnan(value) else f"{value:.4g}"
