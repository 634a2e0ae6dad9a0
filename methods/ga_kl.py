"""``ga_kl_id`` and ``ga_kl_ood``: gradient ascent on forget items, plus the divergence of
the current model from the frozen starting model on retain items.

Items are interleaved as in GA+GD. A forget item's loss is -NLL; a retain item's loss is
the mean over its positions of KL(p_start || p_now) (the reference uses the cross-entropy
against the frozen model, which has the same gradient). The starting model is kept as a
copy of the trainable tensors only, taken when training starts (under FSDP, each process's
shards of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pytest_unlearn.api import (
    FrozenReference,
    MethodResult,
    TrainSettings,
    UnlearnContext,
    UnlearningMethod,
    WeightedItem,
    answer_nll,
    encode_records,
    interleave,
    is_sharded,
    kl_to_reference,
    pad_token_id,
    train_and_report,
)
from pytest_unlearn_methods.presets import TINY_LR


@dataclass(frozen=True)
class GaKlConfig(TrainSettings):
    """The paper's baseline settings (inherited) and the weight of the KL term."""

    kl_weight: float = 1.0


class _GaKl(UnlearningMethod[GaKlConfig]):
    config_class = GaKlConfig
    # Sharded (FSDP), every batch runs the same passes (see item_losses), and the frozen
    # reference swaps each process's shards.
    fsdp_compatible = True
    retain_source = "retain"

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        retain = encode_records(context, getattr(context, self.retain_source), "retain")
        items = interleave(forget, retain, -1.0, self.config.kl_weight)
        reference = FrozenReference(
            model, [n for n, p in model.named_parameters() if p.requires_grad]
        )

        def item_losses(batch: Sequence[WeightedItem]) -> torch.Tensor:
            losses = torch.zeros(len(batch), device=next(model.parameters()).device)
            forget_rows = [i for i, item in enumerate(batch) if item.kind == "forget"]
            retain_rows = [i for i, item in enumerate(batch) if item.kind == "retain"]
            # Sharded, each pass of the model communicates with every process, so every
            # batch runs both kinds' passes: a kind the batch lacks on its first item, at 0.
            uniform = is_sharded(model)
            if forget_rows or uniform:
                rows, scale = (forget_rows, 1.0) if forget_rows else ([0], 0.0)
                nll = answer_nll(model, [batch[i].encoded for i in rows], pad)
                losses = losses.index_add(
                    0, _rows(rows, losses), scale * _weights(batch, rows, losses) * nll
                )
            if retain_rows or uniform:
                rows, scale = (retain_rows, 1.0) if retain_rows else ([0], 0.0)
                kl = kl_to_reference(model, reference, [batch[i].encoded for i in rows], pad)
                losses = losses.index_add(
                    0, _rows(rows, losses), scale * _weights(batch, rows, losses) * kl
                )
            return losses

        result = train_and_report(
            context,
            self.name,
            self.config,
            items,
            item_losses,
            on_start=reference.capture,
            retain_source=self.retain_source,
        )
        # Starting values this process held: all of them, or under FSDP its shards of them.
        result.log["reference_numel"] = reference.held_numel()
        return result


def _rows(rows: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, device=like.device)


def _weights(batch: Sequence[WeightedItem], rows: list[int], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor([batch[i].weight for i in rows], dtype=like.dtype, device=like.device)


class GaKlInDistribution(_GaKl):
    name = "ga_kl_id"
    presets = {"tiny": {"lr": TINY_LR["ga_kl_id"]}}
    retain_source = "retain"


class GaKlOutOfDistribution(_GaKl):
    name = "ga_kl_ood"
    presets = {"tiny": {"lr": TINY_LR["ga_kl_ood"]}}
    retain_source = "general"
