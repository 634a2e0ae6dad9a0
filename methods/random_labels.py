"""``random_labels``: fine-tune toward uniformly random labels on the forget answers."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_unlearn.encoding import encode_all
from pytest_unlearn.method import MethodResult, UnlearnContext, UnlearningMethod
from pytest_unlearn.models import pad_token_id
from pytest_unlearn.objectives import random_token_ids, with_random_targets
from pytest_unlearn.training import TrainSettings, Trainer, answer_nll


@dataclass(frozen=True)
class RandomLabelsConfig(TrainSettings):
    """The paper's baseline settings (inherited); labels are drawn once, with the seed."""


class RandomLabels(UnlearningMethod):
    name = "random_labels"
    config_class = RandomLabelsConfig
    presets = {"tiny": {"lr": 5e-4}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_all(context.tokenizer, context.forget, context.max_length, "forget")
        vocab_size = model.get_input_embeddings().weight.shape[0]
        choices = random_token_ids(context.tokenizer, vocab_size)
        targets = with_random_targets(forget, choices, context.seed)
        trainer = Trainer(model, targets, lambda batch: answer_nll(model, batch, pad),
                          self.config, context.seed, f"{self.name} {context.domain}",
                          context.progress)
        return MethodResult(model, {"train": trainer.run().to_dict()})
