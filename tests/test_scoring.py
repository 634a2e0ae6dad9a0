"""Teacher-forced scoring against hand-built logits, and perplexity."""

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.encoding import IGNORE_INDEX, Encoded, collate, length_buckets
from pytest_unlearn.scoring import (
    ItemScore,
    _answer_figures_batched,
    _answer_figures_by_row,
    _is_argmax,
    per_item_nll,
    perplexity,
    score,
)


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
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, IGNORE_INDEX, 3, 4],
        [IGNORE_INDEX, 5, IGNORE_INDEX, IGNORE_INDEX],
    ]
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
    encoded = [
        Encoded((1, 2, 3, 4), 2, False),
        Encoded((1, 5, 6), 1, False),
        Encoded((2, 3, 9, 9, 9), 3, False),
    ]
    batched = score(model, encoded, pad_id=0, batch_size=2)
    single = [score(model, [enc], pad_id=0)[0] for enc in encoded]
    assert batched == single


def test_score_gives_the_same_figures_the_gpu_way(monkeypatch: pytest.MonkeyPatch):
    # On a GPU, score() keeps each batch's figures on the device until every batch is
    # queued; here the same path on the CPU, against the per-row path the CPU takes.
    import pytest_unlearn.scoring as scoring

    torch.manual_seed(0)
    model = TableModel({1: 2, 2: 3, 3: 4, 5: 6, 6: 7})
    encoded = [
        Encoded((1, 2, 3, 4), 2, False),
        Encoded((1, 5, 6, 7, 8), 2, False),
        Encoded((2, 3, 9, 9, 9), 3, False),
        Encoded((5, 6, 7), 1, False),
        Encoded((1, 2, 3), 2, False, targets=(9,)),
    ]
    by_row = score(model, encoded, pad_id=0, batch_size=2)
    monkeypatch.setattr(scoring, "_answer_figures", scoring._answer_figures_batched)
    on_device = score(model, encoded, pad_id=0, batch_size=2)
    assert [(s.token_accuracy, s.answer_tokens) for s in on_device] == [
        (s.token_accuracy, s.answer_tokens) for s in by_row
    ]
    assert [s.mean_logprob for s in on_device] == pytest.approx(
        [s.mean_logprob for s in by_row], abs=1e-6
    )
    assert len({s.token_accuracy for s in by_row}) > 1  # the items differ


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.sampled_from([-2.0, 0.0, 1.0, 3.0, math.inf, -math.inf, math.nan]),
            min_size=5,
            max_size=5,
        ),
        min_size=1,
        max_size=6,
    ),
    seed=st.integers(0, 2**16),
)
def test_is_argmax_agrees_with_argmax_on_ties_infinities_and_nan(rows, seed):
    # A handful of values, so that most rows tie at the top; argmax takes the first maximal
    # index and ranks NaN above every number.
    scores = torch.tensor(rows)
    targets = torch.randint(0, 5, (len(rows),), generator=torch.Generator().manual_seed(seed))
    targets[0] = scores[0].argmax()  # at least one row whose target is the argmax
    assert torch.equal(_is_argmax(scores, targets), scores.argmax(dim=-1) == targets)


def test_is_argmax_on_unique_maxima_needs_no_argmax(monkeypatch: pytest.MonkeyPatch):
    torch.manual_seed(0)
    scores = torch.randn(50, 300)
    targets = torch.randint(0, 300, (50,))
    targets[:20] = scores[:20].argmax(dim=-1)
    expected = scores.argmax(dim=-1) == targets

    def no_argmax(*args, **kwargs):
        raise AssertionError("argmax called on rows with a unique maximum")

    monkeypatch.setattr(torch.Tensor, "argmax", no_argmax)
    found = _is_argmax(scores, targets)
    assert found.sum() == 20
    assert torch.equal(found, expected)


def test_mean_logprob_matches_cross_entropy():
    logits = torch.randn(1, 4, 7)
    labels = torch.tensor([[IGNORE_INDEX, 3, 5, 1]])
    expected = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:])
    assert per_item_nll(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_cpu_and_gpu_ways_of_scoring_a_batch_agree_with_a_direct_computation():
    # Left-padded rows: answers of 2, 1 and 0 tokens, and one whose middle position is not
    # scored (IGNORE_INDEX inside the answer, as a target may be).
    torch.manual_seed(0)
    logits = torch.randn(4, 5, 11)
    logits[0, 2, 7] = 50.0  # row 0's first answer token (7, at position 3) is the argmax
    I = IGNORE_INDEX  # noqa: E741 (reads as a mask in the matrix below)
    labels = torch.tensor([[I, I, I, 7, 2], [I, I, I, I, 4], [I, I, I, I, I], [I, I, 3, I, 5]])
    expected = []
    for row in range(4):
        positions = [t for t in range(1, 5) if labels[row, t] != I]
        targets = labels[row, positions]
        answer_logits = logits[row, [t - 1 for t in positions]]
        if not positions:
            expected.append((0.0, 0.0, 0))
            continue
        correct = (answer_logits.argmax(-1) == targets).float().mean().item()
        logprob = -torch.nn.functional.cross_entropy(answer_logits, targets).item()
        expected.append((correct, logprob, len(positions)))
    on_device = _answer_figures_batched(logits, labels)  # tensors: the GPU way
    assert all(isinstance(each, torch.Tensor) for each in on_device)
    for figures in (
        _answer_figures_by_row(logits, labels),
        tuple(each.tolist() for each in on_device),
    ):
        accuracy, logprob, counts = figures
        assert counts == [count for _, _, count in expected]
        assert accuracy == pytest.approx([a for a, _, _ in expected], abs=1e-12)
        assert logprob == pytest.approx([lp for _, lp, _ in expected], abs=1e-5)
    assert expected[0][0] >= 0.5  # the forced argmax counts as a hit


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


def _loop_scores(model: torch.nn.Module, encoded: list[Encoded]) -> list[tuple[float, float]]:
    """One unpadded item at a time with every logit computed: the reference."""
    out = []
    with torch.inference_mode():
        for enc in encoded:
            ids = torch.tensor([enc.input_ids])
            logits = model(input_ids=ids).logits[0, enc.prompt_length - 1 : -1].float()
            answer = ids[0, enc.prompt_length :]
            out.append(
                (
                    (logits.argmax(-1) == answer).float().mean().item(),
                    -torch.nn.functional.cross_entropy(logits, answer).item(),
                )
            )
    return out


def _small_model(architecture: str) -> torch.nn.Module:
    """A random LLaMA (rotary positions) or GPT-2 (absolute positions), optionally LoRA-wrapped."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if architecture.startswith("llama"):
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=97,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=64,
            )
        )
    else:
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=97,
                n_embd=32,
                n_layer=2,
                n_head=4,
                n_positions=64,
                bos_token_id=1,
                eos_token_id=1,
            )
        )
    if architecture.endswith("lora"):
        from peft import LoraConfig, get_peft_model

        with warnings.catch_warnings():  # peft 0.21 calls a transformers alias deprecated in 5
            warnings.filterwarnings(
                "ignore",
                message="`is_gradient_checkpointing` is deprecated",
                category=FutureWarning,
            )
            model = get_peft_model(
                model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
            )
    return model


def _random_records() -> list[Encoded]:
    """Records of different prompt and answer lengths, so a batch needs padding."""
    generator = torch.Generator().manual_seed(1)
    encoded = []
    for length, prompt in [(9, 4), (17, 12), (5, 2), (13, 3), (20, 15), (6, 5)]:
        ids = tuple(torch.randint(1, 97, (length,), generator=generator).tolist())
        encoded.append(Encoded(ids, prompt, False))
    return encoded


@pytest.mark.parametrize("architecture", ["llama", "gpt2", "llama+lora"])
def test_answer_only_logits_of_left_padded_batches_equal_one_item_at_a_time(architecture):
    # Left padding with position ids, and the output layer on answer positions only, give
    # the figures of unpadded full forward passes, for rotary (LLaMA) and absolute (GPT-2)
    # positions, and through a PEFT wrapper.
    model = _small_model(architecture)
    model.eval()
    encoded = _random_records()
    batched = score(model, encoded, pad_id=0, batch_size=4)
    for enc, (accuracy, logprob), result in zip(encoded, _loop_scores(model, encoded), batched):
        assert result.answer_tokens == enc.answer_length
        assert round(accuracy * result.answer_tokens) == round(
            result.token_accuracy * result.answer_tokens
        )
        assert result.mean_logprob == pytest.approx(logprob, abs=1e-5)


@pytest.mark.parametrize("architecture", ["llama", "gpt2", "llama+lora"])
def test_training_loss_and_gradients_of_a_padded_batch_equal_one_item_at_a_time(architecture):
    # The training losses of a padded batch give each item the NLL, and the batch the
    # gradient, of unpadded forward passes one item at a time.
    from pytest_unlearn.objectives import answer_logprob_and_length
    from pytest_unlearn.training import answer_nll

    model = _small_model(architecture)
    model.eval()  # no dropout, so the two computations see the same function
    encoded = _random_records()
    trainable = [p for p in model.parameters() if p.requires_grad]

    reference_nll = []
    for enc in encoded:
        ids = torch.tensor([enc.input_ids])
        logits = model(input_ids=ids).logits[0, enc.prompt_length - 1 : -1]
        nll = torch.nn.functional.cross_entropy(logits, ids[0, enc.prompt_length :])
        nll.backward()
        reference_nll.append(nll.item())
    reference_grads = [p.grad.clone() for p in trainable]
    model.zero_grad(set_to_none=True)

    nll = answer_nll(model, encoded, pad_id=0)
    nll.sum().backward()
    assert nll.tolist() == pytest.approx(reference_nll, abs=1e-5)
    for parameter, expected in zip(trainable, reference_grads):
        torch.testing.assert_close(parameter.grad, expected, rtol=1e-4, atol=1e-6)

    with torch.no_grad():
        logprob, length = answer_logprob_and_length(model, encoded, pad_id=0)
    assert length.tolist() == [enc.answer_length for enc in encoded]
    assert (-logprob / length).tolist() == pytest.approx(reference_nll, abs=1e-5)
