"""``ga_gd_id`` and ``ga_gd_ood``: gradient ascent on forget items, descent on retain items.

Forget and retain items are interleaved (f0 r0 f1 r1 ...), one retain item per forget
item; each item's loss is its factor times its NLL (-1 forget, +1 retain), averaged per
step. In-distribution (id) retain items are the domain's retention-train records;
out-of-distribution (ood) ones are general text outside the domain.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_unlearn.api import (
    MethodResult,
    TrainSettings,
    UnlearnContext,
    UnlearningMethod,
    encode_records,
    interleave,
    pad_token_id,
    train_and_report,
    weighted_nll,
)
from pytest_unlearn_methods.presets import TINY_LR


@dataclass(frozen=True)
class GaGdConfig(TrainSettings):
    """The paper's baseline settings (inherited) and the two loss factors."""

    forget_weight: float = -1.0
    retain_weight: float = 1.0


class _GaGd(UnlearningMethod[GaGdConfig]):
    config_class = GaGdConfig
    fsdp_compatible = True  # one forward pass per batch
    retain_source = "retain"

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        retain = encode_records(context, getattr(context, self.retain_source), "retain")
        items = interleave(forget, retain, self.config.forget_weight, self.config.retain_weight)
        return train_and_report(
            context,
            self.name,
            self.config,
            items,
            lambda batch: weighted_nll(model, batch, pad),
            retain_source=self.retain_source,
        )


class GaGdInDistribution(_GaGd):
    name = "ga_gd_id"
    presets = {"tiny": {"lr": TINY_LR["ga_gd_id"]}}
    retain_source = "retain"


class GaGdOutOfDistribution(_GaGd):
    name = "ga_gd_ood"
    presets = {"tiny": {"lr": TINY_LR["ga_gd_ood"]}}
    retain_source = "general"
