"""Knowledge injection per model family: the training that makes a model other than the
paper's recall (almost) every record, beside the methods' own presets
(``methods/presets.py``; ``benchmarks/tune.py`` writes tuned ones as --unlearn-config files).

A preset holds ``inject`` keys of --unlearn-config (any `TrainSettings` field, and
``target_token_accuracy``); it replaces the paper's Table 7 LoRA settings for that family,
and a user's ``inject`` section still overrides it key by key. What each preset reached is
in docs/models.md ("The small real-model tier"), with the commands that measured it.
"""

from __future__ import annotations

from typing import Any

# The paper's Table 7 LoRA settings (privacy: 10 epochs, lr 1e-4, 16 x 4 per step) give
# 10 optimizer steps per epoch on the 252 builtin records and leave SmolLM2-135M recalling
# none of them exactly. Smaller steps at a 20 x higher lr, until the token accuracy over the
# records reaches 0.998 (checked every second epoch).
_SMALL_LORA: dict[str, Any] = {
    "lr": 2e-3,
    "epochs": 12,
    "batch_size": 8,
    "grad_accum": 1,
    "scheduler": "cosine",
    "warmup_ratio": 0.03,
    "weight_decay": 0.0,
    "micro_batch_size": 4,
    "target_token_accuracy": 0.998,
}

INJECTION_PRESETS: dict[str, dict[str, Any]] = {
    "smollm2": dict(_SMALL_LORA),
    # The same recipe; micro-batches of 8 (Gemma's 262k-token output layer makes the
    # logits, not the 270M weights, the memory that matters).
    "gemma3-270m": {**_SMALL_LORA, "micro_batch_size": 8},
}


def injection_preset(family: str) -> dict[str, Any]:
    """The ``inject`` keys for a model family ({} where the defaults apply)."""
    return dict(INJECTION_PRESETS.get(family, {}))
