"""Gradient-norm clipping, ``TrainSettings.max_grad_norm``.

The reference code (zjunlp/KnowUnDo) trains injection and every method through the HF
Trainer, whose default ``max_grad_norm`` of 1.0 clips each step's gradient to that global
L2 norm; the paper does not say so. Here clipping is off by default, so that the published
figures (docs/results.md), measured without it, stay what the defaults give;
``max_grad_norm: 1.0`` matches the reference (``benchmarks/reference_behaviour.yaml`` sets it
for injection and every method).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def max_grad_norm_problems(norm: Any) -> list[str]:
    """What is wrong with a ``max_grad_norm`` value (None, or a finite number > 0)."""
    if norm is None or (
        isinstance(norm, (int, float))
        and not isinstance(norm, bool)
        and math.isfinite(norm)
        and norm > 0
    ):
        return []
    return [
        f"max_grad_norm must be a finite number > 0 such as 1.0, or null for no clipping "
        f"(got {norm!r})"
    ]


def clip_gradients(optimizer: torch.optim.Optimizer, limit: float | None) -> bool:
    """Clip the step's gradients to the global norm ``limit``, as the HF Trainer does, and
    say whether their norm was above it. The gradients are those of the whole step: summed
    across processes already (each process then computes the same norm), or sharded
    DTensors under FSDP, whose norm torch reduces across the shards."""
    import torch

    if limit is None:
        return False
    trainable = [
        p for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    if not trainable:
        return False
    norm = torch.nn.utils.clip_grad_norm_(trainable, limit)
    if hasattr(norm, "full_tensor"):  # a DTensor (FSDP): the global norm
        norm = norm.full_tensor()
    return float(norm) > limit


def keyed(fields: dict[str, Any]) -> dict[str, Any]:
    """``dataclasses.asdict`` of TrainSettings as a cache key takes them: without
    ``max_grad_norm`` while it is unset, so that models trained before the field existed
    keep their keys."""
    if fields.get("max_grad_norm", 0.0) is None:
        return {key: value for key, value in fields.items() if key != "max_grad_norm"}
    return fields
