"""Weight quantization of an unlearned model, as it may ship: does the forgetting survive?

Zhang et al. 2025 ("Catastrophic Failure of LLM Unlearning via Quantization", ICLR; first
titled "Does your LLM truly unlearn? An embarrassingly simple approach to recover unlearned
knowledge") found that 4-bit quantization of an unlearned model brings much of the
"forgotten" knowledge back: unlearning with a small learning rate moves the weights less
than one quantization step, and rounding snaps them back to the vanilla model's grid point.

The scheme here is round-to-nearest (RTN) weight-only quantization with a symmetric absmax
scale per group of 128 consecutive input weights of each output row (the group size of
GPTQ, AWQ and llama.cpp's 4-bit formats): ``scale = max|w| / (2**(bits-1) - 1)``, ``q =
round(w / scale)`` clamped to ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``, and the weight
replaced by ``q * scale`` (fake quantization: the values a quantized kernel would compute
with, stored in the model's own dtype). Every ``torch.nn.Linear`` weight of the transformer
is quantized, the output head and the embeddings are not (as those formats keep them at
higher precision); a LoRA adapter is merged into its base weights first, as it is before
shipping. Activations stay in the model's dtype.

Why not a library: bitsandbytes has no CPU path here; optimum-quanto 0.2.7 (from PyPI, with
torch 2.13.0 on this CPU) imported, but ``quantize(model, weights=qint4)`` then ``freeze``
of one 256x256 linear layer had not returned after 300 s, idle (it builds its kernels
first); torchao would add a dependency and per-device kernels for what is, on weights
alone, the few lines of ``fake_quantize`` below: the grid of their weight-only RTN
int8/int4 with group size 128 (docs/privacy.md).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from .models import ModelHandle

if TYPE_CHECKING:
    import torch

GROUP_SIZE = 128
BITS = (8, 4)
# Part of the cache key of a quantized model's scores: raise it when the scheme changes.
SCHEME_VERSION = 1


def fake_quantize(weight: torch.Tensor, bits: int, group_size: int = GROUP_SIZE) -> torch.Tensor:
    """``weight`` (out, in) rounded to the symmetric ``bits``-bit grid of each group of
    ``group_size`` input columns (the last group of a row may be shorter)."""
    import torch

    levels = 2 ** (bits - 1) - 1
    out_features, in_features = weight.shape
    padded = -in_features % group_size
    values = weight.float()
    if padded:
        values = torch.nn.functional.pad(values, (0, padded))
    groups = values.reshape(out_features, -1, group_size)
    scale = groups.abs().amax(dim=-1, keepdim=True) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    quantized = (groups / scale).round().clamp(-levels, levels) * scale
    return quantized.reshape(out_features, -1)[:, :in_features].to(weight.dtype)


def quantized_copy(handle: ModelHandle, bits: int) -> ModelHandle:
    """A copy of the model with every linear weight of its transformer blocks quantized to
    ``bits`` bits (RTN, group 128); the handle's model is left as it is."""
    import torch

    model = copy.deepcopy(handle.model)
    if hasattr(model, "merge_and_unload"):  # a LoRA adapter: merged, as before shipping
        model = model.merge_and_unload()
    head = model.get_output_embeddings()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module is not head:
                module.weight.copy_(fake_quantize(module.weight, bits))
    model.eval()
    return ModelHandle(model, handle.tokenizer, handle.spec, [], handle.cache_key)
