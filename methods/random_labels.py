"""``random_labels``: fine-tune toward uniformly random labels on the forget answers."""

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
    random_token_ids,
    train_and_report,
    with_random_targets,
)
from pytest_unlearn_methods.presets import TINY_BASELINE_LR


@dataclass(frozen=True)
class RandomLabelsConfig(TrainSettings):
    """The paper's baseline settings (inherited); labels are drawn once, with the seed."""


class RandomLabels(UnlearningMethod[RandomLabelsConfig]):
    name = "random_labels"
    config_class = RandomLabelsConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_BASELINE_LR}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        vocab_size = model.get_input_embeddings().weight.shape[0]
        choices = random_token_ids(context.tokenizer, vocab_size)
        targets = with_random_targets(forget, choices, context.seed)
        return train_and_report(
            context, self.name, self.config, targets, lambda batch: answer_nll(model, batch, pad)
        )
