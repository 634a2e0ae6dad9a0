"""Membership inference: can the model tell the records it was taught to forget (the forget
set) from records of the same kind it never saw (the holdout, ``holdout.py``)?

Each attack gives every record a score from the model's real log-probabilities of its
answer tokens (teacher-forced after ``"{question}\\n\\n"``, as ``scoring.py`` scores), higher
meaning "more likely a member"; its AUC is the probability that a forget record outscores a
holdout record (the Mann-Whitney U over both sets, ties counted half). 0.5 is a model that
cannot tell them apart, as one that never learned either (the oracle, ``oracle.py``); above
0.5 the model still knows the forget set better; well below 0.5 it knows it *worse* than
unseen text: the forget set was pushed below what the model would make of anything new,
which is itself a trace of unlearning (over-unlearning).

PrivLeak (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation for Language
Models", Sec. 3) is ``(AUC_method - AUC_oracle) / AUC_oracle``: about 0 for a method as good
as retraining, positive when it leaks membership, strongly negative when it over-unlearns.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .data import Record
from .encoding import collate, encode_all, length_buckets, pad_token_id
from .inference import inference
from .scoring import answer_logits
from .vocabulary import MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# The share of a record's answer tokens min-k% and min-k%++ average over (both papers'
# recommended 20%).
MIN_K = 0.2
# PrivLeak's attack, as in MUSE: Min-K% Prob.
PRIVLEAK_ATTACK = "min_k"
# Below this PrivLeak a method pushed the forget set below unseen text: over-unlearning.
# MUSE calls a PrivLeak far from 0 either way a failure; -0.2 is the default |PrivLeak|
# bound of the privacy_leak tests (docs/privacy.md says why).
OVER_UNLEARNING = -0.2


@dataclass(frozen=True)
class TokenStats:
    """One record's answer tokens: log p(x_t | x_<t), and the mean and standard deviation
    of log p(z | x_<t) over the vocabulary under the model's own distribution (for
    min-k%++)."""

    logprobs: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]
    answer: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "logprobs": list(self.logprobs),
            "means": list(self.means),
            "stds": list(self.stds),
            "answer": self.answer,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TokenStats:
        return cls(
            tuple(value["logprobs"]), tuple(value["means"]), tuple(value["stds"]), value["answer"]
        )


def token_stats(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Record],
    what: str,
    batch_size: int = 16,
) -> list[TokenStats]:
    """The answer tokens' log-probabilities of every record, in order (one forward pass per
    batch of similar lengths, left-padded, as ``scoring.score``)."""
    import torch

    encoded = encode_all(tokenizer, records, MAX_LENGTH, what)
    pad = pad_token_id(tokenizer)
    device = next(model.parameters()).device
    results: list[TokenStats | None] = [None] * len(records)
    was_training = model.training
    model.eval()
    try:
        with inference(model):
            for indices in length_buckets(encoded, batch_size):
                batch = collate([encoded[i] for i in indices], pad, device, left=True)
                logits, labels = answer_logits(model, batch)
                logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
                targets = labels[:, 1:]
                mask = targets >= 0
                chosen = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                probs = logp.exp()
                mean = (probs * logp).sum(-1)
                std = ((probs * logp.square()).sum(-1) - mean.square()).clamp(min=0).sqrt()
                for row, index in enumerate(indices):
                    keep = mask[row]
                    results[index] = TokenStats(
                        tuple(chosen[row][keep].tolist()),
                        tuple(mean[row][keep].tolist()),
                        tuple(std[row][keep].tolist()),
                        records[index].answer,
                    )
    finally:
        model.train(was_training)
    return [each for each in results if each is not None]


# --- the attacks: a score per record, higher = more likely a member -------------------------


def loss_score(stats: TokenStats) -> float:
    """LOSS (Yeom et al. 2018, "Privacy Risk in Machine Learning: Analyzing the Connection to
    Overfitting"): the answer's mean token log-probability (minus its loss)."""
    return sum(stats.logprobs) / len(stats.logprobs)


def zlib_score(stats: TokenStats) -> float:
    """zlib ratio (Carlini et al. 2021, "Extracting Training Data from Large Language
    Models", Sec. 5.1): the loss divided by the answer's zlib-compressed length in bytes,
    negated; text that compresses well (and so is likely anyway) counts for less."""
    return loss_score(stats) / len(zlib.compress(stats.answer.encode()))


def _lowest_mean(values: Sequence[float], k: float) -> float:
    count = max(1, math.floor(len(values) * k))
    return sum(sorted(values)[:count]) / count


def min_k_score(stats: TokenStats, k: float = MIN_K) -> float:
    """Min-K% Prob (Shi et al. 2024, "Detecting Pretraining Data from Large Language
    Models", ICLR): the mean log-probability of the k% least likely answer tokens."""
    return _lowest_mean(stats.logprobs, k)


def min_k_plus_plus_score(stats: TokenStats, k: float = MIN_K) -> float:
    """Min-K%++ (Zhang et al. 2025, "Min-K%++: Improved Baseline for Detecting Pre-Training
    Data from Large Language Models", ICLR): each token's log-probability standardized by the
    mean and standard deviation of log p(z) under the model's distribution at that position
    (how far the token is a mode), then the mean of the k% lowest."""
    standardized = [
        (value - mean) / std if std > 0 else 0.0
        for value, mean, std in zip(stats.logprobs, stats.means, stats.stds)
    ]
    return _lowest_mean(standardized, k)


ATTACKS: dict[str, Callable[[TokenStats], float]] = {
    "loss": loss_score,
    "zlib": zlib_score,
    "min_k": min_k_score,
    "min_k_plus_plus": min_k_plus_plus_score,
}


def auc(members: Sequence[float], non_members: Sequence[float]) -> float:
    """The probability that a member's score is above a non-member's (ties count half): the
    area under the ROC curve, from the ranks (Mann-Whitney U / (n m))."""
    if not members or not non_members:
        raise ValueError("an AUC needs at least one member and one non-member score")
    pooled = sorted([(value, 1) for value in members] + [(value, 0) for value in non_members])
    rank_sum = 0.0
    start = 0
    while start < len(pooled):
        end = start
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[start][0]:
            end += 1
        mid_rank = (start + end) / 2 + 1  # ranks from 1; tied values share their mean rank
        rank_sum += mid_rank * sum(flag for _, flag in pooled[start : end + 1])
        start = end + 1
    n, m = len(members), len(non_members)
    return (rank_sum - n * (n + 1) / 2) / (n * m)


def attack_aucs(forget: Sequence[TokenStats], holdout: Sequence[TokenStats]) -> dict[str, float]:
    """Every attack's AUC of forget against holdout."""
    return {
        name: auc([score(s) for s in forget], [score(s) for s in holdout])
        for name, score in ATTACKS.items()
    }


def auc_interval(
    forget: Sequence[float], holdout: Sequence[float], confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """A percentile bootstrap interval of the AUC (both sets resampled, 1000 times)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    f, h = np.asarray(forget), np.asarray(holdout)
    values = []
    for _ in range(1000):
        a = f[rng.integers(0, len(f), len(f))]
        b = h[rng.integers(0, len(h), len(h))]
        greater = (a[:, None] > b[None, :]).mean()
        ties = (a[:, None] == b[None, :]).mean()
        values.append(greater + ties / 2)
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def privleak(method_auc: float, oracle_auc: float) -> float:
    """MUSE's PrivLeak: the method's AUC relative to the oracle's."""
    return (method_auc - oracle_auc) / oracle_auc


def privleak_verdict(value: float, bound: float) -> str:
    """PrivLeak in plain words, against the bound of the privacy_leak tests."""
    if value < -bound:
        return (
            f"over-unlearning: the forget set is far less likely than unseen text (PrivLeak "
            f"{value:+.1%}); a model that never saw it would not single it out, this one does"
        )
    if value > bound:
        return (
            f"leaks membership: the forget set is still told apart from unseen text (PrivLeak "
            f"{value:+.1%})"
        )
    return f"indistinguishable from the oracle within +-{bound:.0%} (PrivLeak {value:+.1%})"
