"""``adversarial``: fine-tune toward adversarial samples (paper Eq. 7).

Each answer token's label becomes the starting model's most likely token other than the
true one, a_i = argmax_{a != y_i} P(a | y_<i, x). The logits at position t predict token
t + 1; the labels here are aligned on that (the reference code is one token off).

``targets_from``: which model's predictions make the labels. ``start`` (the default, and
what the published figures used): the model unlearning starts from, after knowledge
injection, as Eq. 7 reads. ``base``: the model before injection, as the reference code
does (it draws them from the base chat model): a LoRA-injected model with its adapter
turned off. The tiny model has no such model (it is trained in full from random weights),
so ``base`` is an error there.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from pytest_unlearn.api import (
    MethodResult,
    TrainSettings,
    UnlearnContext,
    UnlearnError,
    UnlearningMethod,
    answer_nll,
    encode_records,
    pad_token_id,
    train_and_report,
    with_adversarial_targets,
)
from pytest_unlearn_methods.presets import TINY_LR

TARGETS_FROM = ("start", "base")


@dataclass(frozen=True)
class AdversarialConfig(TrainSettings):
    """The paper's baseline settings (inherited), and which model's predictions make the
    labels: ``start`` (the injected model) or ``base`` (before injection, the reference's)."""

    targets_from: str = "start"

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.targets_from not in TARGETS_FROM:
            problems.append(
                f"targets_from must be one of {', '.join(TARGETS_FROM)} (got {self.targets_from!r})"
            )
        return problems


class Adversarial(UnlearningMethod[AdversarialConfig]):
    name = "adversarial"
    config_class = AdversarialConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_LR["adversarial"]}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        with self._labelling_model(model):
            targets = with_adversarial_targets(model, forget, pad)
        return train_and_report(
            context, self.name, self.config, targets, lambda batch: answer_nll(model, batch, pad)
        )

    def _labelling_model(self, model: Any) -> contextlib.AbstractContextManager[Any]:
        """The model whose predictions make the labels: as it is, or (``base``) with its
        LoRA adapter turned off, which is the model before knowledge injection."""
        if self.config.targets_from == "start":
            return contextlib.nullcontext()
        disable = getattr(model, "disable_adapter", None)
        if disable is None:
            raise UnlearnError(
                "adversarial: targets_from: base draws the labels from the model before "
                "knowledge injection, which only a LoRA-injected model has (its adapter turned "
                f"off); this model ({type(model).__name__}) was trained in full, so it has "
                "none. Use targets_from: start (the default) with this model."
            )
        return disable()
