"""Building blocks of the unlearning losses: weighted items, alternative labels, and the
frozen starting model.

Every method computes one loss per item (the Trainer averages them per step), so the
pieces here return per-item tensors.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .encoding import Encoded, collate, encode_all
from .errors import UnlearnError
from .method import MethodResult
from .scoring import answer_token_losses
from .sharding import drop_gathered, is_sharded, local_values
from .training import Trainer, TrainSettings, answer_nll

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .data import Record
    from .method import UnlearnContext


@dataclass(frozen=True)
class WeightedItem:
    """An encoded record and the factor on its NLL (negative: ascend, positive: descend)."""

    encoded: Encoded
    weight: float
    kind: str  # "forget" or "retain"


def weighted_nll(
    model: PreTrainedModel, batch: Sequence[WeightedItem], pad_id: int
) -> torch.Tensor:
    """``weight * NLL`` of each item, shape (len(batch),)."""
    import torch

    nll = answer_nll(model, [item.encoded for item in batch], pad_id)
    weights = torch.tensor([item.weight for item in batch], dtype=nll.dtype, device=nll.device)
    return nll * weights


def answer_logprob_and_length(
    model: PreTrainedModel, batch: Sequence[Encoded], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed answer-token log-probability of each item, log p(y|x) teacher-forced (with
    gradients), and each item's number of answer tokens; both of shape (len(batch),)."""
    device = next(model.parameters()).device
    inputs = collate(batch, pad_id, device)
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    losses, mask = answer_token_losses(logits, inputs["labels"])
    return -losses.sum(dim=1), mask.sum(dim=1)


def interleave(
    forget: Sequence[Encoded], retain: Sequence[Encoded], forget_weight: float, retain_weight: float
) -> list[WeightedItem]:
    """Pair each forget item with a retain item: f0 r0 f1 r1 ...

    As in the reference, there are as many pairs as forget items; surplus retain items go
    unused, and when retain items are fewer they are reused in order (cycled).
    """
    if not retain:
        raise UnlearnError("no retain items to pair with the forget items")
    items = []
    for index, encoded in enumerate(forget):
        items.append(WeightedItem(encoded, forget_weight, "forget"))
        items.append(WeightedItem(retain[index % len(retain)], retain_weight, "retain"))
    return items


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids.update(getattr(tokenizer, "added_tokens_decoder", {}).keys())
    return ids


def random_token_ids(tokenizer: PreTrainedTokenizerBase, embedding_rows: int) -> list[int]:
    """Every token id a random label may take: the tokenizer's vocabulary without special
    tokens. Embedding rows beyond the vocabulary are padding that no text ever uses (Qwen1.5
    has 151,936 rows for 151,646 tokens), so they are never drawn."""
    excluded = special_token_ids(tokenizer)
    return [token for token in range(min(embedding_rows, len(tokenizer))) if token not in excluded]


def with_random_targets(
    encoded: Sequence[Encoded],
    choices: Sequence[int],
    seed: int,
    question_too: frozenset[int] | None = None,
) -> list[Encoded]:
    """Each answer token's label replaced by a uniformly random non-special token.

    With ``question_too`` (the special token ids), the question's tokens get random labels
    as well, as in the reference code: every position after the first whose token is not
    special (a special token keeps its own label), so that the loss covers the whole
    record."""
    rng = random.Random(seed)
    if question_too is None:
        return [
            enc.with_targets([rng.choice(choices) for _ in range(enc.answer_length)])
            for enc in encoded
        ]
    # The first position has no label (no logits predict it): the labelled span starts at 1.
    return [
        Encoded(
            enc.input_ids,
            1,
            enc.truncated,
            tuple(
                token if token in question_too else rng.choice(choices)
                for token in enc.input_ids[1:]
            ),
        )
        for enc in encoded
    ]


def with_adversarial_targets(
    model: PreTrainedModel, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 16
) -> list[Encoded]:
    """Paper Eq. 7: a_i = argmax over a != y_i of P(a | y_<i, x), under the given model.

    The logits at position t predict token t + 1, so the label of answer token i comes from
    the logits one position before it (the reference code is one token off here).
    """
    import torch

    results: list[Encoded] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = list(encoded[start : start + batch_size])
            inputs = collate(batch, pad_id, device)
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            ).logits.float()
            for row, enc in enumerate(batch):
                positions = torch.arange(enc.prompt_length - 1, len(enc.input_ids) - 1)
                answer = torch.tensor(enc.input_ids[enc.prompt_length :], device=device)
                scores = logits[row, positions.to(device)]
                scores[torch.arange(len(answer)), answer] = float("-inf")
                results.append(enc.with_targets(scores.argmax(dim=-1).tolist()))
    model.train(was_training)
    return results


class FrozenReference:
    """The starting model, kept as a copy of the trainable tensors only.

    ``logits`` runs the model with the starting values swapped in, then swaps the current
    values back. For a LoRA model that copy is the small adapter, not the whole model.

    ``capture`` takes the copy; the Trainer calls it once training starts, before the first
    step (``train_and_report(..., on_start=reference.capture)``). Under FSDP
    (``sharding.py``) the model is sharded by then, so each process copies its own shards
    of the starting values only and no process ever holds a whole second copy; while the
    model is sharded each process swaps its shards, and every sharded module drops the
    weights it gathered before and after, so that no forward pass sees stale values. A
    reference serves the layout it was captured in (whole or sharded) only.
    """

    def __init__(self, model: PreTrainedModel, names: Sequence[str]) -> None:
        self.model = model
        self.names = list(names)
        self.initial: dict[str, torch.Tensor] = {}
        self._captured_sharded: bool | None = None  # None until capture()

    def capture(self) -> None:
        """Copy the trained tensors' values now (this process's shards, if sharded)."""
        if self._captured_sharded is not None:
            raise UnlearnError(
                "FrozenReference.capture(): the starting values were already "
                "taken; make a new FrozenReference for each training run"
            )
        parameters = dict(self.model.named_parameters())
        self._captured_sharded = is_sharded(self.model)
        self.initial = {
            name: local_values(parameters[name]).detach().clone() for name in self.names
        }

    def held_numel(self) -> int:
        """How many starting values this process holds (whole tensors, or its shards)."""
        return sum(tensor.numel() for tensor in self.initial.values())

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad(), self._swapped():
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def _swapped(self) -> _Swap:
        return _Swap(self)

    def targets(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each tensor's current values as this process holds them (the whole tensor, or
        its shard), and its starting values in the same form."""
        if self._captured_sharded is None:
            raise UnlearnError(
                "FrozenReference used before capture(): pass "
                "on_start=reference.capture to the Trainer (train_and_report), "
                "or call it before the first optimizer step"
            )
        if is_sharded(self.model) != self._captured_sharded:
            layouts = ("whole", "sharded (FSDP)")
            raise UnlearnError(
                f"FrozenReference: its starting values were taken while the model was "
                f"{layouts[self._captured_sharded]}, but it is now "
                f"{layouts[not self._captured_sharded]}; make a new FrozenReference for each "
                "training run"
            )
        parameters = dict(self.model.named_parameters())
        return {name: (local_values(parameters[name]), self.initial[name]) for name in self.names}


class _Swap:
    def __init__(self, reference: FrozenReference) -> None:
        self.reference = reference
        self.current: dict[str, torch.Tensor] = {}

    def __enter__(self) -> None:
        drop_gathered(self.reference.model)
        for name, (values, initial) in self.reference.targets().items():
            self.current[name] = values.detach().clone()
            values.copy_(initial)

    def __exit__(self, *exc_info: object) -> None:
        drop_gathered(self.reference.model)
        for name, (values, _) in self.reference.targets().items():
            values.copy_(self.current[name])


def kl_to_reference(
    model: PreTrainedModel, reference: FrozenReference, batch: Sequence[Encoded], pad_id: int
) -> torch.Tensor:
    """Per-item mean over all real positions of KL(p_start || p_now).

    The reference code uses the cross-entropy against the frozen model's distribution; it
    differs from this KL by the frozen model's entropy, a constant, so the gradients agree.
    """
    import torch.nn.functional as F

    device = next(model.parameters()).device
    inputs = collate(batch, pad_id, device)
    reference_logits = reference.logits(inputs["input_ids"], inputs["attention_mask"])
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    log_now = F.log_softmax(logits.float(), dim=-1)
    log_start = F.log_softmax(reference_logits.float(), dim=-1)
    per_position = F.kl_div(log_now, log_start, log_target=True, reduction="none").sum(-1)
    mask = inputs["attention_mask"].to(per_position.dtype)
    return (per_position * mask).sum(dim=1) / mask.sum(dim=1)


def encode_records(context: UnlearnContext, records: Sequence[Record], what: str) -> list[Encoded]:
    """Encode a method's records with the context's tokenizer and maximum length."""
    return encode_all(context.tokenizer, records, context.max_length, what)


def train_and_report(
    context: UnlearnContext,
    name: str,
    config: TrainSettings,
    examples: Sequence[Any],
    item_losses: Callable[[list[Any]], torch.Tensor],
    on_start: Callable[[], None] | None = None,
    **log: Any,
) -> MethodResult:
    """Run the shared Trainer on ``examples`` and wrap the model and its log; ``on_start``
    as the Trainer's."""
    trainer = Trainer(
        context.model,
        examples,
        item_losses,
        config,
        context.seed,
        f"{name} {context.domain}",
        context.progress,
        context.after_step,
        on_start,
    )
    return MethodResult(context.model, {"train": trainer.run().to_dict(), **log})
