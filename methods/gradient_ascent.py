"""``gradient_ascent``: minimize -NLL of the Unlearn Scope's train answers (paper baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_unlearn.encoding import encode_all
from pytest_unlearn.method import MethodResult, UnlearnContext, UnlearningMethod
from pytest_unlearn.models import pad_token_id
from pytest_unlearn.training import TrainSettings, Trainer, answer_nll


@dataclass(frozen=True)
class GradientAscentConfig(TrainSettings):
    """The paper's baseline settings: 2 epochs, batch 1, accumulation 16, lr 5e-5, cosine,
    3% warmup (inherited from TrainSettings)."""


class GradientAscent(UnlearningMethod):
    name = "gradient_ascent"
    config_class = GradientAscentConfig
    # The paper's lr (5e-5, for a 7B LoRA) does nothing to the fully trained tiny model;
    # 5e-4 is the smallest lr that unlearns at least 90% of the builtin privacy unlearn
    # scope (benchmarks/sweep.py; docs/results.md).
    presets = {"tiny": {"lr": 5e-4}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_all(context.tokenizer, context.forget, context.max_length, "forget")
        trainer = Trainer(model, forget, lambda batch: -answer_nll(model, batch, pad),
                          self.config, context.seed, f"{self.name} {context.domain}",
                          context.progress)
        log = trainer.run()
        return MethodResult(model, {"train": log.to_dict()})
