"""Running a model without training it: inference mode that also works while the model is
sharded, and the message for a batch that does not fit in memory."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import UnlearnError
from .sharding import is_sharded

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def inference(model: PreTrainedModel) -> contextlib.AbstractContextManager[Any]:
    """``torch.inference_mode()``, or ``torch.no_grad()`` for a model sharded with FSDP
    while it trains (training curves, a stop-early check): FSDP keeps the weights it gathers
    for later passes, and a tensor made under inference mode cannot take part in training."""
    import torch

    return torch.no_grad() if is_sharded(model) else torch.inference_mode()


def out_of_memory(stage: str, shape: Sequence[int], batch_size: int) -> UnlearnError:
    """The error for a batch that did not fit: its shape, and what to lower."""
    return UnlearnError(
        f"{stage}: out of memory on a batch of {shape[0]} items of {shape[1]} tokens. Lower "
        f"--unlearn-score-batch-size (now {batch_size}; teacher-forced scores do not depend "
        "on it), "
        "lower --unlearn-max-new-tokens for generation, use --unlearn-dtype=bfloat16 on a GPU, "
        "or a device with more memory."
    )
