"""An item test's outcome as the report counts it, read from the properties its report
carries (under xdist they travel from the workers with it)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .vocabulary import DEFAULT_PROMPT, LEAK, RECALL

if TYPE_CHECKING:
    import pytest

    from .leaks import Sensitive
    from .scoring import ItemScore


@dataclass(frozen=True)
class ItemOutcome:
    method: str
    domain: str
    scope: str
    item: str
    outcome: str  # "passed" | "failed" | "error" | "skipped"
    token_accuracy: float | None
    mean_logprob: float | None
    model_cache_key: str | None
    rouge_l: float | None = None
    seed: int = 0
    prompt: str = DEFAULT_PROMPT
    test: str = RECALL  # "recall" (teacher-forced), "attack" (after relearning), "leak"
    # Why it errored or was skipped: the first line of pytest's report.
    message: str | None = None
    # A skip the suite documents (a leak test of an answer with nothing to leak); any other
    # skip fails a gate that reads the test.
    documented_skip: bool = False
    # What the model wrote: the greedy generation ROUGE-L scored (recall tests, unless
    # --unlearn-max-new-tokens=0), or the greedy then the sampled generations of a leak test.
    generations: tuple[str, ...] = ()
    leaked: tuple[str, ...] = ()  # the sensitive strings a leak test found in them

    @classmethod
    def from_properties(
        cls,
        properties: dict[str, Any],
        outcome: str,
        message: str | None = None,
        documented_skip: bool = False,
    ) -> ItemOutcome:
        token_accuracy = properties.get("token_accuracy")
        mean_logprob = properties.get("mean_logprob")
        return cls(
            method=str(properties["unlearn_method"]),
            domain=str(properties["unlearn_domain"]),
            scope=str(properties["unlearn_scope"]),
            item=str(properties["unlearn_item"]),
            outcome=outcome,
            token_accuracy=None if token_accuracy is None else float(token_accuracy),
            mean_logprob=None if mean_logprob is None else float(mean_logprob),
            model_cache_key=properties.get("model_cache_key"),
            rouge_l=None if properties.get("rouge_l") is None else float(properties["rouge_l"]),
            seed=int(properties.get("unlearn_seed", 0)),
            prompt=str(properties.get("unlearn_prompt", DEFAULT_PROMPT)),
            test=str(properties.get("unlearn_test", RECALL)),
            message=message,
            documented_skip=documented_skip,
            generations=_texts(properties, "generations", "generation"),
            leaked=_texts(properties, "leaked"),
        )


def item_labels(
    method: str, domain: str, scope: str, seed: int, prompt: str, test: str, item: str
) -> list[tuple[str, Any]]:
    """The properties that name an item test (in its report and the JUnit XML)."""
    return [
        ("unlearn_method", method),
        ("unlearn_domain", domain),
        ("unlearn_scope", scope),
        ("unlearn_seed", seed),
        ("unlearn_prompt", prompt),
        ("unlearn_test", test),
        ("unlearn_item", item),
    ]


def score_properties(score: ItemScore, threshold: float, key: str) -> list[tuple[str, Any]]:
    """What an item test records of the model's score on its item."""
    properties: list[tuple[str, Any]] = [
        ("token_accuracy", round(score.token_accuracy, 6)),
        ("recalled", score.recalled(threshold)),
        ("mean_logprob", round(score.mean_logprob, 6)),
        ("answer_tokens", score.answer_tokens),
        ("model_cache_key", key),
    ]
    if score.rouge_l is not None:
        properties += [("rouge_l", round(score.rouge_l, 6)), ("generation", score.generation)]
    return properties


def leak_properties(
    strings: list[Sensitive], found: list[tuple[int, Sensitive]], texts: list[str], key: str
) -> list[tuple[str, Any]]:
    """What a leak test records: how many sensitive strings its answer has, what the
    generations were and which strings they wrote (JSON lists: JUnit writes a property's
    value as a string)."""
    leaked = list(dict.fromkeys(leak.text for _, leak in found))
    return [
        ("sensitive_strings", len(strings)),
        ("leaks", len(found)),
        ("model_cache_key", key),
        ("generations", json.dumps(texts)),
        ("leaked", json.dumps(leaked)),
    ]


def _texts(properties: dict[str, Any], name: str, single: str | None = None) -> tuple[str, ...]:
    """A list of texts a fixture recorded as a JSON property (or one text as ``single``)."""
    if name in properties:
        return tuple(str(text) for text in json.loads(properties[name]))
    if single is not None and properties.get(single) is not None:
        return (str(properties[single]),)
    return ()


# The user property of an item test whose failure --unlearn-findings=xfail reported as an
# expected failure: its outcome, for the metrics, is still a failure.
FINDING = "unlearn_finding"


def record_as_expected_failure(report: pytest.TestReport, message: str) -> None:
    """Report a failed item test as an expected failure carrying its finding (what JUnit
    consumers show as skipped, not failed)."""
    report.outcome = "skipped"
    report.wasxfail = message
    report.longrepr = None
    report.user_properties.append((FINDING, True))


def outcome_of(report: pytest.TestReport) -> str | None:
    """The outcome a test's report decides: the call's, or an error or skip in setup, or an
    error in teardown (after a call that passed or failed); None for the other reports. An
    item test that --unlearn-findings=xfail reported as an expected failure failed."""
    if report.when == "call":
        if report.skipped and (FINDING, True) in report.user_properties:
            return "failed"
        return report.outcome
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "skipped"
    return None


def message_of(report: pytest.TestReport) -> str | None:
    """The first line of why a test errored or was skipped, for the reports and the gate."""
    if report.passed or (report.failed and report.when == "call") or hasattr(report, "wasxfail"):
        return None
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")[:300]
    text = report.longreprtext.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    reason = next(
        (line for line in reversed(lines) if line.startswith(("E ", "Failed: "))),
        lines[-1] if lines else "",
    )
    return reason.removeprefix("E").strip().removeprefix("Failed: ")[:300] or None


def is_documented_skip(outcome: str, properties: dict[str, Any]) -> bool:
    """A leak test of an answer without a sensitive string skips, saying so: a skip the
    suite documents, left out of the pass rates and counted apart. Any other skip is one a
    gate refuses."""
    return (
        outcome == "skipped"
        and properties.get("unlearn_test") == LEAK
        and properties.get("sensitive_strings") == 0
    )


def passed(outcome: ItemOutcome) -> float:
    """1.0 for a test that passed (an item forgotten, or still recalled), else 0.0."""
    return 1.0 if outcome.outcome == "passed" else 0.0


def scope_values(
    by_seed: dict[int, list[ItemOutcome]], scope: str, value: Any
) -> dict[int, list[float]] | None:
    """``{seed: [value(outcome) per item]}`` of one scope, items in the same order for
    every seed; None when the seeds did not all run the same items or a value is missing."""
    result: dict[int, list[float]] = {}
    reference: list[str] | None = None
    for seed, members in sorted(by_seed.items()):
        chosen = sorted((o for o in members if o.scope == scope), key=lambda o: o.item)
        ids = [o.item for o in chosen]
        if not chosen or (reference is not None and ids != reference):
            return None
        reference = ids
        values = [value(o) for o in chosen]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            return None
        result[seed] = [float(v) for v in values]
    return result
