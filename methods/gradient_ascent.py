"""``gradient_ascent``: minimize -NLL of the Unlearn Scope's train answers (paper baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_unlearn.method import MethodResult, UnlearnContext, UnlearningMethod
from pytest_unlearn.models import pad_token_id
from pytest_unlearn.objectives import encode_records, train_and_report
from pytest_unlearn.training import TrainSettings, answer_nll
from pytest_unlearn_methods.presets import TINY_BASELINE_LR


@dataclass(frozen=True)
class GradientAscentConfig(TrainSettings):
    """The paper's baseline settings: 2 epochs, batch 1, accumulation 16, lr 5e-5, cosine,
    3% warmup (inherited from TrainSettings)."""


class GradientAscent(UnlearningMethod):
    name = "gradient_ascent"
    config_class = GradientAscentConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_BASELINE_LR}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        return train_and_report(context, self.name, self.config, forget,
                                lambda batch: -answer_nll(model, batch, pad))
