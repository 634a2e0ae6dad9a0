"""Per-run state: settings, methods, data, the model pipeline and the collected outcomes.

One `UnlearnSession` is stored in ``config.stash`` by the plugin; nothing lives in module
globals.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

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
        self._yaml: dict[str, Any] | None = None

    def start(self, registry: MethodRegistry) -> None:
        """Called at session start, once conftest registrations are in."""
        self.registry = registry
        self.methods = registry.resolve(self.settings.methods)
        self._yaml = self._read_config_file()

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

    def method_config(self, name: str) -> Any:
        from .method import make_config

        method_class = self.registry.get(name)
        section = (self._yaml or {}).get(name, {})
        source = str(self.settings.config_path) if self.settings.config_path else "config"
        return make_config(method_class, self.pipeline.spec.family, section, source)

    def unlearned_model(self, domain: str, method: str) -> ModelHandle:
        data = self.domain_data(domain)
        method_class = self.registry.get(method)
        config = self.method_config(method)
        if method == "none":
            handle = self.pipeline.load_vanilla(data)
        else:
            handle = self.pipeline.load_unlearned(data, method, method_class, config)
        return handle

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
        from .encoding import encode_all
        from .pipeline import MAX_LENGTH
        from .scoring import score

        if handle.cache_key not in self._scores:
            items = self.domain_data(domain).items()
            encoded = encode_all(handle.tokenizer, [item.record for item in items], MAX_LENGTH,
                                 f"{domain} val")
            self.progress(f"score {domain}: {len(items)} items")
            self._scores[handle.cache_key] = score(handle.model, encoded, handle.pad_id)
        return self._scores[handle.cache_key]

    def score_of(self, handle: ModelHandle, item: Item) -> ItemScore:
        items = self.domain_data(item.domain).items()
        position = next(i for i, each in enumerate(items) if each.id == item.id)
        return self.item_scores(handle, item.domain)[position]

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
        for name in self.methods:
            if name in content:
                self.method_config_check(name, content[name], path)
        return content

    def method_config_check(self, name: str, section: dict[str, Any], path: Path) -> None:
        from .method import make_config

        # Checks keys and types at start-up, before any model is loaded.
        family = _family_without_loading(self.settings.model)
        make_config(self.registry.get(name), family, section, str(path))


def _family_without_loading(model: str) -> str:
    from .models import ModelSpec

    return ModelSpec.parse(model).family
