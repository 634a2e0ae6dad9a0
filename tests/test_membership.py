"""Membership inference, forget quality, the holdout split and quantization, unit by unit,
on constructed log-probabilities and weights whose answers are known."""

from __future__ import annotations

import math
import random

import pytest

from pytest_unlearn.data import DomainData, Record, load_domain
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.forget_quality import forget_quality, kolmogorov_p, ks_statistic
from pytest_unlearn.holdout import (
    forget_set,
    null_half_width,
    required_holdout,
    shortfall,
    with_holdout,
)
from pytest_unlearn.membership import (
    ATTACKS,
    TokenStats,
    auc,
    auc_interval,
    privleak,
    privleak_verdict,
)
from pytest_unlearn.membership_report import _auc


def stats(logprobs, means=None, stds=None, answer="the answer"):
    means = means or [0.0] * len(logprobs)
    stds = stds or [1.0] * len(logprobs)
    return TokenStats(tuple(logprobs), tuple(means), tuple(stds), answer)


def aucs_of(members, non_members):
    return {
        name: auc([score(s) for s in members], [score(s) for s in non_members])
        for name, score in ATTACKS.items()
    }


# --- the AUC --------------------------------------------------------------------------------


def test_auc_counts_pairs_and_half_ties():
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    # pairs: 1<1.5, 1<2.5, 2>1.5, 2<2.5, 3>1.5, 3>2.5 -> 3 of 6
    assert auc([1, 2, 3], [1.5, 2.5]) == 0.5
    assert auc([1, 1], [1]) == 0.5
    assert auc([2, 1], [1, 0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_auc_matches_the_vectorized_one_of_the_report():
    rng = random.Random(1)
    members = [round(rng.gauss(0.3, 1), 1) for _ in range(40)]
    others = [round(rng.gauss(0, 1), 1) for _ in range(25)]
    import numpy as np

    assert auc(members, others) == pytest.approx(_auc(np.array(members), np.array(others)))


def test_auc_interval_holds_the_auc():
    rng = random.Random(2)
    members = [rng.gauss(1, 1) for _ in range(60)]
    others = [rng.gauss(0, 1) for _ in range(30)]
    low, high = auc_interval(members, others)
    assert low < auc(members, others) < high
    assert high - low < 0.4


# --- each attack on constructed log-probabilities -------------------------------------------


def test_loss_attack_ranks_by_the_mean_log_probability():
    # Members: mostly certain tokens and one very unlikely one; non-members: uniformly so-so.
    members = [stats([-0.1, -0.1, -0.1, -0.1, -3.0]), stats([-0.2, -0.1, -0.1, -0.1, -2.5])]
    others = [stats([-1.0] * 5), stats([-0.9] * 5)]
    aucs = aucs_of(members, others)
    assert aucs["loss"] == 1.0
    # min-k% (the lowest 20%: one token of five) sees the unlikely token: the other way.
    assert aucs["min_k"] == 0.0


def test_zlib_attack_discounts_text_that_compresses_well():
    # The same loss; the members' answers are hard to compress, the others' repetitive.
    members = [
        stats([-1.0], answer="q7#Lx!f2@Wm9zR$e1&Tk"),
        stats([-1.0], answer="Zp4%vN8^bY3*cQ6(jH0"),
    ]
    others = [stats([-1.0], answer="a" * 20), stats([-1.0], answer="ab" * 10)]
    aucs = aucs_of(members, others)
    assert aucs["zlib"] == 1.0
    assert aucs["loss"] == 0.5  # ties: loss alone cannot tell them apart


def test_min_k_plus_plus_standardizes_by_the_model_distribution():
    # The same token log-probability; for members it is far above the position's mean log
    # probability (a mode), for the others below it.
    members = [stats([-1.0] * 5, means=[-3.0] * 5), stats([-1.0] * 5, means=[-2.5] * 5)]
    others = [stats([-1.0] * 5, means=[-0.5] * 5), stats([-1.0] * 5, means=[-0.2] * 5)]
    aucs = aucs_of(members, others)
    assert aucs["min_k_plus_plus"] == 1.0
    assert aucs["min_k"] == 0.5
    # A position where the model is certain (std 0) contributes 0, not a division by zero.
    assert ATTACKS["min_k_plus_plus"](stats([-1.0], stds=[0.0])) == 0.0


def test_min_k_averages_the_lowest_fifth():
    record = stats([-0.1] * 8 + [-4.0, -2.0])
    assert ATTACKS["min_k"](record) == pytest.approx(-3.0)
    assert ATTACKS["loss"](record) == pytest.approx((-0.8 - 6.0) / 10)


def test_a_known_partial_auc_for_every_attack():
    # One number per record, the same for every attack (single tokens, mean 0, std 1, the
    # same answer): members 1, 2, 3 against non-members 1.5, 2.5 give AUC 0.5; members
    # 2, 3, 4 against 1.5, 2.5 give 5/6.
    def records(values):
        return [stats([-v]) for v in values]  # log-probability -v: higher v, lower score

    for name, value in aucs_of(records([3, 2, 1]), records([2.5, 1.5])).items():
        assert value == pytest.approx(0.5), name
    for name, value in aucs_of(records([2, 1, 0.5]), records([2.5, 1.5])).items():
        assert value == pytest.approx(5 / 6), name


def test_privleak_and_its_verdicts():
    assert privleak(0.6, 0.5) == pytest.approx(0.2)
    assert privleak(0.2, 0.5) == pytest.approx(-0.6)
    assert privleak_verdict(-0.6, 0.2).startswith("over-unlearning")
    assert privleak_verdict(0.5, 0.2).startswith("leaks membership")
    assert privleak_verdict(0.05, 0.2).startswith("indistinguishable")


# --- forget quality ------------------------------------------------------------------------


def test_ks_statistic_and_p_value():
    assert ks_statistic([1, 2, 3], [4, 5, 6]) == 1.0
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    # The 5% critical value of the Kolmogorov distribution is 1.358 (large samples).
    big = 10**6
    assert kolmogorov_p(1.358 / math.sqrt(big / 2), big, big) == pytest.approx(0.05, abs=0.002)
    assert kolmogorov_p(0.0, 10, 10) == 1.0


def test_forget_quality_verdict_names_the_direction():
    rng = random.Random(3)
    oracle = [rng.gauss(-3, 0.5) for _ in range(100)]
    same = forget_quality([rng.gauss(-3, 0.5) for _ in range(100)], oracle)
    assert same.p_value > 0.05 and same.verdict().startswith("like the oracle")
    knows = forget_quality([rng.gauss(-0.5, 0.5) for _ in range(100)], oracle)
    assert knows.p_value < 1e-6 and "still knows" in knows.verdict()
    below = forget_quality([rng.gauss(-8, 0.5) for _ in range(100)], oracle)
    assert "below never-learned" in below.verdict()


# --- the holdout ---------------------------------------------------------------------------


def test_holdout_is_ten_percent_out_of_unlearn_train_and_content_hashed():
    data = load_domain("builtin", "privacy")
    held = with_holdout(data, "auto", 0, "--unlearn-holdout")
    scope = len(data.splits["unlearn_train"]) + len(data.splits["unlearn_val"])
    assert len(held.holdout) == max(math.ceil(0.1 * scope), required_holdout(scope))
    assert set(held.holdout).isdisjoint(held.all_records())
    assert set(held.holdout) | set(held.splits["unlearn_train"]) == set(
        data.splits["unlearn_train"]
    )
    assert held.splits["unlearn_val"] == data.splits["unlearn_val"]  # items under test stay
    assert forget_set(held) == [*held.splits["unlearn_train"], *held.splits["unlearn_val"]]
    # Not order-dependent: the same records shuffled give the same holdout.
    shuffled = list(data.splits["unlearn_train"])
    random.Random(5).shuffle(shuffled)
    other = DomainData(data.domain, data.source, {**data.splits, "unlearn_train": tuple(shuffled)})
    assert with_holdout(other, "auto", 0, "x").holdout == held.holdout
    assert with_holdout(data, "auto", 1, "x").holdout != held.holdout  # seeded
    assert held.content_hash() != data.content_hash()
    assert with_holdout(data, 0.0, 0, "x") is data


def test_a_holdout_too_small_for_an_auc_says_how_many_records_it_needs():
    data = load_domain("builtin", "privacy")
    scope = len(data.splits["unlearn_train"]) + len(data.splits["unlearn_val"])
    needed = required_holdout(scope)
    assert null_half_width(scope - needed, needed) <= 0.15
    assert null_half_width(scope - needed + 1, needed - 1) > 0.15
    with pytest.raises(UnlearnError, match=f"needs at least {needed} records"):
        with_holdout(data, 0.05, 0, "--unlearn-holdout")


def test_data_too_small_for_a_holdout_takes_none_and_says_why():
    records = tuple(Record(f"q{i}", f"a{i}") for i in range(3))
    small = DomainData(
        "privacy",
        "test",
        {
            "unlearn_train": records,
            "unlearn_val": tuple(Record(f"v{i}", "x") for i in range(3)),
            "retention_train": tuple(Record(f"r{i}", "x") for i in range(3)),
            "retention_val": tuple(Record(f"s{i}", "x") for i in range(3)),
        },
    )
    assert with_holdout(small, "auto", 0, "x").holdout == ()
    assert "6 Unlearn Scope records" in shortfall(small)
    with pytest.raises(UnlearnError, match="6 Unlearn Scope records"):
        with_holdout(small, 0.3, 0, "--unlearn-holdout")


def test_a_record_also_in_another_split_is_never_held_out():
    data = load_domain("builtin", "privacy")
    duplicate = data.splits["unlearn_train"]
    every = with_holdout(data, "auto", 0, "x").holdout
    # Put every would-be holdout record into unlearn_val too: none of them may be held out.
    changed = DomainData(
        data.domain,
        data.source,
        {**data.splits, "unlearn_val": data.splits["unlearn_val"] + tuple(every)},
    )
    held = with_holdout(changed, "auto", 0, "x").holdout
    assert held and set(held).isdisjoint(every)
    assert set(held) <= set(duplicate)


# --- quantization --------------------------------------------------------------------------


def test_fake_quantize_rounds_each_group_of_128_to_its_grid():
    import torch

    from pytest_unlearn.quantization import fake_quantize

    torch.manual_seed(0)
    weight = torch.randn(3, 200)  # a full group of 128 and a short one of 72
    for bits in (8, 4):
        levels = 2 ** (bits - 1) - 1
        quantized = fake_quantize(weight, bits)
        for group in (slice(0, 128), slice(128, 200)):
            original, rounded = weight[:, group], quantized[:, group]
            scale = original.abs().amax(dim=1, keepdim=True) / levels
            steps = rounded / scale
            assert torch.allclose(steps, steps.round(), atol=1e-4)
            assert steps.abs().max() <= levels + 1e-4
            assert ((rounded - original).abs() <= scale / 2 + 1e-6).all()
        assert len(torch.unique(quantized[0, :128])) <= 2 * levels + 1
    assert (fake_quantize(weight, 4) - weight).abs().mean() > (
        fake_quantize(weight, 8) - weight
    ).abs().mean()


def test_quantized_copy_leaves_the_model_and_its_head_alone():
    import torch

    from pytest_unlearn.models import ModelHandle, ModelSpec
    from pytest_unlearn.quantization import quantized_copy
    from pytest_unlearn.tiny import build_tiny_model, train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(["a small text to train on"] * 4)
    model = build_tiny_model(tokenizer, 0)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    handle = ModelHandle(model, tokenizer, ModelSpec.parse("tiny"), [], "key")
    copy = quantized_copy(handle, 4).model
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    changed = [
        name for name, tensor in copy.state_dict().items() if not torch.equal(tensor, before[name])
    ]
    assert changed and all("proj" in name for name in changed)
    assert torch.equal(copy.get_output_embeddings().weight, before["lm_head.weight"])


# --- the oracle given for a model tested as it is --------------------------------------------


def _model_folder(path, texts, architecture="llama"):
    """A folder with a config and a tokenizer (no weights: the check reads neither)."""
    from transformers import GPT2Config

    from pytest_unlearn.tiny import build_tiny_model, train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(texts)
    path.mkdir()
    tokenizer.save_pretrained(path)
    if architecture == "llama":
        build_tiny_model(tokenizer, 0).config.save_pretrained(path)
    else:
        config = GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2)
        config.architectures = ["GPT2LMHeadModel"]
        config.save_pretrained(path)
    return path


def test_an_oracle_of_another_architecture_or_tokenizer_is_an_error(tmp_path):
    from pytest_unlearn.models import ModelSpec
    from pytest_unlearn.oracle import check_same_model_kind

    texts = ["the tested model's text, for its tokenizer"] * 4
    tested = _model_folder(tmp_path / "tested", texts)
    same = _model_folder(tmp_path / "same", texts)
    check_same_model_kind(ModelSpec.parse(str(same)), ModelSpec.parse(str(tested)), False)
    other_tokenizer = _model_folder(tmp_path / "other-tok", ["quite different words here"] * 4)
    with pytest.raises(UnlearnError, match="its tokenizer .* is not that of the tested model"):
        check_same_model_kind(
            ModelSpec.parse(str(other_tokenizer)), ModelSpec.parse(str(tested)), False
        )
    gpt2 = _model_folder(tmp_path / "gpt2", texts, architecture="gpt2")
    with pytest.raises(UnlearnError, match=r"architecture gpt2 \['GPT2LMHeadModel'\] is not"):
        check_same_model_kind(ModelSpec.parse(str(gpt2)), ModelSpec.parse(str(tested)), False)


# --- the summary and the gate ------------------------------------------------------------------


def _record(method, seed, auc_value, oracle_value, p_value):
    from pytest_unlearn.membership_report import membership_record

    properties = {
        "unlearn_membership": True,
        "unlearn_method": method,
        "unlearn_domain": "privacy",
        "unlearn_seed": seed,
        "membership_model_key": f"key-{method}-{seed}",
        "membership_oracle_key": "oracle",
        "membership_forget": 459,
        "membership_holdout": 51,
        "forget_quality_ks": 0.3,
        "forget_quality_p": p_value,
    }
    for attack in ATTACKS:
        properties.update(
            {
                f"auc_{attack}": auc_value,
                f"oracle_auc_{attack}": oracle_value,
                f"vanilla_auc_{attack}": 0.9,
                f"privleak_{attack}": privleak(auc_value, oracle_value),
            }
        )
    return membership_record(properties, "failed", "PrivLeak outside the bounds")


def test_the_summary_names_over_unlearning_and_merges_into_the_rows():
    from types import SimpleNamespace

    from pytest_unlearn.membership_report import add_to_rows, membership_lines, membership_summary

    def no_data(domain):
        raise UnlearnError("no cache in this test")

    session = SimpleNamespace(
        membership={
            "a": _record("gradient_ascent", 0, 0.1, 0.5, 1e-9),
            "b": _record("gradient_ascent", 1, 0.2, 0.5, 1e-6),
            "c": _record("npo", 0, 0.52, 0.5, 0.4),
        },
        domain_data=no_data,
    )
    entries = membership_summary(session)
    by_method = {entry["method"]: entry for entry in entries}
    ga = by_method["gradient_ascent"]
    assert ga["seeds"] == [0, 1] and ga["auc_min_k"] == pytest.approx(0.15)
    assert ga["privleak"] == pytest.approx(-0.7) and ga["over_unlearning"]
    assert ga["verdict"].startswith("over-unlearning")
    assert ga["forget_quality_verdict"] == "unlike the oracle in 2 of 2 seeds (KS p < 0.05)"
    assert ga["intervals"] == {}  # the attack scores are not in a cache here: no interval
    npo = by_method["npo"]
    assert not npo["over_unlearning"] and npo["verdict"].startswith("indistinguishable")
    rows = [{"method": "gradient_ascent", "domain": "privacy", "prompt": "plain"}]
    add_to_rows(rows, entries)
    assert rows[0]["privleak"] == pytest.approx(-0.7) and rows[0]["over_unlearning"]
    lines = membership_lines(entries)
    assert all(len(line) <= 120 for line in lines), [line for line in lines if len(line) > 120]
    assert any("over-unlearning" in line for line in lines)


def test_the_gate_bounds_privleak_below_zero_and_the_tests_read_it(tmp_path):
    from types import SimpleNamespace

    from pytest_unlearn.gate_file import load_gate
    from pytest_unlearn.privacy_checks import privleak_bounds

    gate = tmp_path / "gate.yaml"
    gate.write_text(
        "domains:\n  privacy:\n    privleak: {min: -0.1, max: 0.15}\n"
        "    quant4_unlearn_success: {min: 0.8}\n    auc_min_k.upper: {max: 0.6}\n"
    )
    loaded = load_gate(gate)
    assert privleak_bounds(SimpleNamespace(gate=loaded), "privacy") == (-0.1, 0.15)
    assert privleak_bounds(SimpleNamespace(gate=None), "privacy") == (-0.2, 0.2)
    gate.write_text("domains:\n  privacy:\n    quant8_unlearn_success: {min: 80}\n")
    with pytest.raises(UnlearnError, match="outside"):
        load_gate(gate)


def test_a_model_tested_as_it_is_has_no_oracle_unless_one_is_given():
    from types import SimpleNamespace

    from pytest_unlearn.oracle import NO_ORACLE, NoOracle, oracle_payload, unavailable

    as_it_is = SimpleNamespace(tested_as_it_is=True, settings=SimpleNamespace(oracle=None))
    assert unavailable(as_it_is) == NO_ORACLE and "--unlearn-oracle=PATH" in NO_ORACLE
    with pytest.raises(NoOracle, match="--unlearn-inject=never"):
        oracle_payload(as_it_is, load_domain("builtin", "privacy"))
    given = SimpleNamespace(tested_as_it_is=True, settings=SimpleNamespace(oracle="/m"))
    injected = SimpleNamespace(tested_as_it_is=False, settings=SimpleNamespace(oracle=None))
    assert unavailable(given) is None and unavailable(injected) is None


def test_the_auc_chart_has_a_bar_per_method_and_attack_and_the_oracle_line(tmp_path):
    pytest.importorskip("matplotlib")
    from pytest_unlearn.plots import write_plots

    def row(method, value):
        figures = {f"auc_{a}": value for a in ATTACKS}
        figures.update({f"oracle_auc_{a}": 0.5 for a in ATTACKS})
        intervals = {f"auc_{a}": {"lower": value - 0.05, "upper": value + 0.05} for a in ATTACKS}
        return {
            "method": method,
            "domain": "privacy",
            "prompt": "plain",
            "unlearn_success": 0.5,
            "retention_success": 0.5,
            "intervals": intervals,
            **figures,
        }

    from pytest_unlearn.membership_plots import auc_figure

    rows = [row("none", 0.9), row("gradient_ascent", 0.1)]
    figure = auc_figure(rows)
    [axes] = figure.axes
    heights = sorted(round(patch.get_height(), 3) for patch in axes.patches)
    assert heights == [0.1] * len(ATTACKS) + [0.9] * len(ATTACKS)
    assert [text.get_text() for text in axes.get_xticklabels()] == [
        "loss",
        "zlib",
        "min-k%",
        "min-k%++",
    ]
    labels = axes.get_legend_handles_labels()[1]
    assert "oracle (retrain)" in labels and "chance (0.5)" in labels
    paths = write_plots(tmp_path, rows)
    assert tmp_path / "membership.png" in paths
