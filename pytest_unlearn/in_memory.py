"""A model handed over in memory (``pytest_unlearn.evaluate``): where the plugin loads a hub
id, folder or .gguf file, the pipeline takes a copy of this model instead, and everything
after that (injection, unlearning, the attack, scoring, the cache) is the same.

Its cache key is the sha256 of its weights and tokenizer, so a notebook that evaluates the
same model twice loads the second time what the first built, and a model changed in place
(one more fine-tuning step) is a new key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UnlearnError
from .models import ModelSpec

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MEMORY_KIND = "memory"


@dataclass
class InMemoryModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str = ""  # how reports name it; default: the model's name_or_path or class
    _fingerprint: dict[str, Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not hasattr(self.model, "parameters") or not hasattr(self.model, "config"):
            raise UnlearnError(
                f"evaluate(model=...): expected a transformers PreTrainedModel, got "
                f"{type(self.model).__name__}; load one with "
                "AutoModelForCausalLM.from_pretrained(...)"
            )
        if not callable(self.tokenizer):
            raise UnlearnError(
                f"evaluate(tokenizer=...): expected a transformers tokenizer, got "
                f"{type(self.tokenizer).__name__}; load one with AutoTokenizer.from_pretrained"
            )
        if not self.name:
            self.name = str(
                getattr(self.model.config, "_name_or_path", "") or type(self.model).__name__
            )

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(f"in-memory {self.name}", MEMORY_KIND, self.name)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def fingerprint(self) -> dict[str, Any]:
        """The sha256 of every tensor (name, dtype, shape, bytes) and of the tokenizer, for
        cache keys; computed once per object (hand over a new one after changing it)."""
        if self._fingerprint is None:
            import torch

            weights = hashlib.sha256()
            for name, tensor in sorted(self.model.state_dict().items()):
                data = tensor.detach().contiguous().cpu()
                weights.update(f"{name}|{data.dtype}|{tuple(data.shape)}|".encode())
                weights.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._fingerprint = {
                "kind": MEMORY_KIND,
                "architecture": type(self.model).__name__,
                "weights": weights.hexdigest(),
                "tokenizer": hashlib.sha256(_tokenizer_text(self.tokenizer).encode()).hexdigest(),
            }
        return self._fingerprint

    def copy(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """A deep copy of the model (methods change the model they get; the caller's stays
        as it is) and the tokenizer, which nothing changes."""
        return copy.deepcopy(self.model), self.tokenizer


def _tokenizer_text(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return str(backend.to_str())
    return json.dumps(sorted(tokenizer.get_vocab().items()))
