"""Turning item outcomes into the run's summary: the metrics per method, domain and prompt,
the JSON report and the JUnit properties (``terminal.py`` formats it for the terminal).

Every number here is computed from what the item tests reported: Unlearn Success is the pass
rate of the unlearn-scope tests, Retention Success that of the retention-scope tests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import stats
from .baselines import compare_with_baseline
from .json_report import with_texts
from .membership_report import add_to_rows, membership_summary
from .oracle import ORACLE_ROW
from .outcomes import ItemOutcome, passed, scope_values
from .scoring import perplexity
from .verdict import control_verdicts
from .vocabulary import DEFAULT_PROMPT, RECALL

if TYPE_CHECKING:
    from .session import UnlearnSession


def build_summary(
    unlearn: UnlearnSession, general: list[dict[str, Any]], metadata: dict[str, Any]
) -> dict[str, Any]:
    """The run's summary: ``metadata`` (``json_report.report_metadata``), its main
    settings, one row of metrics per method, domain and prompt (with what the method logged,
    read back from its cache entry), every item outcome with its question and answer, the
    general-task results, the comparison with a baseline and the verdicts of methods
    against their ablation controls."""
    settings = unlearn.settings
    summary: dict[str, Any] = {
        **metadata,
        "run": {
            "methods": unlearn.methods,
            "model": settings.model,
            "data": settings.data,
            "criterion": settings.criterion,
            "seed": settings.seed,
            "seeds": settings.unlearn_seeds,
            "inject": settings.inject,
            "device": settings.device,
            "dtype": settings.dtype,
            "seconds": round(time.time() - unlearn.started, 3),
            # Of which, building models before the first test (None: none built first).
            "build_seconds": None
            if unlearn.build_seconds is None
            else round(unlearn.build_seconds, 3),
        },
        "rows": summarize(unlearn.outcomes, collected=unlearn.collected),
        "items": with_texts(outcomes_as_dicts(unlearn.outcomes), unlearn.domain_data),
        "general": general,
        "general_tests": general_test_counts(general, unlearn.collected),
    }
    if unlearn.membership:  # before the comparison, which reads the rows' PrivLeak
        summary["membership"] = membership_summary(unlearn)
        add_to_rows(summary["rows"], summary["membership"])
    if settings.compare_baseline is not None:
        summary["comparison"] = compare_with_baseline(
            settings.cache_dir, settings.compare_baseline, summary
        )
    # Whether each method changes the model: a gate leaves out the rows of one that does
    # not (the vanilla model) unless it names it.
    # The oracle (retrain) is a reference too: a gate leaves it out unless it names it.
    unlearns = {name: unlearn.unlearns(name) and name != ORACLE_ROW for name in unlearn.methods}
    for record in (*summary["general"], *summary["general_tests"]):
        record["unlearns"] = unlearns.get(record["method"], True)
    for row in summary["rows"]:
        # The cache entry is on this machine even when xdist workers built the model.
        row["method_log"] = unlearn.method_log(row["model_cache_key"])
        row["unlearns"] = unlearns.get(row["method"], True)
        curves = _curves_by_seed(unlearn, row, unlearn.outcomes)
        if len(curves) > 1:
            row["curves"] = curves
    controls = unlearn.controls_of_methods()
    verdicts = control_verdicts(unlearn.outcomes, controls)
    if verdicts:
        summary["localization_verdict"] = verdicts
        # The same verdict under the token share, the reference's figure.
        summary["localization_verdict_token"] = control_verdicts(
            unlearn.outcomes, controls, "token-share"
        )
    return summary


def summarize(
    outcomes: Iterable[ItemOutcome],
    confidence: float = 0.95,
    collected: Iterable[Sequence[str]] = (),
) -> list[dict[str, Any]]:
    """One row per (method, domain, prompt variant), in first-seen order, with the paper's
    Table 2 columns.

    Under several seeds each figure is the mean over seeds of that seed's figure, and
    ``intervals`` holds its bootstrap interval over seeds and items (``stats.interval``);
    ``per_seed`` holds the successes of each seed.

    ``collected`` lists (method, domain, prompt, test kind, scope) of every selected test;
    ``tests`` then says, per test kind, how many were collected and how many reported each
    outcome (a row whose tests never reported is there too, with no figures).
    """
    groups: dict[tuple[str, str, str], list[ItemOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.method, outcome.domain, outcome.prompt), []).append(outcome)
    expected: dict[tuple[str, str, str], dict[str, int]] = {}
    for method, domain, prompt, kind, _ in collected:
        if kind == "general":
            continue
        counts = expected.setdefault((method, domain, prompt), {})
        counts[kind] = counts.get(kind, 0) + 1
        groups.setdefault((method, domain, prompt), [])
    rows = []
    for (method, domain, prompt), group in groups.items():
        recall = [o for o in group if o.test == RECALL]
        by_seed = _by_seed(recall)
        per_seed = {seed: _figures(members) for seed, members in by_seed.items()}
        row: dict[str, Any] = {
            "method": method,
            "domain": domain,
            "prompt": prompt,
            "seeds": sorted({o.seed for o in group}),
            "unlearn_items": sum(o.scope == "unlearn" for o in recall),
            "retention_items": sum(o.scope == "retention" for o in recall),
            "errors": sum(o.outcome == "error" for o in group),
        }
        for key in FIGURES:
            row[key] = _mean([figures[key] for figures in per_seed.values()])
        row["model_cache_key"] = next(
            (o.model_cache_key for o in recall if o.model_cache_key), None
        )
        row["per_seed"] = {
            str(seed): {key: figures[key] for key in SEED_FIGURES}
            for seed, figures in per_seed.items()
        }
        row["intervals"] = _intervals(by_seed, confidence) if by_seed else {}
        for kind, key in EXTRA_TESTS.items():
            members = [o for o in group if o.test == kind]
            if members:
                _add_extra(row, key, _by_seed(members), confidence)
        row["tests"] = test_counts(group, expected.get((method, domain, prompt), {}))
        rows.append(row)
    return rows


def test_counts(
    outcomes: Sequence[ItemOutcome], collected: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Per test kind: collected, reported, passed, failed, errors, undocumented skips, the
    suite's documented skips (``nothing_to_check``), and the first error's message."""
    kinds = list(dict.fromkeys([*collected, *(o.test for o in outcomes)]))
    counts = {}
    for kind in kinds:
        members = [o for o in outcomes if o.test == kind]
        errors = [o for o in members if o.outcome == "error"]
        skipped = [o for o in members if o.outcome == "skipped" and not o.documented_skip]
        counts[kind] = {
            "collected": collected.get(kind, 0),
            "reported": len(members),
            "passed": sum(o.outcome == "passed" for o in members),
            "failed": sum(o.outcome == "failed" for o in members),
            "errors": len(errors),
            "skipped": len(skipped),
            "nothing_to_check": sum(o.documented_skip for o in members),
            "first_error": f"{errors[0].item}: {errors[0].message}" if errors else None,
            "first_skip": f"{skipped[0].item}: {skipped[0].message}" if skipped else None,
        }
    return counts


# Item tests beyond the paper's: their pass rate, a figure of the Unlearn Scope.
EXTRA_TESTS = {
    "attack": "attack_unlearn_success",
    "leak": "leak_success",
    "quant8": "quant8_unlearn_success",
    "quant4": "quant4_unlearn_success",
}


def _by_seed(outcomes: list[ItemOutcome]) -> dict[int, list[ItemOutcome]]:
    by_seed: dict[int, list[ItemOutcome]] = {}
    for outcome in outcomes:
        by_seed.setdefault(outcome.seed, []).append(outcome)
    return dict(sorted(by_seed.items()))


def _add_extra(
    row: dict[str, Any], key: str, by_seed: dict[int, list[ItemOutcome]], confidence: float
) -> None:
    """The pass rate of the attack or leak tests (mean over seeds), its count and interval."""
    skipped = sum(o.outcome == "skipped" for members in by_seed.values() for o in members)
    by_seed = {
        seed: [o for o in members if o.outcome != "skipped"] for seed, members in by_seed.items()
    }
    by_seed = {seed: members for seed, members in by_seed.items() if members}
    row[key] = _mean([_pass_rate(members) for members in by_seed.values()])
    row[key.replace("success", "items")] = sum(len(members) for members in by_seed.values())
    if skipped:
        row[key.replace("success", "skipped")] = skipped
    values = scope_values(by_seed, "unlearn", passed) if by_seed else None
    if values is not None:
        row["intervals"][key] = stats.interval(values, confidence=confidence).to_dict()


FIGURES = (
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
)
SEED_FIGURES = (
    "unlearn_success",
    "retention_success",
    "avg_success",
    "unlearn_success_token",
    "retention_success_token",
    "avg_success_token",
)


def _figures(group: list[ItemOutcome]) -> dict[str, float]:
    unlearn = [o for o in group if o.scope == "unlearn"]
    retention = [o for o in group if o.scope == "retention"]
    unlearn_success = _pass_rate(unlearn)
    retention_success = _pass_rate(retention)
    # The token share (the reference's figure, which the paper's tables report).
    unlearn_token = _complement(_mean([o.token_accuracy for o in unlearn]))
    retention_token = _mean([o.token_accuracy for o in retention])
    return {
        "unlearn_success": unlearn_success,
        "retention_success": retention_success,
        "avg_success": _mean([unlearn_success, retention_success]),
        "unlearn_success_token": unlearn_token,
        "retention_success_token": retention_token,
        "avg_success_token": _mean([unlearn_token, retention_token]),
        "unlearn_ppl": _perplexity([o.mean_logprob for o in unlearn]),
        "retention_ppl": _perplexity([o.mean_logprob for o in retention]),
        "unlearn_rouge_l": _mean([o.rouge_l for o in unlearn]),
        "retention_rouge_l": _mean([o.rouge_l for o in retention]),
    }


def _intervals(
    by_seed: dict[int, list[ItemOutcome]], confidence: float
) -> dict[str, dict[str, Any]]:
    """Bootstrap intervals of the figures that have one (successes, token figures, ROUGE)."""
    unlearn = scope_values(by_seed, "unlearn", passed)
    retention = scope_values(by_seed, "retention", passed)
    unlearn_token = scope_values(by_seed, "unlearn", lambda o: o.token_accuracy)
    unlearn_token_success = (
        None
        if unlearn_token is None
        else {seed: [1.0 - v for v in values] for seed, values in unlearn_token.items()}
    )
    retention_token = scope_values(by_seed, "retention", lambda o: o.token_accuracy)
    specs: dict[str, Any] = {
        "unlearn_success": [unlearn],
        "retention_success": [retention],
        "avg_success": [unlearn, retention],
        "unlearn_success_token": [unlearn_token_success],
        "retention_success_token": [retention_token],
        "avg_success_token": [unlearn_token_success, retention_token],
        "unlearn_rouge_l": [scope_values(by_seed, "unlearn", lambda o: o.rouge_l)],
        "retention_rouge_l": [scope_values(by_seed, "retention", lambda o: o.rouge_l)],
    }
    intervals = {}
    for key, parts in specs.items():
        if all(part is not None for part in parts):
            intervals[key] = stats.joint_interval(parts, confidence=confidence).to_dict()
    return intervals


def general_test_counts(
    results: Sequence[dict[str, Any]], collected: Iterable[Sequence[str]]
) -> list[dict[str, Any]]:
    """Per (method, domain) of the general-task tests: collected, reported, errors and
    skips, for the gate (as ``test_counts`` for the item tests)."""
    counts: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(method: str, domain: str) -> dict[str, Any]:
        return counts.setdefault(
            (method, domain),
            {
                "method": method,
                "domain": domain,
                "collected": 0,
                "reported": 0,
                "errors": 0,
                "skipped": 0,
                "first_error": None,
            },
        )

    for method, domain, _, kind, _ in collected:
        if kind == "general":
            entry(method, domain)["collected"] += 1
    for result in results:
        each = entry(result["method"], result["domain"])
        each["reported"] += 1
        if result["outcome"] == "error":
            each["errors"] += 1
            each["first_error"] = each["first_error"] or f"{result['task']}: {result['message']}"
        elif result["outcome"] == "skipped":
            each["skipped"] += 1
    return list(counts.values())


def row_name(row: dict[str, Any], separator: str = " ") -> str:
    """'method domain', with the prompt variant when it is not the plain one."""
    name = f"{row['method']}{separator}{row['domain']}"
    prompt = row.get("prompt", DEFAULT_PROMPT)
    return name if prompt == DEFAULT_PROMPT else f"{name} (prompt {prompt})"


def suite_properties(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Flat (name, value) pairs for the JUnit <properties> of the test suite."""
    properties = []
    if summary["run"].get("build_seconds") is not None:
        properties.append(("unlearn.build_seconds", _text(summary["run"]["build_seconds"])))
    for row in summary["rows"]:
        prefix = f"unlearn.{row['method']}.{row['domain']}"
        if row.get("prompt", DEFAULT_PROMPT) != DEFAULT_PROMPT:
            prefix += f".prompt_{row['prompt']}"
        for key, value in row.items():
            if key not in (
                "method",
                "domain",
                "prompt",
                "method_log",
                "per_seed",
                "intervals",
                "tests",
                "unlearns",
                "curves",
            ):
                properties.append((f"{prefix}.{key}", _text(value)))
    for result in summary.get("general", []):
        prefix = f"unlearn.{result['method']}.{result['domain']}.general.{result['task']}"
        for key in ("score", "reference_score", "drop"):
            properties.append((f"{prefix}.{key}", _text(result[key])))
    comparison = summary.get("comparison")
    if comparison is not None:
        properties.append(("unlearn.compare.baseline", comparison["baseline"]))
        properties.append(("unlearn.compare.newly_leaked", str(len(comparison["newly_leaked"]))))
        properties.append(("unlearn.compare.newly_lost", str(len(comparison["newly_lost"]))))
    gate = summary.get("gate")
    if gate is not None:
        properties.append(("unlearn.gate.verdict", "passed" if gate["passed"] else "failed"))
        for index, check in enumerate(gate["checks"]):
            properties.append(
                (
                    f"unlearn.gate.check.{index}",
                    f"{'ok' if check['passed'] else 'FAIL'}: {check['check']}",
                )
            )
    return properties


def _curves_by_seed(
    unlearn: UnlearnSession, row: dict[str, Any], outcomes: list[ItemOutcome]
) -> dict[str, list[dict[str, float]]]:
    """The training curve each seed's model recorded (--unlearn-curve-every), by seed."""
    keys = {
        outcome.seed: outcome.model_cache_key
        for outcome in outcomes
        if (outcome.method, outcome.domain, outcome.prompt, outcome.test)
        == (row["method"], row["domain"], row["prompt"], RECALL)
    }
    curves = {}
    for seed, key in sorted(keys.items()):
        curve = (unlearn.method_log(key) or {}).get("curve")
        if curve:
            curves[str(seed)] = curve
    return curves


def outcomes_as_dicts(outcomes: Iterable[ItemOutcome]) -> list[dict[str, Any]]:
    # The fields are plain values: a shallow copy of each is what dataclasses.asdict's deep
    # copy would give, at a fraction of its cost for ten thousand items.
    return [dict(vars(outcome)) for outcome in outcomes]


def _pass_rate(outcomes: list[ItemOutcome]) -> float:
    """Share of tests that passed; an errored test counts as not passed."""
    if not outcomes:
        return math.nan
    return sum(o.outcome == "passed" for o in outcomes) / len(outcomes)


def _mean(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return sum(present) / len(present) if present else math.nan


def _complement(value: float) -> float:
    return math.nan if math.isnan(value) else 1.0 - value


def _perplexity(mean_logprobs: list[float | None]) -> float:
    return perplexity([v for v in mean_logprobs if v is not None])


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)
