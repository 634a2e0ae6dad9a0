"""``gradient_ascent``: minimize -NLL of the Unlearn Scope's train answers (paper baseline)."""

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
)
from pytest_unlearn_methods.presets import TINY_LR


@dataclass(frozen=True)
class GradientAscentConfig(TrainSettings):
    """The paper's baseline settings: 2 epochs, batch 1, accumulation 16, lr 5e-5, cosine,
    3% warmup (inherited from TrainSettings)."""


class GradientAscent(UnlearningMethod[GradientAscentConfig]):
    name = "gradient_ascent"
    config_class = GradientAscentConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_LR["gradient_ascent"]}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        return train_and_report(
            context, self.name, self.config, forget, lambda batch: -answer_nll(model, batch, pad)
        )
