"""An item test's outcome as the report counts it, read from the properties its report
carries (under xdist they travel from the workers with it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .vocabulary import DEFAULT_PROMPT, LEAK, RECALL

if TYPE_CHECKING:
    import pytest


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
        )


def outcome_of(report: pytest.TestReport) -> str | None:
    """The outcome a test's report decides: the call's, or an error or skip in setup, or an
    error in teardown (after a call that passed or failed); None for the other reports."""
    if report.when == "call":
        return report.outcome
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "skipped"
    return None


def message_of(report: pytest.TestReport) -> str | None:
    """The first line of why a test errored or was skipped, for the reports and the gate."""
    if report.passed or (report.failed and report.when == "call"):
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
