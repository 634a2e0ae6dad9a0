"""``npo``: Negative Preference Optimization (Zhang et al., 2024, "Negative Preference
Optimization: From Catastrophic Collapse to Effective Unlearning").

Each forget item's loss is

    -(2 / beta) * log sigmoid(-beta * (log p_theta(y|x) - log p_ref(y|x)))

where log p is the summed answer-token log-probability, teacher-forced, and ref is the
frozen model at the start of unlearning. Its gradient is gradient ascent's, weighted by
2 * sigmoid(beta * log-ratio): the weight fades as an item is forgotten, which is what keeps
NPO from collapsing the model the way plain gradient ascent does. As beta -> 0 the loss
becomes gradient ascent on log p.

The reference is fixed, so its log-probabilities are computed once, before training, in
eval mode (no dropout); no copy of the model is kept.

``retain_weight > 0`` adds the paper's retain term (NPO+RT): retain items are interleaved
with the forget items as in GA+GD (f0 r0 f1 r1 ...), each with loss retain_weight * NLL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pytest_unlearn.api import (
    Encoded,
    MethodResult,
    TrainSettings,
    UnlearnContext,
    UnlearnError,
    UnlearningMethod,
    answer_logprob_and_length,
    encode_records,
    pad_token_id,
    train_and_report,
)
from pytest_unlearn_methods.presets import TINY_LR


@dataclass(frozen=True)
class NpoConfig(TrainSettings):
    """The paper's baseline settings (inherited), NPO's inverse temperature, and the weight
    of the optional retain NLL term (0: pure NPO; > 0: NPO+RT)."""

    beta: float = 0.1
    retain_weight: float = 0.0

    def problems(self) -> list[str]:
        problems = super().problems()
        if not (math.isfinite(self.beta) and self.beta > 0):
            problems.append(f"beta must be a finite number > 0 (got {self.beta})")
        if not (math.isfinite(self.retain_weight) and self.retain_weight >= 0):
            problems.append(
                f"retain_weight must be a finite number >= 0 (got {self.retain_weight})"
            )
        return problems


@dataclass(frozen=True)
class NpoItem:
    """An encoded record, its kind, and (forget items only) the reference's log p(y|x)."""

    encoded: Encoded
    kind: str  # "forget" or "retain"
    reference_logprob: float = math.nan


class Npo(UnlearningMethod[NpoConfig]):
    name = "npo"
    config_class = NpoConfig
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_LR["npo"]}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        config = self.config
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        reference = reference_logprobs(model, forget, pad, config.micro_batch_size)
        items = [NpoItem(encoded, "forget", logprob) for encoded, logprob in zip(forget, reference)]
        if config.retain_weight > 0:
            retain = encode_records(context, context.retain, "retain")
            items = with_retain_items(items, retain)

        def item_losses(batch: list[NpoItem]) -> torch.Tensor:
            logprob, length = answer_logprob_and_length(
                model, [item.encoded for item in batch], pad
            )
            is_forget = torch.tensor(
                [item.kind == "forget" for item in batch], device=logprob.device
            )
            reference_logprob = torch.tensor(
                [item.reference_logprob if item.kind == "forget" else 0.0 for item in batch],
                dtype=logprob.dtype,
                device=logprob.device,
            )
            npo = npo_loss(logprob, reference_logprob, config.beta)
            retain_nll = config.retain_weight * -logprob / length.clamp(min=1)
            return torch.where(is_forget, npo, retain_nll)

        return train_and_report(
            context,
            self.name,
            self.config,
            items,
            item_losses,
            objective="npo+rt" if config.retain_weight > 0 else "npo",
            reference_mean_logprob=sum(reference) / len(reference),
        )


def npo_loss(logprob: torch.Tensor, reference_logprob: torch.Tensor, beta: float) -> torch.Tensor:
    """-(2 / beta) * log sigmoid(-beta * (log p_theta - log p_ref)), per item."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logprob - reference_logprob))


def reference_logprobs(
    model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int, micro_batch_size: int
) -> list[float]:
    """log p(y|x) of every item under the model as it is now, in eval mode."""
    was_training = model.training
    model.eval()
    logprobs: list[float] = []
    with torch.no_grad():
        for start in range(0, len(encoded), micro_batch_size):
            batch = encoded[start : start + micro_batch_size]
            logprobs.extend(answer_logprob_and_length(model, batch, pad_id)[0].tolist())
    model.train(was_training)
    return logprobs


def with_retain_items(forget: Sequence[NpoItem], retain: Sequence[Encoded]) -> list[NpoItem]:
    """f0 r0 f1 r1 ...: one retain item after each forget item, cycling the retain items
    when they are fewer (as ``objectives.interleave`` pairs them for GA+GD)."""
    if not retain:
        raise UnlearnError("npo: retain_weight > 0 needs retain items, and there are none")
    items = []
    for index, item in enumerate(forget):
        items.extend([item, NpoItem(retain[index % len(retain)], "retain")])
    return items
