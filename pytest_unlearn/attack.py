"""The relearning attack (``--unlearn-attack``): fine-tune the unlearned model briefly on a
small, seeded part of the Unlearn Scope's train records, then test the unlearn val items
again. They were never trained on, so what comes back had only been hidden, not removed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .data import Record
from .encoding import encode_all
from .models import pad_token_id
from .training import Trainer, TrainSettings, answer_nll
from .vocabulary import MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ATTACK_BATCH_SIZE = 8
# The tiny model's injection lr (1e-3) with a fresh AdamW breaks the model instead of
# restoring it: after 8 steps the vanilla model recalled 7% of the unlearn val items it had
# recalled 100% of. At 1e-4 the vanilla model keeps them all and what gradient ascent
# removed on the builtin data comes back (measured with suites/privacy/test_attack.py).
TINY_ATTACK_LR = 1e-4


def attack_settings(requested: dict[str, float], tiny: bool, injection_lr: float) -> dict[str, Any]:
    """The attack of --unlearn-attack, with lr 'auto' (NaN) resolved: the tiny model's
    attack lr, else the lr of the LoRA injection."""
    lr = requested["lr"]
    if math.isnan(lr):
        lr = TINY_ATTACK_LR if tiny else injection_lr
    return {
        "steps": int(requested["steps"]),
        "fraction": requested["fraction"],
        "lr": lr,
        "batch_size": ATTACK_BATCH_SIZE,
    }


def relearn(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_train: Sequence[Record],
    attack: dict[str, Any],
    seed: int,
    domain: str,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Fine-tune ``model`` (its trainable tensors) with the answer NLL for ``steps``
    optimizer steps on a seeded ``fraction`` of ``forget_train``; return the attack's log."""
    records = list(forget_train)
    chosen = random.Random(seed).sample(
        records, max(1, math.ceil(attack["fraction"] * len(records)))
    )
    encoded = encode_all(tokenizer, chosen, MAX_LENGTH, "attack")
    # Cycled to exactly ``steps`` batches: one epoch, no shuffling, constant lr.
    examples = [encoded[i % len(encoded)] for i in range(attack["steps"] * attack["batch_size"])]
    settings = TrainSettings(
        lr=attack["lr"],
        epochs=1,
        batch_size=attack["batch_size"],
        grad_accum=1,
        warmup_ratio=0.0,
        scheduler="constant",
        micro_batch_size=attack["batch_size"],
        shuffle=False,
    )
    pad = pad_token_id(tokenizer)
    log = Trainer(
        model,
        examples,
        lambda batch: answer_nll(model, batch, pad),
        settings,
        seed,
        f"relearn {domain}",
        progress,
    ).run()
    model.eval()
    return {"attack": attack, "records": len(chosen), "train": log.to_dict()}
