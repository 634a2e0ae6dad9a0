"""Per-run state: settings, methods, data, the model pipeline and the collected outcomes.

One `UnlearnSession` is stored in ``config.stash`` by the plugin; nothing lives in module
globals.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .data import DomainData, Item, load_domain
from .errors import UnlearnError
from .registry import MethodRegistry
from .report import ItemOutcome
from .settings import Settings

if TYPE_CHECKING:
    from .models import ModelHandle
    from .pipeline import Pipeline
    from .scoring import ItemScore


class UnlearnSession:
    def __init__(self, settings: Settings, progress: Callable[[str], None]) -> None:
        self.settings = settings
        self.progress = progress
        self.registry = MethodRegistry()
        self.methods: list[str] = list(settings.methods)
        self.outcomes: list[ItemOutcome] = []
        self.started = time.time()
        self._data: dict[str, DomainData] = {}
        self._pipeline: Pipeline | None = None
        self._scores: dict[str, list[ItemScore]] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._yaml: dict[str, Any] | None = None
        self.gate: dict[str, Any] | None = None
        # Set during collection when a general-task test is selected: the reference scores
        # are then computed before each unlearned model is loaded (one model in memory).
        self.general_domains: set[str] = set()
        self._general: dict[str, dict[str, Any]] = {}

    def start(self, registry: MethodRegistry) -> None:
        """Called at session start, once conftest registrations are in."""
        self.registry = registry
        self.methods = registry.resolve(self.settings.methods)
        self._yaml = self._read_config_file()
        for name in self.methods:
            if name in self._yaml:  # a bad YAML section fails now, not after training;
                self.method_config(name)  # methods without one stay unloaded until used
        if self.settings.gate_path is not None:
            from .gate import load_gate

            self.gate = load_gate(self.settings.gate_path)
        if self.settings.compare_baseline is not None:
            from .baselines import baseline_path

            path = baseline_path(self.settings.cache_dir, self.settings.compare_baseline)
            if not path.is_file():
                raise UnlearnError(
                    f"--unlearn-compare={self.settings.compare_baseline}: no baseline at {path}; "
                    f"save one first with --unlearn-save={self.settings.compare_baseline}")

    # --- data --------------------------------------------------------------------------

    def domain_data(self, domain: str) -> DomainData:
        if domain not in self._data:
            self._data[domain] = load_domain(self.settings.data, domain)
        return self._data[domain]

    # --- models ------------------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            from .cache import ModelCache
            from .pipeline import Pipeline

            cache = ModelCache(self.settings.cache_dir, rebuild=self.settings.rebuild)
            self._pipeline = Pipeline(self.settings, cache, self.progress)
        return self._pipeline

    @property
    def model_family(self) -> str:
        """Which presets apply (tiny, llama2, qwen1.5, other); known without loading."""
        from .models import ModelSpec

        return ModelSpec.parse(self.settings.model).family

    def method_config(self, name: str) -> Any:
        """The config in force: defaults, the model family's preset, the YAML section.
        Keys and types are checked, so --unlearn-config fails at start-up when wrong."""
        from .method import make_config

        section = (self._yaml or {}).get(name, {})
        source = str(self.settings.config_path) if self.settings.config_path else "config"
        return make_config(self.registry.get(name), self.model_family, section, source)

    def unlearned_model(self, domain: str, method: str) -> ModelHandle:
        if domain in self.general_domains:
            self.reference_general_scores(domain)
        data = self.domain_data(domain)
        method_class = self.registry.get(method)
        config = self.method_config(method)
        if method == "none":
            handle = self.pipeline.load_vanilla(data)
        else:
            handle = self.pipeline.load_unlearned(data, method, method_class, config)
        return handle

    # --- general tasks -------------------------------------------------------------------

    def general_task_names(self) -> list[str]:
        from .general_tasks import BUILTIN_TASKS, DEFAULT_REAL_TASKS

        choice = self.settings.general_tasks
        if choice == "auto":
            choice = "builtin" if self.settings.model == "tiny" else "paper"
        if choice == "builtin":
            return list(BUILTIN_TASKS)
        if choice == "paper":
            return list(DEFAULT_REAL_TASKS)
        return [name.strip() for name in choice.split(",") if name.strip()]

    def general_scores(self, handle: ModelHandle) -> dict[str, Any]:
        """lm-eval scores of an in-memory model on every selected task (once per model)."""
        if handle.cache_key not in self._general:
            from .general_tasks import evaluate, write_builtin_tasks

            folder = self.settings.cache_dir / "general_tasks"
            write_builtin_tasks(folder)
            tasks = self.general_task_names()
            self.progress(f"general tasks: {', '.join(tasks)} "
                          f"(limit {self.settings.general_limit or 'none'})")
            self._general[handle.cache_key] = evaluate(
                handle.model, handle.tokenizer, tasks, include_path=folder,
                limit=self.settings.general_limit)
        return self._general[handle.cache_key]

    def reference_general_scores(self, domain: str) -> dict[str, Any]:
        """Scores of the model that relative thresholds compare against: --unlearn-reference
        if given, else the vanilla model. Cached on disk, like the models."""
        import json
        from importlib.metadata import version

        pipeline = self.pipeline
        if self.settings.reference is not None:
            from .models import ModelSpec

            reference: dict[str, Any] = {"reference": ModelSpec.parse(
                self.settings.reference).fingerprint()}
        else:
            reference = {"vanilla": pipeline.vanilla_payload(self.domain_data(domain))}
        payload = {"kind": "general_scores", **reference, "tasks": self.general_task_names(),
                   "limit": self.settings.general_limit, "lm_eval": version("lm_eval"),
                   "pytest_unlearn": __version__}

        def build(folder: Path) -> None:
            handle = (pipeline.load_reference() if self.settings.reference is not None
                      else pipeline.load_vanilla(self.domain_data(domain)))
            try:
                scores = self.general_scores(handle)
            finally:
                handle.release()
            (folder / "scores.json").write_text(json.dumps(scores, indent=1))

        path, _ = pipeline.cache.get_or_build("scores", payload, build)
        return json.loads((path / "scores.json").read_text())

    def method_log(self, cache_key: str | None) -> dict[str, Any] | None:
        """The method log stored with an unlearned model's cache entry, if there is one."""
        import json

        from .cache import ModelCache

        if not cache_key:
            return None
        entry = ModelCache(self.settings.cache_dir).entry_path("unlearned", cache_key)
        log_file = entry / "method_log.json"
        return json.loads(log_file.read_text()) if log_file.is_file() else None

    def item_scores(self, handle: ModelHandle, domain: str) -> list[ItemScore]:
        """Scores of every val item of the domain, one batched pass per model."""
        import dataclasses

        from .encoding import encode_all
        from .pipeline import MAX_LENGTH
        from .scoring import generate, rouge_l, score

        if handle.cache_key not in self._scores:
            items = self.domain_data(domain).items()
            encoded = encode_all(handle.tokenizer, [item.record for item in items], MAX_LENGTH,
                                 f"{domain} val")
            self.progress(f"score {domain}: {len(items)} items")
            batch_size = self.settings.score_batch_size
            scores = score(handle.model, encoded, handle.pad_id, batch_size)
            if self.settings.max_new_tokens > 0:
                self.progress(f"generate {domain}: {len(items)} items, up to "
                              f"{self.settings.max_new_tokens} new tokens")
                prompts = [enc.input_ids[: enc.prompt_length] for enc in encoded]
                lengths = [min(enc.answer_length, self.settings.max_new_tokens)
                           for enc in encoded]
                generations = generate(handle.model, handle.tokenizer, prompts, lengths,
                                       handle.pad_id, batch_size)
                rouge = rouge_l([item.record.answer for item in items], generations)
                scores = [dataclasses.replace(each, generation=text, rouge_l=value)
                          for each, text, value in zip(scores, generations, rouge)]
            self._scores[handle.cache_key] = scores
        return self._scores[handle.cache_key]

    def score_of(self, handle: ModelHandle, item: Item) -> ItemScore:
        if item.domain not in self._positions:
            self._positions[item.domain] = {
                each.id: index for index, each in enumerate(self.domain_data(item.domain).items())}
        return self.item_scores(handle, item.domain)[self._positions[item.domain][item.id]]

    # --- config file -------------------------------------------------------------------

    def _read_config_file(self) -> dict[str, Any]:
        path: Path | None = self.settings.config_path
        if path is None:
            return {}
        import yaml

        try:
            content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise UnlearnError(f"{path}: not valid YAML: {error}") from None
        if not isinstance(content, dict):
            raise UnlearnError(f"{path}: expected a mapping of method names to their settings, "
                               f"got {type(content).__name__}")
        known = self.registry.names()
        for name, section in content.items():
            if name not in known:
                raise UnlearnError(f"{path}: section {name!r} names no registered method; "
                                   f"methods are: {', '.join(known)}")
            if not isinstance(section, dict):
                raise UnlearnError(f"{path}: section {name!r} must be a mapping of config keys "
                                   f"to values, got {type(section).__name__}")
        return content
