"""Sharded (FSDP) training: reading accelerate's FSDP config, and a model sharded with
torch's fully_shard, trained, and put back as it was (one gloo process here; two processes
train together in test_distributed.py)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.sharding import FsdpSettings, ShardedTraining, fsdp_from_environment

FSDP2 = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}


def test_without_fsdp_in_the_environment_there_are_no_settings() -> None:
    assert fsdp_from_environment({}) is None
    assert fsdp_from_environment({"ACCELERATE_USE_FSDP": "false", "FSDP_VERSION": "2"}) is None


def test_accelerates_fsdp2_settings_are_read() -> None:
    assert fsdp_from_environment(FSDP2) == FsdpSettings(reshard_after_forward=True, wrap_classes=())
    # What accelerate launch --use_fsdp --fsdp_version 2 writes, prefetch and loading
    # settings included (they concern FSDP1 or checkpoint loading).
    launched = {
        **FSDP2,
        "FSDP_RESHARD_AFTER_FORWARD": "false",
        "FSDP_OFFLOAD_PARAMS": "false",
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
        "FSDP_TRANSFORMER_CLS_TO_WRAP": "LlamaDecoderLayer, GPT2Block",
        "FSDP_ACTIVATION_CHECKPOINTING": "false",
        "FSDP_FORWARD_PREFETCH": "false",
        "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
        "FSDP_SYNC_MODULE_STATES": "true",
    }
    assert fsdp_from_environment(launched) == FsdpSettings(
        reshard_after_forward=False, wrap_classes=("LlamaDecoderLayer", "GPT2Block")
    )


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"FSDP_VERSION": "1"}, "FSDP_VERSION=1; pytest-unlearn shards with FSDP2"),
        ({"FSDP_VERSION": None}, "FSDP_VERSION=1; pytest-unlearn shards with FSDP2"),
        ({"FSDP_OFFLOAD_PARAMS": "true"}, "FSDP_OFFLOAD_PARAMS=true: offloading parameters"),
        ({"FSDP_ACTIVATION_CHECKPOINTING": "true"}, "use --unlearn-gradient-checkpointing=on"),
        ({"FSDP_AUTO_WRAP_POLICY": "SIZE_BASED_WRAP"}, "only TRANSFORMER_BASED_WRAP is supported"),
        ({"FSDP_IGNORED_MODULES": "lm_head"}, "ignored modules are not supported"),
        ({"FSDP_RESHARD_AFTER_FORWARD": "FULL_SHARD"}, "FSDP2 takes true or false"),
    ],
)
def test_fsdp_settings_that_are_not_honoured_are_errors(
    extra: dict[str, str | None], message: str
) -> None:
    environ = {key: value for key, value in {**FSDP2, **extra}.items() if value is not None}
    with pytest.raises(UnlearnError, match="accelerate launch with FSDP") as error:
        fsdp_from_environment(environ)
    assert message in str(error.value)


@pytest.fixture
def one_process_group(tmp_path: Path) -> Iterator[None]:
    """A gloo process group of this process alone (FSDP needs a group, of any size)."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def _small_llama(lora: bool, checkpointed: bool = False) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    from pytest_unlearn.models import (
        attach_lora,
        enable_gradient_checkpointing,
        lora_tensor_names,
        set_trainable,
    )

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=32,
        )
    )
    if checkpointed:  # as the pipeline turns it on (--unlearn-gradient-checkpointing)
        enable_gradient_checkpointing(model)
        assert (
            getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
        )
    if lora:
        model = attach_lora(model)
        set_trainable(model, lora_tensor_names(model))
    return model


def _train(model: Any, steps: int) -> None:
    """A few AdamW steps on fixed random tokens (and fixed LoRA dropout)."""
    torch.manual_seed(2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        tokens = torch.randint(0, 64, (3, 12), generator=generator)
        loss = model(input_ids=tokens, labels=tokens).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def _hooks(model: Any) -> list[tuple[str, int]]:
    return [
        (
            name,
            len(module._forward_pre_hooks)
            + len(module._forward_hooks)
            + len(module._state_dict_pre_hooks)
            + len(module._load_state_dict_post_hooks),
        )
        for name, module in model.named_modules()
    ]


@pytest.mark.parametrize(
    "lora,checkpointed",
    [(False, False), (True, False), (True, True)],
    ids=["full", "lora", "lora-checkpointed"],
)
def test_a_sharded_model_trains_as_the_whole_one_and_is_put_back(
    one_process_group: None, lora: bool, checkpointed: bool
) -> None:
    from torch.distributed.fsdp import FSDPModule

    model = _small_llama(lora, checkpointed)
    plain = copy.deepcopy(model)
    parameters = dict(model.named_parameters())
    classes = {name: type(module) for name, module in model.named_modules()}
    hooks = _hooks(model)
    start = {name: p.detach().clone() for name, p in parameters.items()}

    with ShardedTraining(model, FsdpSettings(), "probe"):
        sharded = [name for name, module in model.named_modules() if isinstance(module, FSDPModule)]
        _train(model, 3)
    _train(plain, 3)

    # Sharded: the whole model and each decoder layer (the model's _no_split_modules).
    assert len(sharded) == 3, sharded
    assert {name: type(module) for name, module in model.named_modules()} == classes
    assert _hooks(model) == hooks
    after = dict(model.named_parameters())
    assert after.keys() == parameters.keys()
    assert all(after[name] is parameters[name] for name in parameters)  # the same objects
    moved = 0.0
    for name, parameter in plain.named_parameters():
        assert type(after[name]) is torch.nn.Parameter, name
        assert torch.allclose(after[name], parameter, rtol=1e-5, atol=1e-6), name
        moved = max(moved, (parameter - start[name]).abs().max().item())
    assert moved > 1e-3  # it trained, so the comparison is not vacuous
    frozen = [name for name, p in plain.named_parameters() if not p.requires_grad]
    assert bool(frozen) == lora
    assert all(torch.equal(after[name], start[name]) for name in frozen)

    # The model is a plain one again: it can be sharded and trained a second time.
    with ShardedTraining(model, FsdpSettings(reshard_after_forward=False), "again"):
        _train(model, 1)
    _train(plain, 1)
    assert all(
        torch.allclose(p, dict(plain.named_parameters())[n], rtol=1e-5, atol=1e-6)
        for n, p in model.named_parameters()
    )


def test_wrap_classes_the_model_lacks_are_an_error(one_process_group: None) -> None:
    model = _small_llama(lora=False)
    with pytest.raises(
        UnlearnError,
        match="FSDP_TRANSFORMER_CLS_TO_WRAP names GPT2Block, but "
        "the model has no module of that class; its "
        "decoder layers are LlamaDecoderLayer",
    ):
        with ShardedTraining(model, FsdpSettings(wrap_classes=("GPT2Block",)), "probe"):
            pass


def test_a_sharded_model_scored_before_training_still_trains(one_process_group: None) -> None:
    # Training curves score the model at step 0, before the first training pass: under
    # inference mode FSDP would keep gathered weights that training cannot use.
    from pytest_unlearn.encoding import Encoded
    from pytest_unlearn.scoring import score
    from pytest_unlearn.sharding import is_sharded

    model = _small_llama(lora=False)
    plain = copy.deepcopy(model)
    items = [
        Encoded(input_ids=(1, 5, 9, 13, 17, 21), prompt_length=3, truncated=False),
        Encoded(input_ids=(2, 4, 6, 8, 10), prompt_length=2, truncated=False),
    ]
    with ShardedTraining(model, FsdpSettings(), "probe"):
        assert is_sharded(model)
        sharded_scores = score(model, items, pad_id=0)
        _train(model, 2)
    assert not is_sharded(model)
    assert [s.mean_logprob for s in sharded_scores] == pytest.approx(
        [s.mean_logprob for s in score(plain, items, pad_id=0)], abs=1e-5
    )
    _train(plain, 2)
    assert all(
        torch.allclose(p, dict(plain.named_parameters())[n], rtol=1e-5, atol=1e-6)
        for n, p in model.named_parameters()
    )


def test_a_model_without_named_layers_is_an_error(one_process_group: None) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    with pytest.raises(
        UnlearnError,
        match="does not name its decoder layer class .* Name it "
        "with fsdp_transformer_layer_cls_to_wrap",
    ):
        with ShardedTraining(model, FsdpSettings(), "probe"):
            pass
    assert type(model) is torch.nn.Sequential  # nothing was sharded


@pytest.mark.parametrize("reshard", [True, False], ids=["reshard", "keep-gathered"])
def test_the_frozen_reference_swaps_each_shard(one_process_group: None, reshard: bool) -> None:
    # GA+KL's reference runs the model with the starting values swapped in: sharded, each
    # process swaps its shards, and no pass may reuse weights gathered before a swap (with
    # FSDP_RESHARD_AFTER_FORWARD=false, modules keep them after a forward pass).
    from pytest_unlearn.encoding import Encoded
    from pytest_unlearn.objectives import FrozenReference, kl_to_reference

    model = _small_llama(lora=False)
    plain = copy.deepcopy(model)
    items = [
        Encoded(input_ids=(1, 5, 9, 13, 17, 21), prompt_length=3, truncated=False),
        Encoded(input_ids=(2, 4, 6, 8, 10), prompt_length=2, truncated=False),
    ]
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    references = [
        FrozenReference(each, [n for n, p in each.named_parameters()]) for each in (model, plain)
    ]
    assert references[0].held_numel() == 0  # nothing is copied before training starts
    with pytest.raises(UnlearnError, match="before capture"):
        kl_to_reference(model, references[0], items, pad_id=0)
    with ShardedTraining(model, FsdpSettings(reshard_after_forward=reshard), "probe"):
        references[0].capture()  # as the Trainer does: sharded, before the first step
        _train(model, 2)
        with torch.no_grad():
            model(input_ids=tokens)  # gathered weights a module may keep
            sharded_kl = kl_to_reference(model, references[0], items, pad_id=0)
            sharded_logits = model(input_ids=tokens).logits
    references[1].capture()
    _train(plain, 2)
    with torch.no_grad():
        plain_kl = kl_to_reference(plain, references[1], items, pad_id=0)
        plain_logits = plain(input_ids=tokens).logits
    assert plain_kl.min() > 1e-4  # training moved the model away from its start
    assert torch.allclose(sharded_kl, plain_kl, rtol=1e-4, atol=1e-7)
    assert torch.allclose(sharded_logits, plain_logits, rtol=1e-4, atol=1e-5)
    # Taken sharded, the reference serves the sharded model only.
    with pytest.raises(UnlearnError, match="taken while the model was sharded"):
        kl_to_reference(model, references[0], items, pad_id=0)


@pytest.mark.parametrize("config,sharded", [("fsdp2.yaml", True), ("multi-gpu.yaml", False)])
def test_the_documented_accelerate_configs_launch_what_they_say(config: str, sharded: bool) -> None:
    # accelerate's own launcher turns each config of docs/accelerate/ into the environment
    # of the processes it starts; the plugin reads that environment without an error.
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    from pytest_unlearn import distributed

    path = Path(__file__).resolve().parents[1] / "docs" / "accelerate" / config
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "pytest"])
    args, _, _ = _validate_launch_command(args)
    environment = prepare_multi_gpu_env(args)
    assert environment["ACCELERATE_MIXED_PRECISION"] == "no"
    settings = fsdp_from_environment(environment)
    assert (settings == FsdpSettings()) if sharded else settings is None
    with pytest.MonkeyPatch.context() as patch:
        for variable, value in environment.items():
            patch.setenv(variable, value)
        assert distributed.check_launch_config() == settings
