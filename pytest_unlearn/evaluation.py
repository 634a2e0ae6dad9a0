"""``evaluate()``: what the plugin measures, from Python (a notebook, a script), without
running pytest.

It drives the plugin's engine: the same session (methods, models, cache, scores and
generations), the same properties an item test records of a score or a generation, the same
outcome records, summary, gate and JSON report. Only pytest is missing: where the plugin runs
one test per item, this module decides each item's outcome the way the suites' tests do
(``suites/privacy/test_privacy.py``: an unlearn-scope item passes when it is no longer
recalled, a retention-scope item when it still is; ``test_attack.py``: passes when not
recalled after the relearning attack; ``test_leaks.py``: passes when no generation writes a
sensitive string, skips when the answer has none; ``test_quantized.py``: passes when not
recalled after 8-bit or 4-bit quantization; ``test_membership.py``: passes when PrivLeak
against the oracle is within its bounds). A run of the suites and an ``evaluate()`` with the
same settings give the same summary (``tests/test_evaluation.py`` and
``tests/test_membership_run.py`` check it).

    from pytest_unlearn import evaluate

    summary = evaluate(model, tokenizer, methods="gradient_ascent,memflex", inject="never")
    print(summary.table())
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .baselines import save_baseline
from .errors import UnlearnError
from .gate import gate_verdict
from .in_memory import InMemoryModel
from .json_report import report_metadata, write_json
from .leaks import NOTHING_TO_LEAK, find_leaks, sensitive_strings
from .membership_report import membership_record
from .models import ModelHandle
from .options import OPTIONS, settings_for_script
from .outcomes import (
    ItemOutcome,
    is_documented_skip,
    item_labels,
    leak_properties,
    score_properties,
)
from .privacy_checks import (
    membership_skip,
    privacy_leak,
    privleak_bounds,
    quantized_key,
    quantized_model,
)
from .registry import MethodRegistry
from .report import build_summary
from .session import UnlearnSession
from .tables import beyond_table, paper_table
from .vocabulary import ATTACK, DEFAULT_PROMPT, DOMAINS, LEAK, QUANT4, QUANT8, RECALL

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .method import MethodClass

# The membership test (one per method, seed and domain), by its marker's name.
PRIVACY_LEAK = "privacy_leak"
TESTS = (RECALL, ATTACK, LEAK, QUANT8, QUANT4, PRIVACY_LEAK)
# Domains whose answers hold sensitive strings a generation can leak (suites/privacy).
LEAK_DOMAINS = ("privacy",)


class Summary(dict[str, Any]):
    """The run's summary, as the plugin writes it with --unlearn-json (same keys, same
    schema: ``pytest_unlearn/report.schema.json``), with two conveniences."""

    def table(self, beyond: bool = True) -> str:
        """The paper's table (and the one beyond the paper), as the terminal prints them."""
        lines = paper_table(self["rows"])
        if beyond:
            lines += ["", *beyond_table(self["rows"])]
        return "\n".join(lines)

    @property
    def passed(self) -> bool | None:
        """The gate's verdict; None when no gate was given."""
        gate = self.get("gate")
        return None if gate is None else bool(gate["passed"])


def evaluate(
    model: PreTrainedModel | str | Path | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    methods: str | Sequence[str] = "none",
    data: str | Path = "builtin",
    domains: Sequence[str] = ("privacy",),
    tests: Sequence[str] = (RECALL, LEAK),
    register: Mapping[str, MethodClass] | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Summary:
    """Unlearn with each method and test every KnowUnDo val item of each domain.

    ``model`` and ``tokenizer``: an in-memory model to start from (copied, never changed);
    or ``model`` alone: what --unlearn-model takes (``"tiny"``, the default; an alias, a
    hub id, a folder, a .gguf file).
    ``methods``: names as --unlearn-method takes them ("none", "memflex+controls", "all").
    ``data``: "builtin", a local KnowUnDo folder or the hub id. ``tests``: which tests
    to run: "recall" (teacher-forced, the paper's metrics), "attack" (after the relearning
    attack), "leak" (generations; privacy only), "quant8" and "quant4" (recall after weight
    quantization) and "privacy_leak" (membership inference against the oracle, ``retrain``;
    needs a holdout). ``register``:
    method classes defined here (a notebook cell), by name. ``options``: any other option
    by its name without the ``unlearn_`` prefix and with underscores (``seeds=3``,
    ``criterion="token-share>=0.9"``, ``inject="never"``, ``gate="suites/gate.yaml"``,
    ``json="report.json"``, ``cache_dir=...``; docs/options.md lists them).

    Returns the summary; with a gate, ``summary.passed`` is its verdict (nothing is
    raised for a failing gate: the caller decides)."""
    if isinstance(model, (str, Path)):
        if tokenizer is not None:
            raise UnlearnError(
                f"evaluate(model={str(model)!r}, tokenizer=...): a model named by a string is "
                "loaded with its own tokenizer; pass tokenizer= only with an in-memory model"
            )
        options = {**options, "model": str(model)}
        model = None
    settings_values = _settings_values(methods, data, options)
    unknown_tests = set(tests) - set(TESTS)
    if unknown_tests or not tests:
        raise UnlearnError(
            f"evaluate(tests={list(tests)!r}): the tests are {', '.join(TESTS)}; name one or "
            "more of them"
        )
    unknown_domains = set(domains) - set(DOMAINS)
    if unknown_domains or not domains:
        raise UnlearnError(
            f"evaluate(domains={list(domains)!r}): the domains are {', '.join(DOMAINS)}"
        )
    given = None
    if model is not None or tokenizer is not None:
        if model is None or tokenizer is None:
            raise UnlearnError(
                "evaluate(): give both model= and tokenizer= (an in-memory model), or a model "
                "name alone (model='tiny', an alias, a hub id, a folder or a .gguf file)"
            )
        given = InMemoryModel(model, tokenizer)
    settings = settings_for_script(
        given.spec.requested if given is not None else None, "evaluate", **settings_values
    )
    unlearn = UnlearnSession(settings, progress or _to_stderr, given)
    registry = MethodRegistry.from_entry_points()
    for name, method_class in (register or {}).items():
        registry.register(name, method_class)
    unlearn.start(registry)
    unlearn.resolve_methods()
    for domain in domains:
        for method in unlearn.methods:
            for seed in settings.unlearn_seeds:
                _test_model(unlearn, domain, method, seed, tests)
    unlearn.collected = [
        (each.method, each.domain, each.prompt, each.test, each.scope) for each in unlearn.outcomes
    ]
    metadata = report_metadata(
        settings,
        unlearn.started,
        [],
        Path.cwd(),
        line=_call_line(given, methods, data, tests, options),
    )
    summary = Summary(build_summary(unlearn, [], metadata))
    if settings.plots_dir is not None and summary["rows"]:
        from .plots import write_plots

        summary["plots"] = [str(path) for path in write_plots(settings.plots_dir, summary["rows"])]
    if unlearn.gate is not None:
        summary["gate"] = gate_verdict(unlearn.gate, str(settings.gate_path), summary)
    if settings.json_path is not None:
        write_json(settings.json_path, summary)
    if settings.save_baseline is not None:
        save_baseline(settings.cache_dir, settings.save_baseline, summary)
    return summary


def _test_model(
    unlearn: UnlearnSession, domain: str, method: str, seed: int, tests: Sequence[str]
) -> None:
    """Every item test of one model (one method, seed and domain), in the suites' order:
    teacher-forced recall under each prompt variant, the attack, the leak tests."""
    data = unlearn.domain_data(domain)
    items = data.items()
    forget = [item for item in items if item.scope == "unlearn"]
    threshold = unlearn.settings.recall_threshold
    key = unlearn.model_key(domain, method, seed)
    unlearned = _Loader(lambda: unlearn.unlearned_model(domain, method, seed))
    try:
        if RECALL in tests:
            for prompt in unlearn.settings.prompts:
                for item in items:
                    score = unlearn.score_of(domain, key, item, unlearned, prompt)
                    recalled = score.recalled(threshold)
                    _record(
                        unlearn,
                        item_labels(method, domain, item.scope, seed, prompt, RECALL, item.id),
                        score_properties(score, threshold, key),
                        recalled if item.scope == "retention" else not recalled,
                    )
        if ATTACK in tests:
            attacked_key = unlearn.relearned_key(domain, method, seed)
            attacked = _Loader(lambda: unlearn.relearned_model(domain, method, seed))
            try:
                for item in forget:
                    score = unlearn.score_of(domain, attacked_key, item, attacked)
                    _record(
                        unlearn,
                        item_labels(
                            method, domain, item.scope, seed, DEFAULT_PROMPT, ATTACK, item.id
                        ),
                        score_properties(score, threshold, attacked_key),
                        not score.recalled(threshold),
                    )
            finally:
                attacked.release()
        if LEAK in tests and domain in LEAK_DOMAINS:
            texts = unlearn.artifacts.leak_generations(data, key, unlearned)
            for item in forget:
                strings = sensitive_strings(item.record.answer, item.record.question)
                found = [
                    (index, leak)
                    for index, text in enumerate(texts[item.id])
                    for leak in find_leaks(text, strings)
                ]
                _record(
                    unlearn,
                    item_labels(method, domain, item.scope, seed, DEFAULT_PROMPT, LEAK, item.id),
                    leak_properties(strings, found, texts[item.id], key),
                    not found if strings else None,
                )
        for kind, bits in ((QUANT8, 8), (QUANT4, 4)):
            if kind in tests:
                _test_quantized(unlearn, domain, method, seed, kind, bits)
        if PRIVACY_LEAK in tests:
            _test_membership(unlearn, domain, method, seed, unlearned)
    finally:
        unlearned.release()


def _test_quantized(
    unlearn: UnlearnSession, domain: str, method: str, seed: int, kind: str, bits: int
) -> None:
    """The quantized tests of one model: every forget item, after quantization."""
    threshold = unlearn.settings.recall_threshold
    key = quantized_key(unlearn, domain, method, seed, bits)
    quantized = _Loader(lambda: quantized_model(unlearn, domain, method, seed, bits))
    try:
        for item in unlearn.domain_data(domain).items():
            if item.scope != "unlearn":
                continue
            score = unlearn.score_of(domain, key, item, quantized)
            _record(
                unlearn,
                item_labels(method, domain, item.scope, seed, DEFAULT_PROMPT, kind, item.id),
                score_properties(score, threshold, key),
                not score.recalled(threshold),
            )
    finally:
        quantized.release()


def _test_membership(
    unlearn: UnlearnSession, domain: str, method: str, seed: int, unlearned: _Loader
) -> None:
    """The privacy_leak test of one model, recorded as the reporter records the suite's."""
    labels = {"unlearn_method": method, "unlearn_domain": domain, "unlearn_seed": seed}
    name = f"evaluate::{domain}::test_membership[{method}-{seed}]"
    reason = membership_skip(unlearn, domain, method)
    if reason is not None:
        unlearn.membership[name] = membership_record(labels, "skipped", reason[:300])
        return
    result = privacy_leak(unlearn, domain, method, seed, unlearned)
    failure = result.outside(privleak_bounds(unlearn, domain))
    unlearn.membership[name] = membership_record(
        {**labels, **dict(result.properties())}, "failed" if failure else "passed", None
    )


def _record(
    unlearn: UnlearnSession,
    labels: list[tuple[str, Any]],
    properties: list[tuple[str, Any]],
    passed: bool | None,
) -> None:
    """One item test's outcome, as the reporter records it from the test's report (None:
    skipped, as a leak test of an answer with nothing to leak, which the suite documents)."""
    outcome = "skipped" if passed is None else "passed" if passed else "failed"
    recorded = dict([*labels, *properties])
    unlearn.outcomes.append(
        ItemOutcome.from_properties(
            recorded,
            outcome,
            NOTHING_TO_LEAK if passed is None else None,
            is_documented_skip(outcome, recorded),
        )
    )


class _Loader:
    """Loads a model once, when a score or a generation is not in the cache, and releases it."""

    def __init__(self, load: Callable[[], ModelHandle]) -> None:
        self._load = load
        self._handle: ModelHandle | None = None

    def __call__(self) -> ModelHandle:
        if self._handle is None:
            self._handle = self._load()
        return self._handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.release()
            self._handle = None


def _settings_values(
    methods: str | Sequence[str], data: str | Path, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Option values by dest, as settings_for_script takes them (strings, booleans)."""
    dests = {option.dest: option for option in OPTIONS}
    values: dict[str, Any] = {
        "unlearn_method": methods if isinstance(methods, str) else ",".join(methods),
        "unlearn_data": str(data),
    }
    for name, value in options.items():
        dest = f"unlearn_{name}"
        if dest not in dests or dest in values:
            known = sorted(key.removeprefix("unlearn_") for key in dests if key not in values)
            raise UnlearnError(
                f"evaluate({name}=...): no such option; the options are methods, data, "
                f"domains, tests, register, progress and {', '.join(known)} "
                "(docs/options.md, without the --unlearn- prefix)"
            )

        if isinstance(value, bool):
            values[dest] = value
        elif isinstance(value, Iterable) and not isinstance(value, (str, Path)):
            values[dest] = ",".join(map(str, value))
        else:
            values[dest] = "" if value is None else str(value)
    return values


def _call_line(
    given: InMemoryModel | None,
    methods: str | Sequence[str],
    data: str | Path,
    tests: Sequence[str],
    options: Mapping[str, Any],
) -> str:
    arguments = [f"model=<{given.name}>"] if given is not None else []
    arguments += [f"methods={methods!r}", f"data={str(data)!r}", f"tests={list(tests)!r}"]
    arguments += [f"{name}={value!r}" for name, value in options.items()]
    return f"pytest_unlearn.evaluate({', '.join(arguments)})"


def _to_stderr(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] unlearn: {line}", file=sys.stderr, flush=True)
