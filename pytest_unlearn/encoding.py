"""The prompt format and tokenization shared by training and scoring.

Text is ``"{question}\\n\\n{answer}"`` with the tokenizer's default special tokens and no
chat template. The prompt ``question + "\\n\\n"`` and the answer are tokenized separately so
no token merges across the boundary, and the loss and every metric cover answer tokens only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UnlearnError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from .data import Record

IGNORE_INDEX = -100
SEPARATOR = "\n\n"


class TruncationWarning(UserWarning):
    """An encoded record was longer than the maximum length and lost answer tokens."""


@dataclass(frozen=True)
class Encoded:
    """Token ids of one record and how many of them are the prompt."""

    input_ids: tuple[int, ...]
    prompt_length: int
    truncated: bool
    # Labels for the answer positions when they differ from the answer itself (random or
    # adversarial labels); None means the labels are the answer tokens.
    targets: tuple[int, ...] | None = None

    @property
    def answer_length(self) -> int:
        return len(self.input_ids) - self.prompt_length

    def with_targets(self, targets: Sequence[int]) -> Encoded:
        if len(targets) != self.answer_length:
            raise ValueError(f"{len(targets)} targets for {self.answer_length} answer tokens")
        return Encoded(self.input_ids, self.prompt_length, self.truncated, tuple(targets))


def encode(
    tokenizer: PreTrainedTokenizerBase, record: Record, max_length: int, prefix: str = ""
) -> Encoded:
    prompt = tokenizer(prefix + record.question + SEPARATOR, add_special_tokens=True)["input_ids"]
    answer = tokenizer(record.answer, add_special_tokens=False)["input_ids"]
    ids = list(prompt) + list(answer)
    truncated = len(ids) > max_length
    if len(prompt) >= max_length:
        raise UnlearnError(
            f"{record.where or 'a record'}: the question ({record.question[:60]!r}"
            f"{'...' if len(record.question) > 60 else ''}, {len(record.question):,} "
            f"characters) is {len(prompt):,} tokens with its prompt, and pytest-unlearn trains "
            f"and scores at most {max_length} tokens per record (the paper's maximum length), "
            "so no answer token would remain. Shorten the question in the data."
        )
    return Encoded(tuple(ids[:max_length]), len(prompt), truncated)


def encode_all(
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    max_length: int,
    what: str,
    prefix: str = "",
) -> list[Encoded]:
    """Encode records (``prefix`` before each question); truncation is never silent: it is
    reported as a warning."""
    encoded = [encode(tokenizer, record, max_length, prefix) for record in records]
    truncated = [record.question for record, enc in zip(records, encoded) if enc.truncated]
    if truncated:
        warnings.warn(
            TruncationWarning(
                f"{len(truncated)} of {len(records)} {what} records are longer than {max_length} "
                f"tokens and were truncated (first: {truncated[0][:80]!r}); their tail answer "
                "tokens are not trained or scored"
            ),
            stacklevel=2,
        )
    return encoded


def collate(
    batch: Sequence[Encoded], pad_id: int, device: torch.device | str = "cpu", left: bool = False
) -> dict[str, torch.Tensor]:
    """Pad a batch on the right (or, with ``left``, on the left); labels are the ids on
    answer tokens and IGNORE_INDEX elsewhere.

    Left padding puts every answer at the end of its row, so the answers' logits are the last
    few positions of the batch; it adds ``position_ids`` that count real tokens only, so a
    padded row is computed as it would be alone.
    """
    import torch

    width = max(len(enc.input_ids) for enc in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, enc in enumerate(batch):
        ids = torch.tensor(enc.input_ids, dtype=torch.long)
        start = width - len(ids) if left else 0
        input_ids[row, start : start + len(ids)] = ids
        attention[row, start : start + len(ids)] = 1
        answer = ids[enc.prompt_length :] if enc.targets is None else torch.tensor(enc.targets)
        labels[row, start + enc.prompt_length : start + len(ids)] = answer
    out = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    if left:
        out["position_ids"] = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return {name: tensor.to(device) for name, tensor in out.items()}


def length_buckets(encoded: Sequence[Encoded], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, so padding stays small."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].input_ids), i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its end or unknown token
    (padded positions are masked, so which one does not change any result)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
