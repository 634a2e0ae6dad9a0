"""``ga_kl_id`` and ``ga_kl_ood``: gradient ascent on forget items, plus the divergence of
the current model from the frozen starting model on retain items.

Items are interleaved as in GA+GD. A forget item's loss is -NLL; a retain item's loss is
the mean over its positions of KL(p_start || p_now) (the reference uses the cross-entropy
against the frozen model, which has the same gradient). The starting model is kept as a
copy of the trainable tensors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from pytest_unlearn.method import MethodResult, UnlearnContext, UnlearningMethod
from pytest_unlearn.models import pad_token_id
from pytest_unlearn.objectives import (FrozenReference, WeightedItem, encode_records,
                                       interleave, kl_to_reference, train_and_report)
from pytest_unlearn.training import TrainSettings, answer_nll
from pytest_unlearn_methods.presets import TINY_BASELINE_LR


@dataclass(frozen=True)
class GaKlConfig(TrainSettings):
    """The paper's baseline settings (inherited) and the weight of the KL term."""

    kl_weight: float = 1.0


class _GaKl(UnlearningMethod):
    config_class = GaKlConfig
    # Not under FSDP: a batch runs the model once or three times depending on its items, and
    # the frozen reference swaps values into the model's tensors outside a forward pass.
    fsdp_compatible = False
    presets = {"tiny": {"lr": TINY_BASELINE_LR}}
    retain_source = "retain"

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        retain = encode_records(context, getattr(context, self.retain_source), "retain")
        items = interleave(forget, retain, -1.0, self.config.kl_weight)
        reference = FrozenReference(model, [n for n, p in model.named_parameters()
                                            if p.requires_grad])

        def item_losses(batch: Sequence[WeightedItem]) -> torch.Tensor:
            losses = torch.zeros(len(batch), device=next(model.parameters()).device)
            forget_rows = [i for i, item in enumerate(batch) if item.kind == "forget"]
            retain_rows = [i for i, item in enumerate(batch) if item.kind == "retain"]
            if forget_rows:
                nll = answer_nll(model, [batch[i].encoded for i in forget_rows], pad)
                losses = losses.index_add(0, _rows(forget_rows, losses),
                                          _weights(batch, forget_rows, losses) * nll)
            if retain_rows:
                kl = kl_to_reference(model, reference, [batch[i].encoded for i in retain_rows],
                                     pad)
                losses = losses.index_add(0, _rows(retain_rows, losses),
                                          _weights(batch, retain_rows, losses) * kl)
            return losses

        return train_and_report(context, self.name, self.config, items, item_losses,
                                retain_source=self.retain_source)


def _rows(rows: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, device=like.device)


def _weights(batch: Sequence[WeightedItem], rows: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([batch[i].weight for i in rows], dtype=like.dtype, device=like.device)


class GaKlInDistribution(_GaKl):
    name = "ga_kl_id"
    retain_source = "retain"


class GaKlOutOfDistribution(_GaKl):
    name = "ga_kl_ood"
    retain_source = "general"
