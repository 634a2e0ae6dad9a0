"""Generation: greedy and sampled continuations of the items' prompts, batched and
left-padded with the KV cache, and ROUGE-L of a generation against its reference answer.

Each continuation is cut at the reference answer's length (capped by
--unlearn-max-new-tokens) and at a blank line; see `generate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .encoding import SEPARATOR, encode_all, pad_token_id
from .inference import inference, out_of_memory
from .vocabulary import MAX_LENGTH

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .data import Record


def leak_generations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    domain: str,
    max_new_tokens: int,
    samples: int,
    seed: int,
    batch_size: int,
    progress: Callable[[str], None],
) -> list[list[str]]:
    """Per record: the model's greedy generation for its question, then ``samples``
    sampled ones (temperature 1, seeded), each as long as its answer (capped)."""
    encoded = encode_all(tokenizer, records, MAX_LENGTH, f"{domain} leak")
    prompts = [enc.input_ids[: enc.prompt_length] for enc in encoded]
    lengths = [min(enc.answer_length, max_new_tokens) for enc in encoded]
    pad = pad_token_id(tokenizer)
    progress(f"leak {domain}: greedy and {samples} sampled generations of {len(records)} items")
    greedy = generate(model, tokenizer, prompts, lengths, pad, batch_size)
    sampled: list[list[str]] = [[] for _ in records]
    if samples:
        sampled = sample(
            model, tokenizer, prompts, lengths, pad, samples, seed, batch_size=batch_size
        )
    return [[text, *more] for text, more in zip(greedy, sampled)]


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    lengths: Sequence[int],
    pad_id: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy continuations of tokenized prompts, batched and left-padded, with the KV cache.

    Continuation i is ``lengths[i]`` tokens long at most (the caller passes each reference
    answer's length, capped): the models here are trained on answer tokens alone, without an
    end token (the reference implementation appends one), so they do not stop by themselves,
    and whatever they add after the answer's length would only dilute ROUGE. It is also cut
    at a blank line, where a new question would start.
    """
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    texts: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        with inference(model):
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                input_ids, attention = _left_padded([prompts[i] for i in indices], pad_id)
                width = input_ids.shape[1]
                try:
                    output = model.generate(
                        input_ids=input_ids.to(device),
                        attention_mask=attention.to(device),
                        max_new_tokens=max(lengths[i] for i in indices),
                        do_sample=False,
                        use_cache=True,
                        pad_token_id=pad_id,
                        eos_token_id=tokenizer.eos_token_id,
                    )
                except torch.OutOfMemoryError:
                    raise out_of_memory("generation", input_ids.shape, batch_size) from None
                for row, index in enumerate(indices):
                    new_tokens = output[row, width : width + lengths[index]]
                    text = tokenizer.decode(new_tokens, skip_special_tokens=True)
                    texts[index] = text.split(SEPARATOR)[0].strip()
    finally:
        model.train(was_training)
    return texts


def rouge_l(references: Sequence[str], predictions: Sequence[str]) -> list[float]:
    """rouge-score's ROUGE-L F-measure of each prediction against its reference."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for reference, prediction in zip(references, predictions)
    ]


def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    lengths: Sequence[int],
    pad_id: int,
    samples: int,
    seed: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 32,
) -> list[list[str]]:
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
        with inference(model):
            for batch_index, start in enumerate(range(0, len(order), batch_size)):
                indices = order[start : start + batch_size]
                input_ids, attention = _left_padded([prompts[i] for i in indices], pad_id)
                width = input_ids.shape[1]
                torch.manual_seed(_batch_seed(seed, batch_index))
                try:
                    output = model.generate(
                        input_ids=input_ids.to(device),
                        attention_mask=attention.to(device),
                        max_new_tokens=max(lengths[i] for i in indices),
                        do_sample=True,
                        temperature=temperature,
                        top_p=top_p,
                        top_k=0,
                        num_return_sequences=samples,
                        use_cache=True,
                        pad_token_id=pad_id,
                        eos_token_id=tokenizer.eos_token_id,
                    )
                except torch.OutOfMemoryError:
                    raise out_of_memory(
                        "sampling", (len(indices) * samples, width), batch_size
                    ) from None
                # generate returns the samples of one prompt next to each other.
                for row, index in enumerate(indices):
                    for copy in range(samples):
                        new_tokens = output[row * samples + copy, width : width + lengths[index]]
                        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
                        texts[index].append(text.split(SEPARATOR)[0].strip())
    finally:
        model.train(was_training)
    return texts


def _left_padded(
    prompts: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask of prompts padded on the left to the longest one."""
    import torch

    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids = torch.tensor(prompt, dtype=torch.long)
        input_ids[row, width - len(ids) :] = ids
        attention[row, width - len(ids) :] = 1
    return input_ids, attention


def _batch_seed(seed: int, batch_index: int) -> int:
    """A distinct seed per batch; seeds a batch apart do not share their batches' seeds."""
    return (seed * 1_000_003 + batch_index) % 2**63
