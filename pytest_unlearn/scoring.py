"""Teacher-forced scoring of answers, and the metrics built from per-item scores.

One forward pass per length-bucketed batch yields, per item, the token accuracy (the share of
answer tokens that are the model's argmax), exact recall (all of them are), and the mean
answer-token log-probability (for perplexity).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .encoding import IGNORE_INDEX, SEPARATOR, Encoded, collate, length_buckets
from .errors import UnlearnError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

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
        """Recall under a criterion: threshold 1.0 is 'exact', else 'token>=threshold'."""
        if threshold >= 1.0:
            return self.token_accuracy == 1.0
        return self.token_accuracy >= threshold


def answer_token_losses(logits: torch.Tensor, labels: torch.Tensor,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of the next-token labels, and the mask of answer tokens.

    Position t predicts label t+1. Both outputs have shape (batch, length - 1).
    """
    import torch.nn.functional as F

    shifted_logits = logits[:, :-1, :]
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    losses = F.cross_entropy(shifted_logits.transpose(1, 2).float(),
                             shifted_labels.clamp(min=0), reduction="none")
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


def _answer_figures_by_row(logits: torch.Tensor, labels: torch.Tensor,
                           ) -> tuple[list[float], list[float], list[int]]:
    import torch.nn.functional as F

    hits, losses, counts = [], [], []
    for count, answer_logits, targets in answer_rows(logits, labels):
        counts.append(count)
        if count == 0:
            hits.append(0.0)
            losses.append(0.0)
            continue
        losses.append(float(F.cross_entropy(answer_logits, targets, ignore_index=IGNORE_INDEX,
                                            reduction="sum")))
        answered = targets != IGNORE_INDEX
        correct = _is_argmax(answer_logits, targets.clamp(min=0)) & answered
        hits.append(float(correct.sum()))
    return ([hit / max(count, 1) for hit, count in zip(hits, counts)],
            [-loss / max(count, 1) for loss, count in zip(losses, counts)], counts)


def answer_rows(logits: torch.Tensor, labels: torch.Tensor,
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
        yield count, logits[row, start: -1].float(), shifted_labels[row, start:]


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


def _answer_figures_batched(logits: torch.Tensor, labels: torch.Tensor,
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
    return (hits.sum(dim=1, dtype=torch.float64) / per_row,
            -nll.view(mask.shape).sum(dim=1, dtype=torch.float64) / per_row, counts)


def per_item_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean answer-token negative log-likelihood of each item in the batch, shape (batch,)."""
    losses, mask = answer_token_losses(logits, labels)
    return losses.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def _inference(model: PreTrainedModel) -> contextlib.AbstractContextManager[Any]:
    """``torch.inference_mode()``, or ``torch.no_grad()`` for a model sharded with FSDP
    while it trains (training curves, a stop-early check): FSDP keeps the weights it gathers
    for later passes, and a tensor made under inference mode cannot take part in training."""
    import torch

    from .sharding import is_sharded

    return torch.no_grad() if is_sharded(model) else torch.inference_mode()


def score(model: PreTrainedModel, encoded: Sequence[Encoded], pad_id: int,
          batch_size: int = 32) -> list[ItemScore]:
    """Score every encoded record; results are in the order of ``encoded``."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Each batch's figures; on a GPU they stay there until every batch has been queued.
    pending: list[tuple[list[int], Figures]] = []
    try:
        with _inference(model):
            for indices in length_buckets(encoded, batch_size):
                records = [encoded[i] for i in indices]
                batch = collate(records, pad_id, device, left=True)
                # The positions to keep, from the records, not from the (GPU) labels.
                keep = min(max(record.answer_length for record in records) + 1,
                           batch["labels"].shape[1])
                try:
                    logits, labels = answer_logits(model, batch, keep)
                    pending.append((indices, _answer_figures(logits, labels)))
                except torch.OutOfMemoryError:
                    raise _out_of_memory("scoring", batch["input_ids"].shape,
                                         batch_size) from None
                del logits, labels
    finally:
        model.train(was_training)
    results: list[ItemScore | None] = [None] * len(encoded)
    for indices, figures in pending:
        token_accuracy, mean_logprob, counts = (
            each.tolist() if hasattr(each, "tolist") else each for each in figures)
        for row, index in enumerate(indices):
            results[index] = ItemScore(token_accuracy=token_accuracy[row],
                                       mean_logprob=mean_logprob[row],
                                       answer_tokens=counts[row])
    return [result for result in results if result is not None]


def answer_logits(model: PreTrainedModel, batch: dict[str, torch.Tensor],
                  keep: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
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
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "position_ids" in takes:
        inputs["position_ids"] = batch["position_ids"]
    if "logits_to_keep" in takes:
        inputs["logits_to_keep"] = keep
    logits = model(**inputs).logits
    return logits[:, -keep:], labels[:, -keep:]


def _forward_takes(model: PreTrainedModel) -> frozenset[str]:
    """The named parameters of the model's forward (a PEFT model's: its base model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _forward_parameters(type(base))


@lru_cache(maxsize=None)
def _forward_parameters(model_class: type) -> frozenset[str]:
    """Read once per model class: scoring asks on every batch."""
    import inspect

    return frozenset(inspect.signature(model_class.forward).parameters)


def _out_of_memory(stage: str, shape: Sequence[int], batch_size: int) -> UnlearnError:
    return UnlearnError(
        f"{stage}: out of memory on a batch of {shape[0]} items of {shape[1]} tokens. Lower "
        f"--unlearn-score-batch-size (now {batch_size}; teacher-forced scores do not depend "
        "on it), "
        "lower --unlearn-max-new-tokens for generation, use --unlearn-dtype=bfloat16 on a GPU, "
        "or a device with more memory.")


def perplexity(mean_logprobs: Sequence[float]) -> float:
    """Paper Eq. 5: exp of minus the mean over items of the mean answer-token log-prob."""
    if not mean_logprobs:
        return math.nan
    return math.exp(-sum(mean_logprobs) / len(mean_logprobs))


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
             prompts: Sequence[Sequence[int]], lengths: Sequence[int], pad_id: int,
             batch_size: int = 32) -> list[str]:
    """Greedy continuations of tokenized prompts, batched and left-padded, with the KV cache.

    Continuation i is ``lengths[i]`` tokens long at most (the caller passes each reference
    answer's length, capped): the models here are trained on answer tokens alone, without an
    end token (the reference implementation appends one), so they do not stop by themselves,
    and whatever they add after the answer's length would only dilute ROUGE. It is also cut at a blank line, where a new question would start.
    """
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    texts: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        with _inference(model):
            for start in range(0, len(order), batch_size):
                indices = order[start: start + batch_size]
                width = max(len(prompts[i]) for i in indices)
                input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(indices), width), dtype=torch.long)
                for row, index in enumerate(indices):
                    ids = torch.tensor(prompts[index], dtype=torch.long)
                    input_ids[row, width - len(ids):] = ids
                    attention[row, width - len(ids):] = 1
                try:
                    output = model.generate(
                        input_ids=input_ids.to(device), attention_mask=attention.to(device),
                        max_new_tokens=max(lengths[i] for i in indices), do_sample=False,
                        use_cache=True, pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id)
                except torch.OutOfMemoryError:
                    raise _out_of_memory("generation", input_ids.shape, batch_size) from None
                for row, index in enumerate(indices):
                    new_tokens = output[row, width: width + lengths[index]]
                    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
                    texts[index] = text.split(SEPARATOR)[0].strip()
    finally:
        model.train(was_training)
    return texts


def rouge_l(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
    """rouge-score's ROUGE-L F-measure of each prediction against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer.score(reference, prediction)["rougeL"].fmeasure
            for reference, prediction in zip(references, predictions)]


def sample(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
           prompts: Sequence[Sequence[int]], lengths: Sequence[int], pad_id: int,
           samples: int, seed: int, temperature: float = 1.0, top_p: float = 1.0,
           batch_size: int = 32) -> list[list[str]]:
    """``samples`` sampled continuations of each tokenized prompt, cut like `generate` cuts.

    Batched and left-padded like `generate`, with ``num_return_sequences=samples``; only
    ``temperature`` and ``top_p`` shape the distribution (no top-k, whatever the model's
    generation config says). The global torch seed is set before each batch from ``seed`` and
    the batch's index, so the same call on the same device gives the same texts; they depend
    on ``batch_size`` (which prompts share a batch) and may differ across devices.
    """
    import torch

    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    texts: list[list[str]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        with _inference(model):
            for batch_index, start in enumerate(range(0, len(order), batch_size)):
                indices = order[start: start + batch_size]
                input_ids, attention = _left_padded([prompts[i] for i in indices], pad_id)
                width = input_ids.shape[1]
                torch.manual_seed(_batch_seed(seed, batch_index))
                try:
                    output = model.generate(
                        input_ids=input_ids.to(device), attention_mask=attention.to(device),
                        max_new_tokens=max(lengths[i] for i in indices), do_sample=True,
                        temperature=temperature, top_p=top_p, top_k=0,
                        num_return_sequences=samples, use_cache=True, pad_token_id=pad_id,
                        eos_token_id=tokenizer.eos_token_id)
                except torch.OutOfMemoryError:
                    raise _out_of_memory("sampling", (len(indices) * samples, width),
                                         batch_size) from None
                # generate returns the samples of one prompt next to each other.
                for row, index in enumerate(indices):
                    for copy in range(samples):
                        new_tokens = output[row * samples + copy, width: width + lengths[index]]
                        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
                        texts[index].append(text.split(SEPARATOR)[0].strip())
    finally:
        model.train(was_training)
    return texts


def _left_padded(prompts: Sequence[Sequence[int]], pad_id: int,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask of prompts padded on the left to the longest one."""
    import torch

    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = torch.tensor(prompt, dtype=torch.long)
        input_ids[row, width - len(ids):] = ids
        attention[row, width - len(ids):] = 1
    return input_ids, attention


def _batch_seed(seed: int, batch_index: int) -> int:
    """A distinct seed per batch; seeds a batch apart do not share their batches' seeds."""
    return (seed * 1_000_003 + batch_index) % 2**63
