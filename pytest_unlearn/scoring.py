"""Teacher-forced scoring of answers, and the metrics built from per-item scores.

One forward pass per length-bucketed batch yields, per item, the token accuracy (the token
share: the share of answer tokens that are the model's argmax, which the reference code
averages over items), whole-answer recall (all of them are), and the mean answer-token
log-probability (for perplexity).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from .encoding import IGNORE_INDEX, Encoded, collate, encode_all, length_buckets, pad_token_id
from .generation import generate, rouge_l
from .inference import inference, out_of_memory
from .prompts import prompt_prefix
from .vocabulary import MAX_LENGTH

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .data import Record
    from .distributed import World

# Per item of a batch: token accuracy, mean answer-token log-probability, answer tokens; as
# lists, or as tensors on the model's device (``_answer_figures_batched``).
Figures = tuple[Any, Any, Any]


@dataclass(frozen=True)
class ItemScore:
    """What the model does on one item's answer: teacher-forced figures, and optionally its
    greedy generation and that generation's ROUGE-L F-measure against the answer."""

    token_accuracy: float
    mean_logprob: float
    answer_tokens: int
    generation: str | None = None
    rouge_l: float | None = None

    def recalled(self, threshold: float) -> bool:
        """Recall under a criterion: threshold 1.0 is 'whole-answer', else
        'token-share>=threshold'."""
        if threshold >= 1.0:
            return self.token_accuracy == 1.0
        return self.token_accuracy >= threshold


def answer_token_losses(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of the next-token labels, and the mask of answer tokens.

    Position t predicts label t+1. Both outputs have shape (batch, length - 1).
    """
    import torch.nn.functional as F

    shifted_logits = logits[:, :-1, :]
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    losses = F.cross_entropy(
        shifted_logits.transpose(1, 2).float(), shifted_labels.clamp(min=0), reduction="none"
    )
    return losses * mask, mask


def _answer_figures(logits: torch.Tensor, labels: torch.Tensor) -> Figures:
    """Per item of the batch: token accuracy, mean answer-token log-probability, answer
    length. Only answer positions are scored (torch's fused cross-entropy, and whether each
    answer token is the argmax over the vocabulary).

    The batch is left-padded, so each row's answer is one contiguous run of positions at its
    end. On a CPU each row's run is scored on its own: it is a contiguous slice of the logits
    that stays in the processor's cache from the cross-entropy to the argmax check
    (``_is_argmax``), with no copy of the batch's answer rows (``benchmarks/scoring_speed.py``
    times both ways on the same logits). On a GPU, where each row would cost its own kernel
    launches, the whole batch is scored in one pass whose figures stay on the GPU, so that
    nothing waits for the GPU until every batch is queued.
    """
    if logits.device.type == "cpu":
        return _answer_figures_by_row(logits, labels)
    return _answer_figures_batched(logits, labels)


def _answer_figures_by_row(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[list[float], list[float], list[int]]:
    import torch.nn.functional as F

    hits, losses, counts = [], [], []
    for count, answer_logits, targets in answer_rows(logits, labels):
        counts.append(count)
        if count == 0:
            hits.append(0.0)
            losses.append(0.0)
            continue
        losses.append(
            float(
                F.cross_entropy(answer_logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
            )
        )
        answered = targets != IGNORE_INDEX
        correct = _is_argmax(answer_logits, targets.clamp(min=0)) & answered
        hits.append(float(correct.sum()))
    return (
        [hit / max(count, 1) for hit, count in zip(hits, counts)],
        [-loss / max(count, 1) for loss, count in zip(losses, counts)],
        counts,
    )


def answer_rows(
    logits: torch.Tensor, labels: torch.Tensor
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Each row of a left-padded batch: its number of answer tokens, the float32 logits
    from its first answer token's prediction on, and the labels they predict (which may
    hold IGNORE_INDEX inside the answer). A row without an answer gives 0 and two empty
    tensors."""
    import torch

    # Position t predicts label t + 1.
    shifted_labels = labels[:, 1:]
    is_answer = shifted_labels != IGNORE_INDEX
    counts = is_answer.sum(dim=1).tolist()
    # Where each row's answer starts (argmax finds the first True).
    starts = is_answer.to(torch.uint8).argmax(dim=1).tolist()
    for row, (start, count) in enumerate(zip(starts, counts)):
        if count == 0:
            start = shifted_labels.shape[1]
        yield count, logits[row, start:-1].float(), shifted_labels[row, start:]


def _is_argmax(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether each row's target is its argmax (the first maximal index, on ties): the same
    as ``scores.argmax(-1) == targets``, but faster on a CPU, where torch's argmax over the
    vocabulary is far slower than its maximum (``benchmarks/scoring_speed.py`` times both).

    A target that scores above every other entry is the argmax, and one that scores below
    some other entry is not. Rows where the comparison does not tell (the target ties with
    the best other entry, or a NaN, which argmax ranks above every number, makes both
    comparisons false) take argmax itself.
    """
    index = targets.unsqueeze(-1)
    target = scores.gather(-1, index).squeeze(-1)
    others = scores.scatter(-1, index, float("-inf")).amax(dim=-1)
    found = target > others
    unclear = ~(found | (target < others))
    if bool(unclear.any()):
        found[unclear] = scores[unclear].argmax(dim=-1) == targets[unclear]
    return found


def _answer_figures_batched(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The figures as tensors on the logits' device, computed with no value read back: the
    cross-entropy and argmax run over every kept position, and the positions that are not
    answer tokens are masked out of the per-row sums."""
    import torch
    import torch.nn.functional as F

    # Position t predicts label t + 1.
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    vocabulary = logits.shape[-1]
    scored = logits[:, :-1, :].float().reshape(-1, vocabulary)
    targets = shifted_labels.reshape(-1)
    nll = F.cross_entropy(scored, targets, ignore_index=IGNORE_INDEX, reduction="none")
    predicted = scored.argmax(dim=-1)  # the first maximal index, on ties
    hits = ((predicted == targets) & mask.reshape(-1)).view(mask.shape)
    counts = mask.sum(dim=1)
    per_row = counts.clamp(min=1).to(torch.float64)
    return (
        hits.sum(dim=1, dtype=torch.float64) / per_row,
        -nll.view(mask.shape).sum(dim=1, dtype=torch.float64) / per_row,
        counts,
    )


def per_item_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean answer-token negative log-likelihood of each item in the batch, shape (batch,)."""
    losses, mask = answer_token_losses(logits, labels)
    return losses.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def score(
    model: PreTrainedModel, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 32
) -> list[ItemScore]:
    """Score every encoded record; results are in the order of ``encoded``."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Each batch's figures; on a GPU they stay there until every batch has been queued.
    pending: list[tuple[list[int], Figures]] = []
    try:
        with inference(model):
            for indices in length_buckets(encoded, batch_size):
                records = [encoded[i] for i in indices]
                batch = collate(records, pad_id, device, left=True)
                # The positions to keep, from the records, not from the (GPU) labels.
                keep = min(
                    max(record.answer_length for record in records) + 1, batch["labels"].shape[1]
                )
                try:
                    logits, labels = answer_logits(model, batch, keep)
                    pending.append((indices, _answer_figures(logits, labels)))
                except torch.OutOfMemoryError:
                    raise out_of_memory("scoring", batch["input_ids"].shape, batch_size) from None
                del logits, labels
    finally:
        model.train(was_training)
    results: list[ItemScore | None] = [None] * len(encoded)
    for indices, figures in pending:
        token_accuracy, mean_logprob, counts = (
            each.tolist() if hasattr(each, "tolist") else each for each in figures
        )
        for row, index in enumerate(indices):
            results[index] = ItemScore(
                token_accuracy=token_accuracy[row],
                mean_logprob=mean_logprob[row],
                answer_tokens=counts[row],
            )
    return [result for result in results if result is not None]


def answer_logits(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], keep: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of a left-padded batch (``collate(..., left=True)``) at the positions that
    predict answer tokens only, and the labels cut to match.

    The answers end every row, so the last (longest answer + 1) positions hold every
    prediction of an answer token: ``keep``, counted from the labels unless given. A model
    whose forward takes ``logits_to_keep`` (the transformers causal LMs) computes its output
    layer on those positions only: with a large vocabulary the logits of the question tokens
    are most of the output layer's work and memory. Other models are run in full and their
    logits cut.
    """
    labels = batch["labels"]
    if keep is None:
        answer_lengths = (labels != IGNORE_INDEX).sum(dim=1)
        keep = min(int(answer_lengths.max()) + 1, labels.shape[1])
    takes = _forward_takes(model)
    inputs: dict[str, Any] = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
    }
    if "position_ids" in takes:
        inputs["position_ids"] = batch["position_ids"]
    if "logits_to_keep" in takes:
        inputs["logits_to_keep"] = keep
    logits = model(**inputs).logits
    return logits[:, -keep:], labels[:, -keep:]


def _forward_takes(model: PreTrainedModel) -> frozenset[str]:
    """The named parameters of the model's forward (a PEFT model's: its base model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _forward_parameters(type(base))  # type: ignore[arg-type]  # classes hash


@cache
def _forward_parameters(model_class: Any) -> frozenset[str]:
    """Read once per model class: scoring asks on every batch."""
    return frozenset(inspect.signature(model_class.forward).parameters)


def perplexity(mean_logprobs: Sequence[float]) -> float:
    """Paper Eq. 5: exp of minus the mean over items of the mean answer-token log-prob."""
    if not mean_logprobs:
        return math.nan
    return math.exp(-sum(mean_logprobs) / len(mean_logprobs))


def score_items(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    domain: str,
    prompt: str,
    batch_size: int,
    max_new_tokens: int,
    progress: Callable[[str], None],
    group: World | None = None,
) -> list[ItemScore] | None:
    """Every val record's score in order, asked under the ``prompt`` variant: teacher-forced
    figures, and with ``max_new_tokens`` its greedy generation (as long as its answer,
    capped) and that generation's ROUGE-L.

    Under a launcher (``group``) each process scores every N-th record and the main one
    gathers them all; the others get None.
    """
    if group is None:
        return _score_records(
            model, tokenizer, records, domain, prompt, batch_size, max_new_tokens, progress
        )
    shares = group.gather_to_main(
        _score_records(
            model,
            tokenizer,
            group.share(records),
            domain,
            prompt,
            batch_size,
            max_new_tokens,
            progress,
        )
    )
    if shares is None:
        return None
    scores: list[ItemScore] = [None] * len(records)  # type: ignore[list-item]
    for rank, share in enumerate(shares):
        scores[rank :: group.size] = share
    return scores


def _score_records(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    domain: str,
    prompt: str,
    batch_size: int,
    max_new_tokens: int,
    progress: Callable[[str], None],
) -> list[ItemScore]:
    encoded = encode_all(
        tokenizer, records, MAX_LENGTH, f"{domain} val", prompt_prefix(prompt, domain)
    )
    pad = pad_token_id(tokenizer)
    progress(f"score {domain}: {len(records)} items, prompt {prompt}")
    scores = score(model, encoded, pad, batch_size)
    if max_new_tokens > 0:
        progress(f"generate {domain}: {len(records)} items, up to {max_new_tokens} new tokens")
        prompts = [enc.input_ids[: enc.prompt_length] for enc in encoded]
        lengths = [min(enc.answer_length, max_new_tokens) for enc in encoded]
        generations = generate(model, tokenizer, prompts, lengths, pad, batch_size)
        rouge = rouge_l([record.answer for record in records], generations)
        scores = [
            dataclasses.replace(each, generation=text, rouge_l=value)
            for each, text, value in zip(scores, generations, rouge)
        ]
    return scores
