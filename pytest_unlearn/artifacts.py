"""What the tests read of a model (item scores, leak generations, general-task scores):
from memory, then from the disk cache, else computed once (and cached).

Each artifact is a JSON file in a ``scores`` cache entry keyed by everything that
determines it (the model's cache key among them), so a rerun of an unchanged suite loads no
model at all: ``load`` is called only when an artifact must be computed. A computation that
fails with an `UnlearnError` (a model that does not load, a method that diverges) fails
again at once, with the same message, for every later test of the run that needs it,
rather than once per test.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Hashable
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from . import __version__
from .builtin_tasks import write_builtin_tasks
from .cache import ModelCache, library_versions
from .data import DomainData
from .distributed import main_process, world
from .errors import UnlearnError
from .general_tasks import evaluate
from .generation import leak_generations
from .models import ModelHandle
from .prompts import prompt_prefix
from .scoring import ItemScore, score_items
from .settings import Settings
from .vocabulary import DEFAULT_PROMPT, MAX_LENGTH

T = TypeVar("T")
# Part of the cache key of stored scores: raise it when scoring computes anything differently.
SCORING_VERSION = 5  # 4: torch's fused cross-entropy for the NLL; 5: on a CPU, one item at a time


def _same(value: Any) -> Any:
    return value


class Artifacts:
    def __init__(
        self,
        cache: ModelCache,
        settings: Settings,
        general_tasks: list[str],
        progress: Callable[[str], None],
    ) -> None:
        self.cache = cache
        self.settings = settings
        self.general_tasks = general_tasks
        self.progress = progress
        self._memory: dict[Hashable, Any] = {}
        self._failures: dict[Hashable, str] = {}

    def item_scores(
        self,
        data: DomainData,
        model_key: str,
        load: Callable[[], ModelHandle],
        prompt: str = DEFAULT_PROMPT,
    ) -> list[ItemScore]:
        """Scores of every val item of the domain by the model with ``model_key``, asked
        under the ``prompt`` variant (a model tested as it is serves both domains)."""
        items = data.items()
        ids = [item.id for item in items]
        payload = {
            "kind": "item_scores",
            "scoring": SCORING_VERSION,
            "model": model_key,
            "data": data.content_hash(),
            "prefix": prompt_prefix(prompt, data.domain),
            "max_length": MAX_LENGTH,
            "max_new_tokens": self.settings.max_new_tokens,
            "batch_size": self.settings.score_batch_size,
            "versions": library_versions(),
        }

        def compute() -> dict[str, Any] | None:
            handle = load()
            scores = score_items(
                handle.model,
                handle.tokenizer,
                [item.record for item in items],
                data.domain,
                prompt,
                self.settings.score_batch_size,
                self.settings.max_new_tokens,
                self.progress,
                world(),
            )
            if scores is None:  # another process than the main one
                return None
            return {"items": ids, "scores": [dataclasses.asdict(each) for each in scores]}

        def stored(content: dict[str, Any]) -> list[ItemScore]:
            if content["items"] != ids:
                raise UnlearnError(
                    f"a cache entry of model {model_key[:12]} scores other items than the "
                    f"{data.domain} data; run with --unlearn-rebuild"
                )
            return [ItemScore(**each) for each in content["scores"]]

        return self.get(
            ("item scores", data.domain, model_key, prompt),
            payload,
            f"the {data.domain} item scores of model {model_key[:12]} (prompt {prompt})",
            compute,
            "item_scores.json",
            stored,
            found=f"score {data.domain}: {len(ids)} items, prompt {prompt}, from the cache "
            f"(model {model_key[:12]})",
        )

    def leak_generations(
        self, data: DomainData, model_key: str, load: Callable[[], ModelHandle]
    ) -> dict[str, list[str]]:
        """The model's greedy generation for each unlearn val item, then its
        --unlearn-leak-samples sampled ones (seeded), by item id."""
        if self.settings.max_new_tokens == 0:
            raise UnlearnError(
                "the leak tests read the model's generations, and --unlearn-max-new-tokens=0 "
                "turns generation off; give it a positive value or deselect them with "
                "-m 'not leak'"
            )
        items = [each for each in data.items() if each.scope == "unlearn"]
        payload = {
            "kind": "leak_generations",
            "model": model_key,
            "data": data.content_hash(),
            "max_length": MAX_LENGTH,
            "max_new_tokens": self.settings.max_new_tokens,
            "samples": self.settings.leak_samples,
            "seed": self.settings.seed,
            "batch_size": self.settings.score_batch_size,
            "versions": library_versions(),
        }

        def compute() -> dict[str, Any] | None:
            handle = load()  # every process loads: loading is collective under a launcher
            if not main_process():
                return None  # sampling is not split across processes; the main one does it
            texts = leak_generations(
                handle.model,
                handle.tokenizer,
                [each.record for each in items],
                data.domain,
                self.settings.max_new_tokens,
                self.settings.leak_samples,
                self.settings.seed,
                self.settings.score_batch_size,
                self.progress,
            )
            return {"items": [each.id for each in items], "generations": texts}

        return self.get(
            ("leak generations", data.domain, model_key),
            payload,
            f"the {data.domain} leak generations of model {model_key[:12]}",
            compute,
            "generations.json",
            lambda content: dict(zip(content["items"], content["generations"])),
        )

    def general_scores(
        self, model_key: str, load: Callable[[], ModelHandle], release: bool = False
    ) -> dict[str, Any]:
        """lm-eval scores of the model with ``model_key`` on every selected task. Under a
        launcher the processes split the work. ``release``: the model is loaded for this
        alone and freed after (not a fixture's model)."""
        tasks, limit = self.general_tasks, self.settings.general_limit
        payload = {
            "kind": "model_general_scores",
            "model": model_key,
            "tasks": tasks,
            "limit": limit,
            "lm_eval": version("lm_eval"),
            "pytest_unlearn": __version__,
        }

        def compute() -> dict[str, Any] | None:
            folder = self.settings.cache_dir / "general_tasks"
            write_builtin_tasks(folder)
            handle = load()
            try:
                self.progress(f"general tasks: {', '.join(tasks)} (limit {limit or 'none'})")
                return evaluate(
                    handle.model,
                    handle.tokenizer,
                    tasks,
                    include_path=folder,
                    limit=limit,
                    world=world(),
                )
            finally:
                if release:
                    handle.release()

        return self.get(
            ("general scores", model_key),
            payload,
            f"the general-task scores of model {model_key[:12]}",
            compute,
            "scores.json",
        )

    def get(
        self,
        key: Hashable,
        payload: dict[str, Any],
        what: str,
        compute: Callable[[], Any | None],
        file: str,
        load: Callable[[Any], T] = _same,
        found: str = "",
    ) -> T:
        """The artifact ``key`` names in memory; else the ``file`` of the cache entry of
        ``payload``; else ``compute()`` it (None: this process is not the main one of a
        launch, which writes), store it there and read it back. ``load`` turns the stored
        JSON into the value kept in memory; ``found`` is said when the disk cache had it."""
        if key in self._memory:
            return self._memory[key]
        if key in self._failures:
            raise UnlearnError(self._failures[key])
        try:
            self._memory[key] = load(self._from_disk(payload, what, compute, file, found))
        except UnlearnError as error:
            self._failures[key] = str(error)
            raise
        return self._memory[key]

    def _from_disk(
        self,
        payload: dict[str, Any],
        what: str,
        compute: Callable[[], Any | None],
        file: str,
        found: str,
    ) -> Any:
        def build(folder: Path) -> None:
            value = compute()
            if value is not None:
                (folder / file).write_text(json.dumps(value))

        path, built = self.cache.get_or_build("scores", payload, build, what)
        if not built and found:
            self.progress(found)
        return json.loads((path / file).read_text())
