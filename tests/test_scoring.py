"""Teacher-forced scoring against hand-built logits, and perplexity."""

import math

import pytest
import torch

from pytest_unlearn.encoding import IGNORE_INDEX, Encoded, collate, length_buckets
from pytest_unlearn.scoring import ItemScore, per_item_nll, perplexity, score


class TableModel(torch.nn.Module):
    """Predicts next tokens from a fixed table: logits favour ``table[token]``."""

    def __init__(self, table: dict[int, int], vocab: int = 10) -> None:
        super().__init__()
        self.table = table
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        for b in range(input_ids.shape[0]):
            for t in range(input_ids.shape[1]):
                logits[b, t, self.table.get(int(input_ids[b, t]), 0)] = 5.0
        return type("Out", (), {"logits": logits})()


def test_collate_masks_prompt_and_padding():
    batch = collate([Encoded((1, 2, 3, 4), 2, False), Encoded((1, 5), 1, False)], pad_id=0)
    assert batch["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 3, 4],
                                        [IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_score_counts_only_answer_tokens():
    # Sequence 1 2 | 3 4: the table predicts 2->3 (right) and 3->9 (wrong, 4 expected).
    model = TableModel({1: 2, 2: 3, 3: 9})
    [result] = score(model, [Encoded((1, 2, 3, 4), 2, False)], pad_id=0)
    assert result.answer_tokens == 2
    assert result.token_accuracy == 0.5
    assert not result.recalled(1.0)
    assert result.recalled(0.5)
    assert not result.recalled(0.6)


def test_score_is_exact_when_every_answer_token_is_the_argmax():
    model = TableModel({1: 2, 2: 3, 3: 4})
    [result] = score(model, [Encoded((1, 2, 3, 4), 2, False)], pad_id=0)
    assert result.token_accuracy == 1.0 and result.recalled(1.0)


def test_batched_scores_equal_one_at_a_time_in_input_order():
    model = TableModel({1: 2, 2: 3, 3: 4, 5: 6})
    encoded = [Encoded((1, 2, 3, 4), 2, False), Encoded((1, 5, 6), 1, False),
               Encoded((2, 3, 9, 9, 9), 3, False)]
    batched = score(model, encoded, pad_id=0, batch_size=2)
    single = [score(model, [enc], pad_id=0)[0] for enc in encoded]
    assert batched == single


def test_mean_logprob_matches_cross_entropy():
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[IGNORE_INDEX, 3, 5, 1]])
    expected = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:])
    assert per_item_nll(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_perplexity_is_exp_of_minus_mean_logprob():
    assert perplexity([-1.0, -3.0]) == pytest.approx(math.exp(2.0))
    assert math.isnan(perplexity([]))


def test_length_buckets_cover_every_index_once():
    encoded = [Encoded(tuple(range(n)), 1, False) for n in (5, 2, 9, 3, 7)]
    buckets = length_buckets(encoded, 2)
    assert sorted(i for bucket in buckets for i in bucket) == list(range(5))
    assert [len(encoded[i].input_ids) for i in buckets[0]] == [2, 3]


def test_item_score_token_threshold():
    assert ItemScore(0.95, -0.1, 20).recalled(0.9)
    assert not ItemScore(0.95, -0.1, 20).recalled(1.0)
