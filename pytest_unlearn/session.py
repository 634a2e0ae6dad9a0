"""Per-run state: settings, methods, data, the model pipeline, what the tests read of each
model, and the collected outcomes.

One `UnlearnSession` is stored in ``config.stash`` by the plugin; nothing lives in module
globals. What a test reads of a model is keyed by the model's cache key, which is known
without loading the model: a rerun of an unchanged suite loads no model at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from .artifacts import Artifacts
from .baselines import baseline_path
from .cache import ModelCache, cache_key
from .config_file import ConfigFile
from .data import DomainData, Item, load_domain
from .errors import UnlearnError
from .gate_file import load_gate
from .general_tasks import task_names
from .holdout import with_holdout
from .in_memory import InMemoryModel
from .injection import INJECT_SECTION
from .models import ModelHandle, ModelSpec
from .oracle import ORACLE_ROW, load_oracle, oracle_key
from .outcomes import ItemOutcome
from .pipeline import Pipeline
from .registry import ALL_METHODS, MethodRegistry
from .scoring import ItemScore
from .settings import Settings
from .vocabulary import DEFAULT_PROMPT

# The seed of the holdout's split (holdout.py): fixed, so that every run and every
# --unlearn-seed tests against the same holdout.
HOLDOUT_SEED = 0
# Where the plugin keeps the run's session.
SESSION_KEY = pytest.StashKey["UnlearnSession"]()


class UnlearnSession:
    def __init__(
        self,
        settings: Settings,
        progress: Callable[[str], None],
        given: InMemoryModel | None = None,
    ) -> None:
        self.settings = settings
        self.progress = progress
        self.given = given  # a model handed over in memory (the Python API)
        self.registry = MethodRegistry()
        # The plugins and conftests whose pytest_unlearn_register_methods has been called.
        self.asked_plugins: list[object] = []
        self.methods: list[str] = list(settings.methods)
        self.config_file = ConfigFile(settings.config_path)
        self.gate: dict[str, Any] | None = None
        self.outcomes: list[ItemOutcome] = []
        # The membership (privacy_leak) tests' results, by node id (membership_report.py).
        self.membership: dict[str, dict[str, Any]] = {}
        self.outcome_index: dict[str, int] = {}  # where each item test's outcome is, by node id
        # (method, domain, prompt, test kind, scope) of every selected test (the controller's
        # under xdist comes from a worker): the gate compares it with what reported.
        self.collected: list[tuple[str, str, str, str, str]] = []
        self.started = time.time()
        # Set during collection when a general-task test is selected: the reference scores
        # are then computed before each unlearned model is loaded (one model in memory).
        self.general_domains: set[str] = set()
        # Why general-task tests were deselected (no item test of their domain ran), and
        # what an --unlearn-build-only run built: lines for the terminal summary.
        self.general_deselected: list[str] = []
        self.build_report: list[str] | None = None
        # Seconds spent building models before the first test (the longest worker's under
        # xdist); None when nothing was built first.
        self.build_seconds: float | None = None
        self._data: dict[str, DomainData] = {}
        self._pipeline: Pipeline | None = None
        self._artifacts: Artifacts | None = None
        self._model_keys: dict[tuple[str, str, int], str] = {}
        self._positions: dict[str, dict[str, int]] = {}

    # --- start-up ----------------------------------------------------------------------

    def start(self, registry: MethodRegistry) -> None:
        """Called at session start: the registry (entry points and the conftests loaded so
        far), the gate and the baseline. Method names are resolved later, by
        ``resolve_methods``, once every conftest of the run can have registered its own."""
        self.registry = registry
        if self.settings.gate_path is not None:
            self.gate = load_gate(self.settings.gate_path)
        if self.settings.compare_baseline is not None:
            path = baseline_path(self.settings.cache_dir, self.settings.compare_baseline)
            if not path.is_file():
                raise UnlearnError(
                    f"--unlearn-compare={self.settings.compare_baseline}: no baseline at {path}; "
                    f"save one first with --unlearn-save={self.settings.compare_baseline}"
                )

    def resolve_names(self, requested: tuple[str, ...]) -> list[str]:
        """The registry's resolution of method names, with ``retrain`` (the oracle,
        ``oracle.py``: not a method, the model retrained without the Unlearn Scope) kept
        where it was named."""
        names = self.registry.resolve(tuple(n for n in requested if n != ORACLE_ROW))
        if ORACLE_ROW in requested:
            names.insert(min(requested.index(ORACLE_ROW), len(names)), ORACLE_ROW)
        return names

    def needs_every_conftest(self) -> bool:
        """Whether the methods can only be resolved once every conftest of the run is
        loaded: 'all' is asked for, or a method name (or a section of --unlearn-config)
        names no method registered so far."""
        if ALL_METHODS in self.settings.methods:
            return True
        try:
            self.resolve_names(self.settings.methods)
        except UnlearnError:
            return True
        known = set(self.registry.names()) | {INJECT_SECTION}
        return not set(map(str, self.config_file.sections())) <= known

    def resolve_methods(self) -> None:
        """Resolve --unlearn-method and check --unlearn-config against the registry; a bad
        config section fails now, not after training."""
        self.methods = self.resolve_names(self.settings.methods)
        self.config_file.check(self.registry.names())
        for name in self.methods:
            if name in self.config_file.sections():
                self.method_config(name)  # methods without a section stay unloaded until used
        if INJECT_SECTION in self.config_file.sections():
            self.config_file.injection(self.model_family)

    # --- data, methods, models ---------------------------------------------------------

    def domain_data(self, domain: str) -> DomainData:
        if domain not in self._data:
            self._data[domain] = with_holdout(
                load_domain(self.settings.data, domain),
                self.settings.holdout,
                HOLDOUT_SEED,
                "--unlearn-holdout",
            )
        return self._data[domain]

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            cache = ModelCache(
                self.settings.cache_dir, rebuild=self.settings.rebuild, progress=self.progress
            )
            cache.clean_stale_staging()
            self._pipeline = Pipeline(
                self.settings,
                cache,
                self.progress,
                self.config_file.injection(self.model_family),
                self.given,
            )
        return self._pipeline

    @property
    def artifacts(self) -> Artifacts:
        if self._artifacts is None:
            self._artifacts = Artifacts(
                self.pipeline.cache, self.settings, self.general_task_names(), self.progress
            )
        return self._artifacts

    @property
    def model_family(self) -> str:
        """Which presets apply (tiny, llama2, qwen1.5, other); known without loading."""
        spec = self.given.spec if self.given else ModelSpec.parse(self.settings.model)
        return spec.family

    def method_config(self, name: str) -> Any:
        """The config in force: defaults, the model family's preset, the config file's
        section. Keys and types are checked, so --unlearn-config fails at start-up."""
        return self.config_file.method_config(self.registry.get(name), name, self.model_family)

    def unlearns(self, method: str) -> bool:
        """Whether the method changes the model (``none`` does not: it is the vanilla one)."""
        if method == ORACLE_ROW:
            return True
        return self.registry.get(method).unlearns

    def controls_of_methods(self) -> dict[str, tuple[tuple[str, ...], str]]:
        """The methods of the run that declare ablation controls: their controls and what
        the controls test (``UnlearningMethod.controls``, ``controls_test``)."""
        return {
            name: (cls.controls, cls.controls_test)
            for name in self.methods
            if name != ORACLE_ROW and (cls := self.registry.get(name)).controls
        }

    def unlearned_model(self, domain: str, method: str, seed: int | None = None) -> ModelHandle:
        """The model after ``method`` ran with ``seed`` (default: --unlearn-seed); a method
        that does not unlearn gives the vanilla model."""
        if domain in self.general_domains and (self.unlearns(method) or self.settings.reference):
            # The reference's scores first, so that only one model is in memory at a time
            # (without --unlearn-reference, the vanilla model is the reference).
            self.reference_general_scores(domain)
        data = self.domain_data(domain)
        if method == ORACLE_ROW:
            return load_oracle(self.pipeline, data)
        if not self.unlearns(method):
            return self.pipeline.load_vanilla(data)
        return self.pipeline.load_unlearned(
            data,
            method,
            self.registry.get(method),
            self.method_config(method),
            self.settings.seed if seed is None else seed,
        )

    def model_key(self, domain: str, method: str, seed: int | None = None) -> str:
        """The cache key of the model ``unlearned_model`` gives, known without loading it
        (computed once per model: every item test asks)."""
        seed = self.settings.seed if seed is None else seed
        if (domain, method, seed) not in self._model_keys:
            data = self.domain_data(domain)
            if method == ORACLE_ROW:
                self._model_keys[(domain, method, seed)] = oracle_key(self.pipeline, data)
                return self._model_keys[(domain, method, seed)]
            payload = (
                self.pipeline.unlearned_payload(
                    data, method, self.registry.get(method), self.method_config(method), seed
                )
                if self.unlearns(method)
                else self.pipeline.vanilla_payload(data)
            )
            self._model_keys[(domain, method, seed)] = cache_key(payload)
        return self._model_keys[(domain, method, seed)]

    def relearned_key(self, domain: str, method: str, seed: int) -> str:
        """The cache key of the model after the relearning attack, known without loading."""
        memo = (domain, f"{method} relearned", seed)
        if memo not in self._model_keys:
            self._model_keys[memo] = cache_key(
                self.pipeline.relearned_payload(
                    self.domain_data(domain), self.model_key(domain, method, seed), seed
                )
            )
        return self._model_keys[memo]

    def relearned_model(self, domain: str, method: str, seed: int) -> ModelHandle:
        """The unlearned model after the relearning attack (--unlearn-attack)."""
        return self.pipeline.load_relearned(
            self.domain_data(domain),
            lambda: self.unlearned_model(domain, method, seed),
            self.model_key(domain, method, seed),
            seed,
        )

    def method_log(self, key: str | None) -> dict[str, Any] | None:
        """The method log stored with an unlearned model's cache entry, if there is one."""
        if not key:
            return None
        log_file = (
            ModelCache(self.settings.cache_dir).entry_path("unlearned", key) / "method_log.json"
        )
        return json.loads(log_file.read_text()) if log_file.is_file() else None

    # --- what the tests read of a model ------------------------------------------------

    def score_of(
        self,
        domain: str,
        model_key: str,
        item: Item,
        load: Callable[[], ModelHandle],
        prompt: str = DEFAULT_PROMPT,
    ) -> ItemScore:
        """The score of one val item by the model with ``model_key`` (all of the domain's
        items are scored at once, then cached)."""
        if item.domain not in self._positions:
            self._positions[item.domain] = {
                each.id: index for index, each in enumerate(self.domain_data(item.domain).items())
            }
        scores = self.artifacts.item_scores(self.domain_data(domain), model_key, load, prompt)
        return scores[self._positions[item.domain][item.id]]

    def general_task_names(self) -> list[str]:
        return task_names(self.settings.general_tasks, self.settings.model)

    def reference_general_scores(self, domain: str) -> dict[str, Any]:
        """Scores of the model that relative thresholds compare against: --unlearn-reference
        if given, else the vanilla model. Cached on disk, like the models."""
        pipeline = self.pipeline
        if self.settings.reference is not None:
            key = cache_key(
                {
                    "kind": "reference",
                    "model": ModelSpec.parse(self.settings.reference).fingerprint(
                        pipeline.cache.file_hashes
                    ),
                    "dtype": str(pipeline.dtype),
                }
            )
            return self.artifacts.general_scores(key, pipeline.load_reference, release=True)
        data = self.domain_data(domain)
        return self.artifacts.general_scores(
            cache_key(pipeline.vanilla_payload(data)),
            lambda: pipeline.load_vanilla(data),
            release=True,
        )
