"""The verdict of a method against its ablation controls: does it beat each control beyond
the seed spread, on Avg Success and on each scope?

A method declares its controls (``UnlearningMethod.controls``: its training with one
ingredient changed) and what they test of it (``controls_test``). The difference of each
metric, method minus control, gets a paired bootstrap interval over seeds and items
(``stats.joint_difference_interval``): 'beats' when the whole interval is above 0, 'loses'
when below, 'no difference' otherwise; with one seed there is no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .outcomes import ItemOutcome, passed, scope_values
from .stats import Interval, ValuesBySeed, joint_difference_interval
from .vocabulary import DEFAULT_PROMPT, RECALL, SCOPES

VERDICT_METRICS = ("avg_success", "unlearn_success", "retention_success")
BEATS = "beats"
LOSES = "loses"
NO_DIFFERENCE = "no difference beyond the spread"
UNDECIDED = "undecided"
ONE_SEED = "undecided: one seed cannot show the seed spread; rerun with --unlearn-seeds 3 or more"


@dataclass(frozen=True)
class Difference:
    """The method minus one control on one metric."""

    metric: str
    interval: Interval
    outcome: str  # BEATS, LOSES, NO_DIFFERENCE, or UNDECIDED with fewer than two seeds

    def describe(self) -> str:
        shown = (
            f"{self.metric.replace('_', ' ')} {_points(self.interval.mean)} points "
            f"[{self.interval.confidence:.0%} {_points(self.interval.lower)}, "
            f"{_points(self.interval.upper)}]"
        )
        return shown if self.outcome == UNDECIDED else f"{shown} {self.outcome}"


@dataclass(frozen=True)
class ControlVerdict:
    control: str
    conclusion: str
    differences: tuple[Difference, ...]  # in the order of VERDICT_METRICS


@dataclass(frozen=True)
class Verdict:
    """Does the method (what its controls test of it, such as a localization) beat each
    of its controls beyond the seed spread?"""

    method: str
    subject: str  # what the controls test, as the conclusions name it ("localization")
    controls: tuple[ControlVerdict, ...]
    seeds: int
    unlearn_items: int
    retention_items: int
    confidence: float
    resamples: int

    @property
    def decided(self) -> bool:
        return self.seeds >= 2

    def lines(self) -> list[str]:
        """Plain text for the end of the terminal summary: one line per control, then how."""
        lines = [
            f"vs {each.control}: "
            + "; ".join(difference.describe() for difference in each.differences)
            + f". Verdict: {each.conclusion}."
            for each in self.controls
        ]
        return [*lines, self._how()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "subject": self.subject,
            "decided": self.decided,
            "seeds": self.seeds,
            "unlearn_items": self.unlearn_items,
            "retention_items": self.retention_items,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "controls": [
                {
                    "control": each.control,
                    "conclusion": each.conclusion,
                    "differences": {
                        difference.metric: {
                            **difference.interval.to_dict(),
                            "outcome": difference.outcome,
                        }
                        for difference in each.differences
                    },
                }
                for each in self.controls
            ],
            "how": self._how(),
        }

    def _how(self) -> str:
        measured = (
            f"How: {self.method} minus each control, in points; {self.confidence:.0%} "
            f"interval of a paired percentile bootstrap ({self.resamples} resamples)"
        )
        items = f"the {self.unlearn_items} unlearn and {self.retention_items} retention items"
        if not self.decided:
            return (
                f"{measured} over {items} of one seed, which shows nothing of the spread "
                "between training runs: no verdict."
            )
        return (
            f"{measured} over the {self.seeds} seeds and {items}, the same draws for both "
            f"methods. '{BEATS}': the whole interval is above 0; '{LOSES}': below 0. "
            f"{self.subject.capitalize()} beats a control outright if it beats it on avg "
            "success and loses on neither scope; on avg success at a cost if it loses on a "
            "scope; it does not beat it if avg success shows no difference."
        )


def localization_verdict(
    results: Mapping[str, Mapping[str, ValuesBySeed]],
    method: str,
    controls: Sequence[str],
    subject: str = "",
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    rng_seed: int = 0,
) -> Verdict:
    """``method`` against each of its ``controls`` that ran, on one domain's item outcomes.

    ``results`` maps a method name to ``{"unlearn": values_by_seed, "retention":
    values_by_seed}`` (1.0 where the item test passed: forgotten, or still recalled).
    ``subject`` names what the controls test of the method in the conclusions (its
    ``controls_test``, such as "localization"; the method's name by default). The number
    of seeds is that of the data; with fewer than two there is no verdict, only the numbers.
    """
    subject = subject or method
    if method not in results:
        raise ValueError(f"no outcomes of {method!r}: the verdict compares it with its controls")
    ran = [control for control in controls if control in results]
    if not ran:
        raise ValueError(
            f"none of {method!r}'s controls ran ({', '.join(controls)}); run "
            f"--unlearn-method={method}+controls"
        )
    ours = _scopes(results, method)
    verdicts = []
    for control in ran:
        theirs = _scopes(results, control)
        differences = []
        for metric in VERDICT_METRICS:
            scopes = (
                ("unlearn", "retention")
                if metric == "avg_success"
                else (metric.removesuffix("_success"),)
            )
            try:
                difference = joint_difference_interval(
                    [ours[scope] for scope in scopes],
                    [theirs[scope] for scope in scopes],
                    confidence,
                    resamples,
                    rng_seed,
                )
            except ValueError as error:
                raise ValueError(f"{method} vs {control}: {error}") from None
            differences.append(Difference(metric, difference, _outcome(difference)))
        verdicts.append(
            ControlVerdict(control, _conclusion(subject, control, differences), tuple(differences))
        )
    seeds = verdicts[0].differences[0].interval.seeds
    return Verdict(
        method=method,
        subject=subject,
        controls=tuple(verdicts),
        seeds=seeds,
        unlearn_items=len(next(iter(ours["unlearn"].values()))),
        retention_items=len(next(iter(ours["retention"].values()))),
        confidence=confidence,
        resamples=resamples,
    )


def _scopes(
    results: Mapping[str, Mapping[str, ValuesBySeed]], method: str
) -> Mapping[str, ValuesBySeed]:
    scopes = results[method]
    missing = [scope for scope in ("unlearn", "retention") if scope not in scopes]
    if missing:
        raise ValueError(f"{method}: no {missing[0]}-scope outcomes")
    return scopes


def _outcome(difference: Interval) -> str:
    if difference.seeds < 2:
        return UNDECIDED
    if difference.lower > 0:
        return BEATS
    if difference.upper < 0:
        return LOSES
    return NO_DIFFERENCE


def _conclusion(subject: str, control: str, differences: list[Difference]) -> str:
    if any(difference.outcome == UNDECIDED for difference in differences):
        return ONE_SEED
    average, *scopes = differences
    worse = [
        difference.metric.replace("_", " ") for difference in scopes if difference.outcome == LOSES
    ]
    worse_text = f"worse on {' and '.join(worse)}"
    if average.outcome == BEATS and not worse:
        return f"{subject} beats {control}"
    if average.outcome == BEATS:
        # A control that changes little keeps more of the Retention Scope than any method
        # that forgets: losing a scope to it is a trade-off to report, not a defeat.
        return f"{subject} beats {control} on avg success, at a cost: it is {worse_text}"
    if average.outcome == LOSES:
        return f"{subject} loses to {control} (worse on avg success)"
    return f"{subject} does not beat {control} (no difference in avg success beyond the spread" + (
        f", and {worse_text})" if worse else ")"
    )


def _points(share: float) -> str:
    return f"{share * 100:+.1f}"


def _token_share(outcome: ItemOutcome) -> float | None:
    """An item's success under the token share: the share of its answer tokens forgotten
    (unlearn scope) or recalled (retention scope)."""
    if outcome.token_accuracy is None:
        return None
    return 1.0 - outcome.token_accuracy if outcome.scope == "unlearn" else outcome.token_accuracy


# An item's success under each criterion: its item test's pass (whole-answer, or the run's
# --unlearn-criterion), or its token share (the reference's figure).
ITEM_SUCCESS = {"whole-answer": passed, "token-share": _token_share}


def control_verdicts(
    outcomes: Sequence[ItemOutcome],
    controls: dict[str, tuple[tuple[str, ...], str]],
    criterion: str = "whole-answer",
) -> dict[str, dict[str, Any]]:
    """Per domain (and prompt variant) where a method ran beside at least one of its
    ablation controls (``controls``: method -> (its controls, what they test)): the verdict
    of ``stats.localization_verdict`` on the item outcomes, as a dict with its text lines.
    ``criterion``: each item's success is its test's pass ("whole-answer": the run's
    criterion) or its token share ("token-share")."""
    success = ITEM_SUCCESS[criterion]
    verdicts = {}
    for domain, prompt in dict.fromkeys((o.domain, o.prompt) for o in outcomes):
        for method, (names, subject) in controls.items():
            results = {}
            for name in (method, *names):
                by_seed: dict[int, list[ItemOutcome]] = {}
                for outcome in outcomes:
                    if (outcome.method, outcome.domain, outcome.prompt, outcome.test) == (
                        name,
                        domain,
                        prompt,
                        RECALL,
                    ):
                        by_seed.setdefault(outcome.seed, []).append(outcome)
                scopes = {
                    scope: values
                    for scope in SCOPES
                    if by_seed and (values := scope_values(by_seed, scope, success)) is not None
                }
                if len(scopes) == len(SCOPES):
                    results[name] = scopes
            if method in results and len(results) > 1:
                verdict = localization_verdict(results, method, names, subject)
                key = domain if prompt == DEFAULT_PROMPT else f"{domain}, prompt {prompt}"
                if len(controls) > 1:
                    key += f" ({method})"
                verdicts[key] = {**verdict.to_dict(), "lines": verdict.lines()}
    return verdicts
