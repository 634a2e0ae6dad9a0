"""Per-run state: settings, methods, data, the model pipeline and the collected outcomes.

One `UnlearnSession` is stored in ``config.stash`` by the plugin; nothing lives in module
globals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import __version__
from .data import DomainData, Item, load_domain
from .errors import UnlearnError
from .prompts import DEFAULT_PROMPT
from .registry import ALL_METHODS, MethodRegistry
from .report import ItemOutcome
from .settings import Settings

if TYPE_CHECKING:
    from .models import ModelHandle
    from .pipeline import InjectionConfig, Pipeline
    from .scoring import ItemScore


# The --unlearn-config section of knowledge injection settings (beside one per method).
INJECT_SECTION = "inject"
# Part of the cache key of stored scores: raise it when scoring computes anything differently.
SCORING_VERSION = 5  # 4: torch's fused cross-entropy for the NLL; 5: on a CPU, one item at a time


@dataclass
class ModelNeeds:
    """What the selected tests read from one model (--unlearn-build-only prepares it)."""

    prompts: set[str] = field(default_factory=set)  # item scores under these prompt variants
    leak: bool = False  # greedy and sampled generations of the unlearn items
    general: bool = False  # general-task scores (and those of the reference)
    attack: bool = False  # the model after the relearning attack
    attack_scores: bool = False  # and its item scores


class _HeldOnce:
    """A model loaded on first ``get()`` and held until ``release()``."""

    def __init__(self, load: Callable[[], ModelHandle]) -> None:
        self.load = load
        self.handle: ModelHandle | None = None

    def get(self) -> ModelHandle:
        if self.handle is None:
            self.handle = self.load()
        return self.handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.release()
            self.handle = None


class UnlearnSession:
    def __init__(self, settings: Settings, progress: Callable[[str], None]) -> None:
        self.settings = settings
        self.progress = progress
        self.registry = MethodRegistry()
        # The plugins and conftests whose pytest_unlearn_register_methods has been called.
        self.asked_plugins: list[object] = []
        self.methods: list[str] = list(settings.methods)
        self.outcomes: list[ItemOutcome] = []
        self.outcome_index: dict[str, int] = {}  # where each item test's outcome is, by node id
        # (method, domain, prompt, test kind, scope) of every selected test (the controller's
        # under xdist comes from a worker): the gate compares it with what reported.
        self.collected: list[tuple[str, ...]] = []
        self.started = time.time()
        self._data: dict[str, DomainData] = {}
        self._pipeline: Pipeline | None = None
        self._scores: dict[tuple[str, str, str], list[ItemScore]] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._model_keys: dict[tuple[str, str, int], str] = {}
        self._generations: dict[tuple[str, str], dict[str, list[str]]] = {}
        self._yaml: dict[str, Any] | None = None
        self.gate: dict[str, Any] | None = None
        # Set during collection when a general-task test is selected: the reference scores
        # are then computed before each unlearned model is loaded (one model in memory).
        self.general_domains: set[str] = set()
        self._general: dict[str, dict[str, Any]] = {}

    def start(self, registry: MethodRegistry) -> None:
        """Called at session start: the registry (entry points and the conftests loaded so
        far), the gate and the baseline. Method names are resolved later, by
        ``resolve_methods``, once every conftest of the run can have registered its own."""
        self.registry = registry
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

    def needs_every_conftest(self) -> bool:
        """Whether the methods can only be resolved once every conftest of the run is
        loaded: 'all' is asked for, or a method name (or a section of --unlearn-config)
        names no method registered so far."""
        if ALL_METHODS in self.settings.methods:
            return True
        try:
            self.registry.resolve(self.settings.methods)
        except UnlearnError:
            return True
        known = set(self.registry.names()) | {INJECT_SECTION}
        return not set(self._config_file_sections()) <= known

    def resolve_methods(self) -> None:
        """Resolve --unlearn-method and check --unlearn-config against the registry; a bad
        YAML section fails now, not after training."""
        self.methods = self.registry.resolve(self.settings.methods)
        self._yaml = self._read_config_file()
        for name in self.methods:
            if name in self._yaml:
                self.method_config(name)  # methods without a section stay unloaded until used
        if INJECT_SECTION in self._yaml:
            self.injection_config()

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

            cache = ModelCache(self.settings.cache_dir, rebuild=self.settings.rebuild,
                               progress=self.progress)
            cache.clean_stale_staging()
            self._pipeline = Pipeline(self.settings, cache, self.progress,
                                      self.injection_config())
        return self._pipeline

    def injection_config(self) -> InjectionConfig:
        """The knowledge injection in force: paper Table 7 (LoRA) and the tiny model's
        settings, with the config file's ``inject`` section applied."""
        from .pipeline import InjectionConfig

        section = (self._yaml or {}).get(INJECT_SECTION)
        if section is None:
            return InjectionConfig()
        return InjectionConfig().overridden(section, str(self.settings.config_path))

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

    def unlearned_model(self, domain: str, method: str, seed: int | None = None) -> ModelHandle:
        """The model after ``method`` ran with ``seed`` (default: --unlearn-seed); 'none' is
        the vanilla model."""
        if domain in self.general_domains and (method != "none" or self.settings.reference):
            # The reference's scores first, so that only one model is in memory at a time
            # (for 'none' without --unlearn-reference, this model is the reference).
            self.reference_general_scores(domain)
        data = self.domain_data(domain)
        if method == "none":
            return self.pipeline.load_vanilla(data)
        return self.pipeline.load_unlearned(data, method, self.registry.get(method),
                                            self.method_config(method),
                                            self.settings.seed if seed is None else seed)

    def model_key(self, domain: str, method: str, seed: int | None = None) -> str:
        """The cache key of the model ``unlearned_model`` gives, known without loading it
        (computed once per model: every item test asks)."""
        from .cache import cache_key

        seed = self.settings.seed if seed is None else seed
        if (domain, method, seed) not in self._model_keys:
            data = self.domain_data(domain)
            payload = (self.pipeline.vanilla_payload(data) if method == "none" else
                       self.pipeline.unlearned_payload(data, method, self.registry.get(method),
                                                       self.method_config(method), seed))
            self._model_keys[(domain, method, seed)] = cache_key(payload)
        return self._model_keys[(domain, method, seed)]

    def relearned_key(self, domain: str, method: str, seed: int) -> str:
        """The cache key of the model after the relearning attack, known without loading."""
        from .cache import cache_key

        memo = (domain, f"{method} relearned", seed)
        if memo not in self._model_keys:
            self._model_keys[memo] = cache_key(self.pipeline.relearned_payload(
                self.domain_data(domain), self.model_key(domain, method, seed), seed))
        return self._model_keys[memo]

    def relearned_model(self, domain: str, method: str, seed: int) -> ModelHandle:
        """The unlearned model after the relearning attack (--unlearn-attack)."""
        return self.pipeline.load_relearned(
            self.domain_data(domain), lambda: self.unlearned_model(domain, method, seed),
            self.model_key(domain, method, seed), seed)

    def build_models(self, needed: dict[tuple[str, str, int], ModelNeeds]) -> list[str]:
        """Build (or find in the cache) each model of ``needed`` (domain, method, seed), and
        compute (or find) what its tests read: item scores, leak generations, general-task
        scores, the model after the relearning attack and its scores (--unlearn-build-only).
        One line per model says what was done. Under a launcher every process takes part,
        in the same order."""
        lines = []
        for (domain, method, seed), needs in needed.items():
            data = self.domain_data(domain)
            kind = "vanilla" if method == "none" else "unlearned"
            key = self.model_key(domain, method, seed)
            cached = self.pipeline.cache.lookup(kind, key) is not None

            def load(method: str = method, seed: int = seed) -> ModelHandle:
                if method == "none":
                    return self.pipeline.load_vanilla(data)
                return self.pipeline.load_unlearned(data, method, self.registry.get(method),
                                                    self.method_config(method), seed)

            if needs.general:  # the reference's scores first: one model in memory at a time
                self.reference_general_scores(domain)
            model = _HeldOnce(load)
            try:
                model.get()
                ready = self._prepare(domain, key, model.get, needs.prompts, needs.leak,
                                      needs.general)
            finally:
                model.release()
            lines.append(f"{domain} {method} seed {seed}: "
                         f"{'in the cache' if cached else 'built'} ({key[:12]}){ready}")
            if needs.attack:
                key = self.relearned_key(domain, method, seed)
                cached = self.pipeline.cache.lookup("unlearned", key) is not None
                relearned = _HeldOnce(lambda: self.pipeline.load_relearned(
                    data, load, self.model_key(domain, method, seed), seed))
                try:
                    relearned.get()
                    ready = self._prepare(domain, key, relearned.get,
                                          {DEFAULT_PROMPT} if needs.attack_scores else set(),
                                          False, False)
                finally:
                    relearned.release()
                lines.append(f"{domain} {method} seed {seed} after the relearning attack: "
                             f"{'in the cache' if cached else 'built'} ({key[:12]}){ready}")
        return lines

    def _prepare(self, domain: str, key: str, load: Callable[[], ModelHandle],
                 prompts: set[str], leak: bool, general: bool) -> str:
        """Compute (or find in the cache) a model's item scores under ``prompts``, its leak
        generations and its general-task scores; say which, for the build-only summary."""
        done = []
        for prompt in sorted(prompts):
            self.item_scores(domain, key, load, prompt)
            done.append(f"item scores ({prompt})")
        if leak:  # with --unlearn-max-new-tokens=0 this is the leak tests' error, now
            self.leak_generations(domain, key, load)
            done.append("leak generations")
        if general:
            self.model_general_scores(key, load)
            done.append("general tasks")
        return f"; scored: {', '.join(done)}" if done else ""

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

    def general_scores(self, handle: ModelHandle) -> dict[str, Any] | None:
        """lm-eval scores of an in-memory model on every selected task. Under a launcher the
        processes split the work, and only the main one gets the scores (None elsewhere)."""
        from .distributed import world
        from .general_tasks import evaluate, write_builtin_tasks

        folder = self.settings.cache_dir / "general_tasks"
        write_builtin_tasks(folder)
        tasks = self.general_task_names()
        self.progress(f"general tasks: {', '.join(tasks)} "
                      f"(limit {self.settings.general_limit or 'none'})")
        return evaluate(handle.model, handle.tokenizer, tasks, include_path=folder,
                        limit=self.settings.general_limit, world=world())

    def model_general_scores(self, model_key: str, load: Callable[[], ModelHandle],
                             release: bool = False) -> dict[str, Any]:
        """General-task scores of the model with ``model_key``: from memory, then from the
        cache, else ``load()`` it and evaluate (then cache). ``release``: the model is
        loaded for this alone and freed after (not a fixture's model)."""
        import json
        from importlib.metadata import version

        if model_key not in self._general:
            payload = {"kind": "model_general_scores", "model": model_key,
                       "tasks": self.general_task_names(), "limit": self.settings.general_limit,
                       "lm_eval": version("lm_eval"), "pytest_unlearn": __version__}

            def build(folder: Path) -> None:
                handle = load()
                try:
                    scores = self.general_scores(handle)
                finally:
                    if release:
                        handle.release()
                if scores is not None:  # None: another process than the main one
                    (folder / "scores.json").write_text(json.dumps(scores, indent=1))

            path, _ = self.pipeline.cache.get_or_build(
                "scores", payload, build, f"the general-task scores of model {model_key[:12]}")
            self._general[model_key] = json.loads((path / "scores.json").read_text())
        return self._general[model_key]

    def reference_general_scores(self, domain: str) -> dict[str, Any]:
        """Scores of the model that relative thresholds compare against: --unlearn-reference
        if given, else the vanilla model. Cached on disk, like the models."""
        from .cache import cache_key

        pipeline = self.pipeline
        if self.settings.reference is not None:
            from .models import ModelSpec

            key = cache_key({"kind": "reference", "model": ModelSpec.parse(
                self.settings.reference).fingerprint(pipeline.cache.file_hashes),
                "dtype": str(pipeline.dtype)})
            load: Callable[[], ModelHandle] = pipeline.load_reference
        else:
            data = self.domain_data(domain)
            key = self.model_key(domain, "none")

            def load() -> ModelHandle:
                return pipeline.load_vanilla(data)
        return self.model_general_scores(key, load, release=True)

    def method_log(self, cache_key: str | None) -> dict[str, Any] | None:
        """The method log stored with an unlearned model's cache entry, if there is one."""
        import json

        from .cache import ModelCache

        if not cache_key:
            return None
        entry = ModelCache(self.settings.cache_dir).entry_path("unlearned", cache_key)
        log_file = entry / "method_log.json"
        return json.loads(log_file.read_text()) if log_file.is_file() else None

    def item_scores(self, domain: str, model_key: str, load: Callable[[], ModelHandle],
                    prompt: str = DEFAULT_PROMPT) -> list[ItemScore]:
        """Scores of every val item of the domain by the model with ``model_key``, asked
        under the ``prompt`` variant: from memory, then from the cache, else ``load()`` the
        model and score it in batches (then cache). A re-run of an unchanged suite so loads
        no model at all."""
        import dataclasses
        import json

        from .pipeline import MAX_LENGTH, library_versions
        from .prompts import prompt_prefix
        from .scoring import ItemScore

        memory_key = (domain, model_key, prompt)  # a model tested as it is serves both
        if memory_key not in self._scores:
            data = self.domain_data(domain)
            ids = [item.id for item in data.items()]
            prefix = prompt_prefix(prompt, domain)
            payload = {"kind": "item_scores", "scoring": SCORING_VERSION, "model": model_key,
                       "data": data.content_hash(),
                       "prefix": prefix, "max_length": MAX_LENGTH,
                       "max_new_tokens": self.settings.max_new_tokens,
                       "batch_size": self.settings.score_batch_size,
                       "versions": library_versions()}

            def build(folder: Path) -> None:
                scores = self._compute_item_scores(load(), domain, prompt, prefix)
                if scores is not None:  # None: another process than the main one
                    (folder / "item_scores.json").write_text(json.dumps(
                        {"items": ids, "scores": [dataclasses.asdict(each) for each in scores]}))

            path, built = self.pipeline.cache.get_or_build(
                "scores", payload, build,
                f"the {domain} item scores of model {model_key[:12]} (prompt {prompt})")
            if not built:
                self.progress(f"score {domain}: {len(ids)} items, prompt {prompt}, from the "
                              f"cache (model {model_key[:12]})")
            stored = json.loads((path / "item_scores.json").read_text())
            if stored["items"] != ids:
                raise UnlearnError(f"cache entry {path} scores other items than the {domain} "
                                   "data; delete it or run with --unlearn-rebuild")
            self._scores[memory_key] = [ItemScore(**each) for each in stored["scores"]]
        return self._scores[memory_key]

    def _compute_item_scores(self, handle: ModelHandle, domain: str, prompt: str,
                             prefix: str) -> list[ItemScore] | None:
        """Every val item's score, in data order. Under a launcher each process scores
        every N-th item and the main one gathers them all; the others get None."""
        from .distributed import world

        group = world()
        items = self.domain_data(domain).items()
        if group is None:
            return self._score_items(handle, domain, items, prompt, prefix)
        shares = group.gather_to_main(self._score_items(handle, domain, group.share(items),
                                                        prompt, prefix))
        if shares is None:
            return None
        scores: list[ItemScore] = [None] * len(items)  # type: ignore[list-item]
        for rank, share in enumerate(shares):
            scores[rank:: group.size] = share
        return scores

    def _score_items(self, handle: ModelHandle, domain: str, items: Sequence[Item],
                     prompt: str, prefix: str) -> list[ItemScore]:
        import dataclasses

        from .encoding import encode_all
        from .pipeline import MAX_LENGTH
        from .scoring import generate, rouge_l, score

        encoded = encode_all(handle.tokenizer, [item.record for item in items], MAX_LENGTH,
                             f"{domain} val", prefix)
        self.progress(f"score {domain}: {len(items)} items, prompt {prompt}")
        batch_size = self.settings.score_batch_size
        scores = score(handle.model, encoded, handle.pad_id, batch_size)
        if self.settings.max_new_tokens > 0:
            self.progress(f"generate {domain}: {len(items)} items, up to "
                          f"{self.settings.max_new_tokens} new tokens")
            prompts = [enc.input_ids[: enc.prompt_length] for enc in encoded]
            lengths = [min(enc.answer_length, self.settings.max_new_tokens) for enc in encoded]
            generations = generate(handle.model, handle.tokenizer, prompts, lengths,
                                   handle.pad_id, batch_size)
            rouge = rouge_l([item.record.answer for item in items], generations)
            scores = [dataclasses.replace(each, generation=text, rouge_l=value)
                      for each, text, value in zip(scores, generations, rouge)]
        return scores

    def generations_of(self, domain: str, model_key: str, item: Item,
                       load: Callable[[], ModelHandle]) -> list[str]:
        """The model's greedy generation for an unlearn val item, then its
        --unlearn-leak-samples sampled ones (seeded); cached like the scores."""
        return self.leak_generations(domain, model_key, load)[item.id]

    def leak_generations(self, domain: str, model_key: str, load: Callable[[], ModelHandle],
                         ) -> dict[str, list[str]]:
        """``generations_of`` for every unlearn val item, by item id."""
        import json

        from .distributed import main_process
        from .pipeline import MAX_LENGTH, library_versions

        if self.settings.max_new_tokens == 0:
            raise UnlearnError("the leak tests read the model's generations, and "
                               "--unlearn-max-new-tokens=0 turns generation off; give it a "
                               "positive value or deselect them with -m 'not leak'")
        if (domain, model_key) not in self._generations:
            data = self.domain_data(domain)
            items = [each for each in data.items() if each.scope == "unlearn"]
            payload = {"kind": "leak_generations", "model": model_key,
                       "data": data.content_hash(), "max_length": MAX_LENGTH,
                       "max_new_tokens": self.settings.max_new_tokens,
                       "samples": self.settings.leak_samples, "seed": self.settings.seed,
                       "batch_size": self.settings.score_batch_size,
                       "versions": library_versions()}

            def build(folder: Path) -> None:
                handle = load()  # every process loads: loading is collective under a launcher
                if not main_process():
                    return  # sampling is not split across processes; the main one does it
                texts = self._compute_generations(handle, domain, items)
                (folder / "generations.json").write_text(json.dumps(
                    {"items": [each.id for each in items], "generations": texts}))

            path, _ = self.pipeline.cache.get_or_build(
                "scores", payload, build,
                f"the {domain} leak generations of model {model_key[:12]}")
            stored = json.loads((path / "generations.json").read_text())
            self._generations[(domain, model_key)] = dict(zip(stored["items"],
                                                              stored["generations"]))
        return self._generations[(domain, model_key)]

    def _compute_generations(self, handle: ModelHandle, domain: str,
                             items: list[Item]) -> list[list[str]]:
        from .encoding import encode_all
        from .pipeline import MAX_LENGTH
        from .scoring import generate, sample

        encoded = encode_all(handle.tokenizer, [each.record for each in items], MAX_LENGTH,
                             f"{domain} leak")
        prompts = [enc.input_ids[: enc.prompt_length] for enc in encoded]
        lengths = [min(enc.answer_length, self.settings.max_new_tokens) for enc in encoded]
        batch_size = self.settings.score_batch_size
        self.progress(f"leak {domain}: greedy and {self.settings.leak_samples} sampled "
                      f"generations of {len(items)} items")
        greedy = generate(handle.model, handle.tokenizer, prompts, lengths, handle.pad_id,
                          batch_size)
        sampled: list[list[str]] = [[] for _ in items]
        if self.settings.leak_samples:
            sampled = sample(handle.model, handle.tokenizer, prompts, lengths, handle.pad_id,
                             self.settings.leak_samples, self.settings.seed,
                             batch_size=batch_size)
        return [[text, *more] for text, more in zip(greedy, sampled)]

    def score_of(self, domain: str, model_key: str, item: Item,
                 load: Callable[[], ModelHandle], prompt: str = DEFAULT_PROMPT) -> ItemScore:
        if item.domain not in self._positions:
            self._positions[item.domain] = {
                each.id: index for index, each in enumerate(self.domain_data(item.domain).items())}
        scores = self.item_scores(domain, model_key, load, prompt)
        return scores[self._positions[item.domain][item.id]]

    # --- config file -------------------------------------------------------------------

    def _config_file_sections(self) -> list[str]:
        return [str(name) for name in self._config_file_content()]

    def _config_file_content(self) -> dict[str, Any]:
        """The --unlearn-config file, read and checked to be a mapping (empty: no file)."""
        path: Path | None = self.settings.config_path
        if path is None:
            return {}
        import yaml

        from .data import read_utf8

        try:
            content = yaml.safe_load(read_utf8(path))
        except yaml.YAMLError as error:
            raise UnlearnError(f"{path}: not valid YAML: {error}") from None
        if content is None:
            return {}
        if not isinstance(content, dict):
            raise UnlearnError(f"{path}: expected a mapping of method names to their settings, "
                               f"got {type(content).__name__}")
        return content

    def _read_config_file(self) -> dict[str, Any]:
        content = self._config_file_content()
        path = self.settings.config_path
        known = self.registry.names()
        if INJECT_SECTION in known and INJECT_SECTION in content:
            raise UnlearnError(f"{path}: section {INJECT_SECTION!r} is reserved for knowledge "
                               "injection, but a registered method has that name too; rename "
                               "the method")
        for name, section in content.items():
            if name not in known and name != INJECT_SECTION:
                raise UnlearnError(f"{path}: section {name!r} names no registered method nor "
                                   f"{INJECT_SECTION!r}; methods are: {', '.join(known)}")
            if not isinstance(section, dict):
                raise UnlearnError(f"{path}: section {name!r} must be a mapping of config keys "
                                   f"to values, got {type(section).__name__}")
        return content
