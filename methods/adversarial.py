"""``adversarial``: fine-tune toward adversarial samples (paper Eq. 7).

Each answer token's label becomes the starting model's most likely token other than the
true one, a_i = argmax_{a != y_i} P(a | y_<i, x). The logits at position t predict token
t + 1; the labels here are aligned on that (the reference code is one token off).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_unlearn.api import (
    MethodResult,
    TrainSettings,
    UnlearnContext,
    UnlearningMethod,
    answer_nll,
    encode_records,
    pad_token_id,
    train_and_report,
    with_adversarial_targets,
)
from pytest_unlearn_methods.presets import TINY_BASELINE_LR


@dataclass(frozen=True)
class AdversarialConfig(TrainSettings):
    """The paper's baseline settings (inherited)."""


class Adversarial(UnlearningMethod[AdversarialConfig]):
    name = "adversarial"
    config_class = AdversarialConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_BASELINE_LR}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        targets = with_adversarial_targets(model, forget, pad)
        return train_and_report(
            context, self.name, self.config, targets, lambda batch: answer_nll(model, batch, pad)
        )
