"""The conformance battery every unlearning method must pass, importable by method authors.

It runs a method on a toy model (LLaMA architecture, about 60k parameters) that has
memorized a few dozen builtin privacy records, once fully trained and once with a LoRA
adapter, and checks that:

- it reports its training (``log["train"]``, a ``TrainLog``'s dict) and every loss is finite;
- the NLL of the forget records rises by at least ``MIN_FORGET_NLL_RISE`` of its value;
- tensors the method must leave alone are bit-identical afterwards (everything outside
  ``trainable``, and outside the method's reported region if it reports one);
- the same seed gives bit-identical tensors and scores;
- it works on both the LoRA-injected and the fully trained model.

Use it from your own tests::

    from pytest_unlearn.conformance import MethodConformance
    from my_package import MyMethod

    class TestMyMethod(MethodConformance):
        method_under_test = MyMethod
        overrides = {"lr": 1e-3}    # optional config overrides for the toy model

The toy model takes a few seconds to build, once per process.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from .data import load_domain, load_general_text
from .encoding import encode_all, pad_token_id
from .method import MethodClass, MethodResult, UnlearnContext, make_config
from .models import attach_lora, get_tensors, lora_tensor_names, put_tensors, set_trainable
from .scoring import score
from .tiny import tokenizer_texts, train_tiny_tokenizer
from .training import Trainer, TrainSettings, answer_nll

TOY_ARCHITECTURE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
}
# Short training so every method runs in about a second: 24 forget items, 6 per step, 6
# epochs (24 steps).
TOY_OVERRIDES = {"epochs": 6, "batch_size": 1, "grad_accum": 6}
# The least relative rise of the forget records' mean NLL that counts as unlearning on the
# toy model. Every built-in method with its tiny preset rises by 0.16% (GA+GD with
# out-of-domain retain text, on the LoRA adapter) to 1320% (MemFlex on all tensors, fully
# trained); a method whose updates barely reach the model does not: gradient ascent at lr
# 1e-9 rises by 1e-7 to 5e-7 (benchmarks/conformance_margins.py, docs/reliability.md).
MIN_FORGET_NLL_RISE = 1e-3


@dataclass
class Toy:
    """The toy model's memorized state and the records it knows."""

    model: Any
    tokenizer: Any
    forget: list[Any]
    retain: list[Any]
    forget_val: list[Any]
    retain_val: list[Any]
    general: list[Any]
    lora_tensors: dict[str, Any]


@dataclass
class Run:
    """One method run: tensors before and after, forget NLL before and after, the result."""

    before: dict[str, Any]
    after: dict[str, Any]
    trainable: list[str]
    forget_nll_before: float
    forget_nll_after: float
    result: MethodResult
    scores: list[Any]


@functools.lru_cache(maxsize=1)
def toy() -> Toy:
    """A toy model that memorized 24 forget, 24 retain and 8 val records (built once)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    data = load_domain("builtin", "privacy")
    forget, retain = (
        list(data.splits["unlearn_train"][:24]),
        list(data.splits["retention_train"][:24]),
    )
    forget_val, retain_val = (
        list(data.splits["unlearn_val"][:4]),
        list(data.splits["retention_val"][:4]),
    )
    general = load_general_text()[:24]
    records = forget + retain + forget_val + retain_val
    tokenizer = train_tiny_tokenizer(tokenizer_texts(records + general))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id(tokenizer),
        **TOY_ARCHITECTURE,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    encoded = encode_all(tokenizer, records, 256, "toy")
    pad = pad_token_id(tokenizer)
    settings = TrainSettings(
        lr=3e-3, epochs=60, batch_size=8, grad_accum=1, warmup_ratio=0.0, scheduler="constant"
    )

    def memorized(epoch: int) -> bool:
        scores = score(model, encoded, pad)
        return sum(s.token_accuracy for s in scores) / len(scores) >= 0.98

    Trainer(model, encoded, lambda batch: answer_nll(model, batch, pad), settings, 0, "toy").run(
        after_epoch=memorized
    )
    model.eval()
    # The LoRA case starts from an adapter that was trained on the records too, as knowledge
    # injection would leave it (a fresh adapter has B = 0, so its A tensors get no gradient).
    adapted = attach_lora(copy.deepcopy(model))
    names = lora_tensor_names(adapted)
    set_trainable(adapted, names)
    Trainer(
        adapted,
        encoded,
        lambda batch: answer_nll(adapted, batch, pad),
        TrainSettings(lr=1e-3, epochs=2, batch_size=8, grad_accum=1, warmup_ratio=0.0),
        0,
        "toy lora",
    ).run()
    return Toy(
        model,
        tokenizer,
        forget,
        retain,
        forget_val,
        retain_val,
        general,
        get_tensors(adapted, names),
    )


def toy_context(kind: str, seed: int = 0) -> UnlearnContext:
    """What a method receives, on a fresh copy of the toy model; ``kind`` is 'full' (every
    weight trainable) or 'lora' (the toy adapter's tensors trainable)."""
    import torch

    base = toy()
    model = copy.deepcopy(base.model)
    if kind == "lora":
        model = attach_lora(model)
        put_tensors(model, base.lora_tensors, "toy LoRA adapter")
        trainable = lora_tensor_names(model)
    else:
        trainable = [name for name, _ in model.named_parameters()]
    set_trainable(model, trainable)
    return UnlearnContext(
        model=model,
        tokenizer=base.tokenizer,
        forget=base.forget,
        retain=base.retain,
        general=base.general,
        seed=seed,
        device=torch.device("cpu"),
        trainable=trainable,
        model_family="tiny",
        domain="privacy",
        max_length=256,
        progress=lambda message: None,
        forget_val=base.forget_val,
        retain_val=base.retain_val,
    )


def toy_config(method_class: MethodClass, overrides: dict[str, Any] | None = None) -> Any:
    """The method's tiny config, shortened for the toy (``TOY_OVERRIDES``), then
    ``overrides``."""
    fields = {f.name for f in dataclasses.fields(method_class.config_class)}
    short = {key: value for key, value in TOY_OVERRIDES.items() if key in fields}
    return make_config(method_class, "tiny", {**short, **(overrides or {})})


def run_method(
    method_class: MethodClass, kind: str, seed: int = 0, overrides: dict[str, Any] | None = None
) -> Run:
    """Run a method on a fresh copy of the toy model; ``kind`` is 'full' or 'lora'."""
    base = toy()
    context = toy_context(kind, seed)
    model, trainable = context.model, context.trainable
    pad = pad_token_id(base.tokenizer)
    forget_encoded = encode_all(base.tokenizer, base.forget, 256, "forget")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    nll_before = _mean_nll(model, forget_encoded, pad)
    result = method_class(toy_config(method_class, overrides)).unlearn(context)
    after = {name: p.detach().clone() for name, p in result.model.named_parameters()}
    val = encode_all(base.tokenizer, base.forget_val + base.retain_val, 256, "val")
    return Run(
        before,
        after,
        trainable,
        nll_before,
        _mean_nll(result.model, forget_encoded, pad),
        result,
        score(result.model, val, pad),
    )


def _mean_nll(model: Any, encoded: list[Any], pad: int) -> float:
    scores = score(model, encoded, pad)
    return -sum(s.mean_logprob for s in scores) / len(scores)


@functools.lru_cache(maxsize=64)
def _cached_run(
    method_class: MethodClass, kind: str, seed: int, overrides: tuple[tuple[str, Any], ...]
) -> Run:
    return run_method(method_class, kind, seed, dict(overrides))


class MethodConformance:
    """The battery as a test class: set ``method_under_test`` (and ``overrides``) in a
    subclass, or override the ``method_class`` fixture to parametrize over many methods."""

    method_under_test: ClassVar[MethodClass | None] = None
    overrides: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def method_class(self) -> MethodClass:
        if self.method_under_test is None:
            pytest.fail("set method_under_test on your MethodConformance subclass")
        return self.method_under_test

    @pytest.fixture(params=["full", "lora"])
    def run(self, request: pytest.FixtureRequest, method_class: MethodClass) -> Run:
        key = tuple(sorted(self.overrides.items()))
        return _cached_run(method_class, request.param, 0, key)  # type: ignore[arg-type]

    def test_losses_are_finite(self, run: Run, method_class: MethodClass) -> None:
        if not method_class.unlearns:
            pytest.skip(f"{method_class.name} does not unlearn (unlearns = False): no training")
        train = run.result.log.get("train")
        assert isinstance(train, dict), (
            f"{method_class.name} reports no training log: put the Trainer's "
            "TrainLog.to_dict() in its MethodResult log under 'train' (train_and_report does)"
        )
        assert math.isfinite(train["first_loss"]) and math.isfinite(train["last_loss"])
        assert train["steps"] > 0

    def test_forget_nll_rises(self, run: Run, method_class: MethodClass) -> None:
        if not method_class.unlearns:
            assert run.forget_nll_after == run.forget_nll_before
            return
        rise = run.forget_nll_after / run.forget_nll_before - 1
        assert rise >= MIN_FORGET_NLL_RISE, (
            f"forget NLL went from {run.forget_nll_before:.6f} to {run.forget_nll_after:.6f} "
            f"({rise:+.2e} of its value; unlearning needs at least {MIN_FORGET_NLL_RISE:+.0e}). "
            "If the method is right but slow on this toy model, give the battery a larger lr "
            "or more epochs through the class's overrides"
        )

    def test_frozen_tensors_do_not_change(self, run: Run) -> None:
        allowed = set(run.trainable)
        region = run.result.artifacts.get("region", {}).get("selected")
        if region is not None:
            allowed &= set(region)
        changed_outside = [
            name
            for name, tensor in run.before.items()
            if name not in allowed and not torch_equal(tensor, run.after[name])
        ]
        assert changed_outside == []
        assert set(run.after) == set(run.before)

    def test_same_seed_is_bit_identical(self, method_class: MethodClass, run: Run) -> None:
        kind = "lora" if any("lora_" in name for name in run.trainable) else "full"
        again = run_method(method_class, kind, 0, self.overrides)
        assert all(torch_equal(run.after[name], again.after[name]) for name in run.after)
        assert run.scores == again.scores


def torch_equal(left: Any, right: Any) -> bool:
    import torch

    return bool(torch.equal(left, right))
