"""``random_labels``: fine-tune toward uniformly random labels on the forget answers.

``label_positions: all`` puts a random label on every non-special position of the record,
the question included, as the reference code does (the paper says only "random labels");
the default, ``answer``, on the answer's tokens only, which the published figures used.
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
    random_token_ids,
    special_token_ids,
    train_and_report,
    with_random_targets,
)
from pytest_unlearn_methods.presets import TINY_LR

LABEL_POSITIONS = ("answer", "all")


@dataclass(frozen=True)
class RandomLabelsConfig(TrainSettings):
    """The paper's baseline settings (inherited); labels are drawn once, with the seed, on
    the answer's tokens (``label_positions: answer``) or on every non-special position,
    the question too (``all``, the reference code's way)."""

    label_positions: str = "answer"

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.label_positions not in LABEL_POSITIONS:
            problems.append(
                f"label_positions must be one of {', '.join(LABEL_POSITIONS)} "
                f"(got {self.label_positions!r})"
            )
        return problems


class RandomLabels(UnlearningMethod[RandomLabelsConfig]):
    name = "random_labels"
    config_class = RandomLabelsConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_LR["random_labels"]}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        vocab_size = model.get_input_embeddings().weight.shape[0]
        choices = random_token_ids(context.tokenizer, vocab_size)
        question_too = (
            frozenset(special_token_ids(context.tokenizer))
            if self.config.label_positions == "all"
            else None
        )
        targets = with_random_targets(forget, choices, context.seed, question_too)
        return train_and_report(
            context, self.name, self.config, targets, lambda batch: answer_nll(model, batch, pad)
        )
