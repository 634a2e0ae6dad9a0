"""What the reference code does that the paper does not say, offered as options (off by
default, so the published figures stay what the defaults give): gradient-norm clipping,
random labels on the question too, adversarial labels from the model before injection, and
MemFlex's items shuffled one by one. ``benchmarks/reference_behaviour.yaml`` turns them on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pytest_unlearn.clipping import keyed
from pytest_unlearn.encoding import Encoded
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.injection import InjectionConfig
from pytest_unlearn.objectives import with_random_targets
from pytest_unlearn.training import Trainer, TrainSettings, answer_nll
from pytest_unlearn_methods.adversarial import Adversarial, AdversarialConfig
from pytest_unlearn_methods.memflex import MemFlexConfig, shuffled
from pytest_unlearn_methods.memflex_controls import MemFlexAllTensorsConfig
from pytest_unlearn_methods.random_labels import RandomLabelsConfig

ROOT = Path(__file__).resolve().parent.parent


def _small_llama(seed: int = 0):  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def _records(count: int) -> list[Encoded]:
    import random

    rng = random.Random(0)
    return [
        Encoded(tuple([1] + [rng.randrange(4, 64) for _ in range(11)]), 6, False)
        for _ in range(count)
    ]


@pytest.mark.parametrize("max_grad_norm", [None, 1e-3])
def test_gradients_are_clipped_to_max_grad_norm(max_grad_norm: float | None) -> None:
    """Every step's gradient, as the optimizer saw it, has at most the norm asked for, and
    the log counts the steps it clipped; without the setting nothing is clipped."""
    import torch

    model = _small_llama()
    examples = _records(8)
    norms: list[float] = []

    def after_step(step: int) -> None:
        if step:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    settings = TrainSettings(
        lr=1e-3, epochs=3, batch_size=4, grad_accum=1, max_grad_norm=max_grad_norm
    )
    log = Trainer(
        model,
        examples,
        lambda batch: answer_nll(model, batch, 0),
        settings,
        0,
        "clip test",
        after_step=after_step,
    ).run()
    assert len(norms) == log.steps == 6
    if max_grad_norm is None:
        assert log.clipped_steps == 0 and min(norms) > 1e-3
    else:
        assert log.clipped_steps == log.steps
        assert max(norms) <= max_grad_norm * 1.001


@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), "1e0", True])
def test_a_bad_max_grad_norm_is_refused(value: object) -> None:
    settings = TrainSettings(max_grad_norm=value)  # type: ignore[arg-type]
    with pytest.raises(UnlearnError, match="max_grad_norm must be a finite number > 0"):
        settings.check("test")


def test_unset_clipping_keeps_the_cache_keys() -> None:
    """A model trained before max_grad_norm existed keeps its key while it is unset."""
    fields = dataclasses.asdict(TrainSettings())
    assert "max_grad_norm" not in keyed(fields)
    assert keyed(dataclasses.asdict(TrainSettings(max_grad_norm=1.0)))[
        "max_grad_norm"
    ] == pytest.approx(1.0)
    assert "max_grad_norm" not in InjectionConfig().as_payload()["tiny"]


def test_random_labels_on_the_question_too() -> None:
    """``label_positions: all``: every position after the first gets a label, random but
    for special tokens, which keep their own; the default labels the answer only."""
    special = 2
    record = Encoded((1, 10, special, 11, 12, 13, 14), 4, False)
    choices = list(range(20, 40))
    [answer_only] = with_random_targets([record], choices, seed=0)
    assert answer_only.prompt_length == 4 and len(answer_only.targets or ()) == 3
    [every] = with_random_targets([record], choices, seed=0, question_too=frozenset({1, special}))
    assert every.prompt_length == 1 and every.input_ids == record.input_ids
    targets = every.targets or ()
    assert len(targets) == 6
    assert targets[1] == special  # the special token keeps its label
    assert all(t in choices for i, t in enumerate(targets) if i != 1)
    assert RandomLabelsConfig().label_positions == "answer"
    with pytest.raises(UnlearnError, match="label_positions must be one of answer, all"):
        RandomLabelsConfig(label_positions="question").check("test")


def test_adversarial_labels_from_the_model_before_injection() -> None:
    """``targets_from: base`` labels with the LoRA adapter turned off, that is the model
    before injection; a model trained in full has no such model and is refused."""
    import torch

    from pytest_unlearn.models import attach_lora
    from pytest_unlearn.objectives import with_adversarial_targets

    base_copy = _small_llama(seed=1)
    model = attach_lora(_small_llama(seed=1))
    with torch.no_grad():  # an injected adapter: it changes the model's predictions
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    records = _records(4)
    method = Adversarial(AdversarialConfig(targets_from="base"))
    with method._labelling_model(model):
        from_base = with_adversarial_targets(model, records, 0)
    injected = with_adversarial_targets(model, records, 0)
    assert [r.targets for r in from_base] == [
        r.targets for r in with_adversarial_targets(base_copy, records, 0)
    ]
    assert [r.targets for r in from_base] != [r.targets for r in injected]
    with pytest.raises(UnlearnError, match="only a LoRA-injected model has"):
        method._labelling_model(base_copy)
    with pytest.raises(UnlearnError, match="targets_from must be one of start, base"):
        AdversarialConfig(targets_from="vanilla").check("test")


def test_memflex_shuffles_pairs_or_items() -> None:
    items = [f"{kind}{i}" for i in range(40) for kind in ("f", "r")]
    by_pair = shuffled(items, "pair", 42)
    by_item = shuffled(items, "item", 42)
    assert sorted(by_pair) == sorted(by_item) == sorted(items)
    assert all(by_pair[i][1:] == by_pair[i + 1][1:] for i in range(0, len(items), 2))
    assert not all(by_item[i][1:] == by_item[i + 1][1:] for i in range(0, len(items), 2))
    assert MemFlexConfig().shuffle_unit == "pair"
    for config_class in (MemFlexConfig, MemFlexAllTensorsConfig):
        with pytest.raises(UnlearnError, match="shuffle_unit must be one of pair, item"):
            config_class(shuffle_unit="batch").check("test")


@pytest.mark.parametrize("name", ["reference_behaviour.yaml", "reference_behaviour_lora.yaml"])
def test_the_reference_behaviour_files_name_real_fields(name: str) -> None:
    """Every key of the benchmarks' reference-behaviour files is a field of its method's
    config (the plugin refuses unknown keys; this keeps the files in step with the
    methods), and each clips at 1.0."""
    from pytest_unlearn.method import make_config
    from pytest_unlearn.registry import MethodRegistry

    sections = yaml.safe_load((ROOT / "benchmarks" / name).read_text())
    registry = MethodRegistry.from_entry_points()
    for section, overrides in sections.items():
        if section == "inject":
            assert InjectionConfig().overridden(overrides, name).tiny.max_grad_norm == 1.0
            continue
        config = make_config(registry.get(section), "tiny", overrides, name)
        assert config.max_grad_norm == 1.0
