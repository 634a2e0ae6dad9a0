"""Teacher-forced scoring of answers, and the metrics built from per-item scores.

One forward pass per length-bucketed batch yields, per item, the token accuracy (the share of
answer tokens that are the model's argmax), exact recall (all of them are), and the mean
answer-token log-probability (for perplexity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .encoding import IGNORE_INDEX, Encoded, collate, length_buckets

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class ItemScore:
    """What the model does on one item's answer, teacher-forced."""

    token_accuracy: float
    mean_logprob: float
    answer_tokens: int

    def recalled(self, threshold: float) -> bool:
        """Recall under a criterion: threshold 1.0 is 'exact', else 'token>=threshold'."""
        if threshold >= 1.0:
            return self.token_accuracy == 1.0
        return self.token_accuracy >= threshold


def answer_token_losses(logits: torch.Tensor, labels: torch.Tensor,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of the next-token labels, and the mask of answer tokens.

    Position t predicts label t+1. Both outputs have shape (batch, length - 1).
    """
    import torch.nn.functional as F

    shifted_logits = logits[:, :-1, :]
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    losses = F.cross_entropy(shifted_logits.transpose(1, 2).float(),
                             shifted_labels.clamp(min=0), reduction="none")
    return losses * mask, mask


def per_item_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean answer-token negative log-likelihood of each item in the batch, shape (batch,)."""
    losses, mask = answer_token_losses(logits, labels)
    return losses.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def score(model: PreTrainedModel, encoded: Sequence[Encoded], pad_id: int,
          batch_size: int = 32) -> list[ItemScore]:
    """Score every encoded record; results are in the order of ``encoded``."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results: list[ItemScore | None] = [None] * len(encoded)
    try:
        with torch.inference_mode():
            for indices in length_buckets(encoded, batch_size):
                batch = collate([encoded[i] for i in indices], pad_id, device)
                logits = model(input_ids=batch["input_ids"],
                               attention_mask=batch["attention_mask"]).logits
                losses, mask = answer_token_losses(logits, batch["labels"])
                hits = (logits[:, :-1, :].argmax(dim=-1) == batch["labels"][:, 1:]) & mask
                counts = mask.sum(dim=1)
                for row, index in enumerate(indices):
                    n = int(counts[row])
                    results[index] = ItemScore(
                        token_accuracy=float(hits[row].sum()) / n,
                        mean_logprob=-float(losses[row].sum()) / n,
                        answer_tokens=n)
    finally:
        model.train(was_training)
    return [result for result in results if result is not None]


def perplexity(mean_logprobs: Sequence[float]) -> float:
    """Paper Eq. 5: exp of minus the mean over items of the mean answer-token log-prob."""
    if not mean_logprobs:
        return math.nan
    return math.exp(-sum(mean_logprobs) / len(mean_logprobs))
