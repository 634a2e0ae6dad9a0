"""``memflex``: unlearning confined to the parameters that gradient localization picks.

1. Localization, once per scope. Each record (train and val of the scope, as the reference
   does) is copied ``copies`` times; in each copy floor(n/2) of its n answer positions,
   drawn with replacement, get a uniformly random non-special token, and the corrupted
   sequence is both input and label. The gradient of the mean answer-token cross-entropy
   with respect to every trainable tensor, averaged over all copies, gives G_UL (unlearn
   scope) and G_RT (retention scope).
2. Per tensor k (each LoRA A and B separately, flattened): cos_k = cos(G_UL[k], G_RT[k])
   and mag_k = mean |G_UL[k]|.
3. Region = {k : cos_k < mu and mag_k > sigma}: the tensors where forgetting and keeping
   pull apart and forgetting pulls hard.
4. Only the region trains: forget and retain items interleaved, the pairs shuffled with a
   fixed seed, loss = forget_weight * NLL(forget item) + retain_weight * NLL(retain item).

Thresholds: paper Table 12 for the two 7B models it covers (by family and domain); for
any other model a quantile rule, because absolute thresholds do not transfer (on the tiny
model the paper's values select nearly every tensor): cos below its ``cosine_quantile``
quantile and mag above its ``magnitude_quantile`` quantile.

The ablation controls (``memflex_controls.py``) are MemFlex with another ``choose_region``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pytest_unlearn.api import (
    Encoded,
    MethodResult,
    TrainSettings,
    UnlearnContext,
    UnlearnError,
    UnlearningMethod,
    collate,
    encode_records,
    interleave,
    pad_token_id,
    per_item_nll,
    random_token_ids,
    set_trainable,
    train_and_report,
    weighted_nll,
)
from pytest_unlearn_methods.presets import TINY_LR

# Paper Table 12: (mu, sigma) by model family and domain.
TABLE_12: dict[tuple[str, str], tuple[float, float]] = {
    ("llama2", "copyright"): (0.92, 6e-4),
    ("qwen1.5", "copyright"): (0.94, 7e-4),
    ("llama2", "privacy"): (0.96, 4e-4),
    ("qwen1.5", "privacy"): (0.94, 2e-4),
}
RULES = ("auto", "absolute", "quantile")
SHUFFLE_UNITS = ("pair", "item")


@dataclass(frozen=True)
class MemFlexTraining(TrainSettings):
    """The reference's MemFlex training settings: AdamW lr 3e-4, 2 epochs, batch 1 x
    accumulation 16, cosine schedule, 3% warmup, weight decay 0, pairs shuffled with seed 42."""

    lr: float = 3e-4
    shuffle: bool = False  # the pairs are shuffled once, with shuffle_seed, like the reference
    shuffle_seed: int = 42
    # What that shuffle moves: "pair" (each forget item stays next to its retain item, the
    # default, which the published figures used) or "item" (the reference code's way: its
    # 800 interleaved items shuffled one by one, then read in order).
    shuffle_unit: str = "pair"
    forget_weight: float = -0.4
    retain_weight: float = 2.0

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.shuffle_unit not in SHUFFLE_UNITS:
            problems.append(
                f"shuffle_unit must be one of {', '.join(SHUFFLE_UNITS)} "
                f"(got {self.shuffle_unit!r})"
            )
        return problems


@dataclass(frozen=True)
class MemFlexConfig(MemFlexTraining):
    """MemFlex's training settings and its localization settings."""

    copies: int = 3  # the paper says 5; the reference code uses 3
    threshold_rule: str = "auto"  # auto: Table 12 where it has the model, else quantile
    mu: float = math.nan  # cosine threshold for the absolute rule; nan: from Table 12
    sigma: float = math.nan  # magnitude threshold for the absolute rule; nan: from Table 12
    cosine_quantile: float = 0.5
    magnitude_quantile: float = 0.5
    localize_on_val: bool = True  # the reference localizes on train + val of each scope

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.copies < 1:
            problems.append(f"copies must be >= 1 (got {self.copies})")
        if self.threshold_rule not in RULES:
            problems.append(
                f"threshold_rule must be one of {', '.join(RULES)} (got {self.threshold_rule!r})"
            )
        for name in ("mu", "sigma"):  # nan: Table 12's value
            if math.isinf(getattr(self, name)):
                problems.append(f"{name} must be a finite number (got {getattr(self, name)})")
        for name in ("cosine_quantile", "magnitude_quantile"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        return problems


def shuffled(items: list[Any], unit: str, seed: int) -> list[Any]:
    """Interleaved forget and retain items (f0 r0 f1 r1 ...) shuffled once with ``seed``:
    by pair (``unit`` "pair": each forget item keeps its retain item beside it) or one by
    one ("item", as the reference code shuffles its 800 train items)."""
    rng = random.Random(seed)
    if unit == "item":
        items = list(items)
        rng.shuffle(items)
        return items
    pairs = [items[i : i + 2] for i in range(0, len(items), 2)]
    rng.shuffle(pairs)
    return [item for pair in pairs for item in pair]


class MemFlex(UnlearningMethod[MemFlexConfig]):
    name = "memflex"
    config_class = MemFlexConfig
    # Its ablation controls (memflex_controls.py): --unlearn-method=memflex+controls runs
    # them beside it, and the summary says whether its localization beats each one.
    controls = ("memflex_all_tensors", "memflex_random_region", "memflex_inverse_region")
    controls_test = "localization"
    fsdp_compatible = True  # one forward pass per batch
    presets = {"tiny": {"lr": TINY_LR["memflex"]}}

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        model, pad = context.model, pad_token_id(context.tokenizer)
        trainable = [name for name, p in model.named_parameters() if p.requires_grad]
        region = self.choose_region(context, trainable)
        context.progress(f"{self.name} {context.domain}: {describe_region(region)}")
        set_trainable(model, region["selected"])
        forget = encode_records(context, context.forget, "forget")
        retain = encode_records(context, context.retain, "retain")
        items = interleave(forget, retain, self.config.forget_weight, self.config.retain_weight)
        items = shuffled(items, self.config.shuffle_unit, self.config.shuffle_seed)
        summary = {key: value for key, value in region.items() if key != "per_tensor"}
        result = train_and_report(
            context,
            self.name,
            self.config,
            items,
            lambda batch: weighted_nll(model, batch, pad),
            region=summary,
        )
        set_trainable(model, trainable)
        result.artifacts["region"] = region
        return result

    def choose_region(self, context: UnlearnContext, trainable: list[str]) -> dict[str, Any]:
        """The tensors that train, as a region record (``region_record``): MemFlex's
        gradient localization and threshold rule."""
        stats = localize(context, self.config, trainable)
        return select_region(stats, self.config, context.model_family, context.domain)


def localize(
    context: UnlearnContext, config: MemFlexConfig, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """cos(G_UL, G_RT) and mean |G_UL| of every named tensor."""
    model = context.model
    vocab_size = model.get_input_embeddings().weight.shape[0]
    choices = random_token_ids(context.tokenizer, vocab_size)
    rng = random.Random(context.seed)
    scopes = {
        "unlearn": context.forget + (context.forget_val if config.localize_on_val else []),
        "retention": context.retain + (context.retain_val if config.localize_on_val else []),
    }
    gradients = {}
    for scope, records in scopes.items():
        context.progress(
            f"memflex {context.domain}: localizing on {len(records)} {scope} "
            f"records x {config.copies} copies"
        )
        encoded = encode_records(context, records, f"{scope} localization")
        copies = [corrupt(enc, choices, rng) for enc in encoded for _ in range(config.copies)]
        gradients[scope] = mean_gradient(
            model, copies, pad_token_id(context.tokenizer), names, config.micro_batch_size
        )
    stats = {}
    for name in names:
        unlearn, retention = gradients["unlearn"][name], gradients["retention"][name]
        if unlearn.abs().sum() == 0 or retention.abs().sum() == 0:
            # No gradient (e.g. LoRA A while B is still zero): no direction to compare, and
            # training it would change nothing; such a tensor is never selected.
            cosine = math.nan
        else:
            cosine = float(
                torch.nn.functional.cosine_similarity(
                    unlearn.flatten().double(), retention.flatten().double(), dim=0
                )
            )
        stats[name] = {"cos": cosine, "mag": float(unlearn.abs().mean()), "numel": unlearn.numel()}
    return stats


def corrupt(encoded: Encoded, choices: Sequence[int], rng: random.Random) -> Encoded:
    """floor(n/2) answer positions, drawn with replacement, set to random tokens; the
    corrupted sequence is both input and label."""
    ids = list(encoded.input_ids)
    for _ in range(encoded.answer_length // 2):
        position = encoded.prompt_length + rng.randrange(encoded.answer_length)
        ids[position] = rng.choice(choices)
    return Encoded(tuple(ids), encoded.prompt_length, encoded.truncated)


def mean_gradient(
    model: torch.nn.Module,
    copies: Sequence[Encoded],
    pad_id: int,
    names: Sequence[str],
    micro_batch_size: int,
) -> dict[str, torch.Tensor]:
    """Gradient of the mean over copies of each copy's mean answer-token cross-entropy.

    Computed in eval mode (no dropout), so localization depends only on the seed.
    """
    parameters = dict(model.named_parameters())
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    for start in range(0, len(copies), micro_batch_size):
        batch = collate(copies[start : start + micro_batch_size], pad_id, device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        (per_item_nll(logits, batch["labels"]).sum() / len(copies)).backward()
    gradients = {}
    for name in names:
        grad = parameters[name].grad
        gradients[name] = (
            torch.zeros_like(parameters[name]) if grad is None else grad.detach().clone()
        )
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return gradients


def select_region(
    stats: dict[str, dict[str, float]], config: MemFlexConfig, family: str, domain: str
) -> dict[str, Any]:
    """Apply the threshold rule; a region of no tensor or of every tensor is an error."""
    rule = config.threshold_rule
    mu, sigma = config.mu, config.sigma
    if rule == "auto":
        rule = "absolute" if (family, domain) in TABLE_12 or not math.isnan(mu) else "quantile"
    if rule == "absolute":
        if math.isnan(mu) or math.isnan(sigma):
            if (family, domain) not in TABLE_12:
                raise UnlearnError(
                    f"memflex config: the absolute rule needs mu and sigma, and paper Table 12 "
                    f"has no values for model family {family!r}, domain {domain!r}; set mu and "
                    "sigma, or use threshold_rule: quantile"
                )
            table_mu, table_sigma = TABLE_12[(family, domain)]
            mu = table_mu if math.isnan(mu) else mu
            sigma = table_sigma if math.isnan(sigma) else sigma
    else:
        live = [s for s in stats.values() if not math.isnan(s["cos"])]
        if not live:
            raise UnlearnError(
                "memflex: no trainable tensor has a gradient on both scopes; "
                "nothing can be localized"
            )
        mu = _quantile([s["cos"] for s in live], config.cosine_quantile)
        sigma = _quantile([s["mag"] for s in live], config.magnitude_quantile)
    selected = [
        name
        for name, s in stats.items()
        if not math.isnan(s["cos"]) and s["cos"] < mu and s["mag"] > sigma
    ]
    if not selected or len(selected) == len(stats):
        raise UnlearnError(
            f"memflex: the {rule} rule (mu={mu:.4g}, sigma={sigma:.4g}) selects "
            f"{len(selected)} of {len(stats)} tensors, which localizes nothing. "
            f"{_distribution(stats)}. Set mu and sigma in --unlearn-config, or use "
            "threshold_rule: quantile."
        )
    return region_record(rule, mu, sigma, selected, stats)


def region_record(
    rule: str, mu: float, sigma: float, selected: Sequence[str], stats: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """What is saved and reported of a region: the rule and thresholds that chose it, the
    selected tensors, their tensor and parameter counts, and ``stats`` (per tensor, at least
    its ``numel``) as ``per_tensor``."""
    total = sum(s["numel"] for s in stats.values())
    chosen = sum(stats[name]["numel"] for name in selected)
    return {
        "rule": rule,
        "mu": mu,
        "sigma": sigma,
        "selected": list(selected),
        "n_selected": len(selected),
        "n_tensors": len(stats),
        "selected_parameters": chosen,
        "total_parameters": total,
        "fraction_tensors": len(selected) / len(stats),
        "fraction_parameters": chosen / total,
        "per_tensor": stats,
    }


def describe_region(region: dict[str, Any]) -> str:
    control = f"{region['control']} control, " if "control" in region else ""
    return (
        f"{control}region of {region['n_selected']} of {region['n_tensors']} tensors, "
        f"{region['selected_parameters']:,} of {region['total_parameters']:,} trainable "
        f"parameters ({region['fraction_parameters']:.1%})"
    )


def _quantile(values: list[float], q: float) -> float:
    if not 0.0 <= q <= 1.0:
        raise UnlearnError(f"memflex config: quantiles must be in [0, 1] (got {q})")
    return float(torch.quantile(torch.tensor(values, dtype=torch.float64), q))


def _distribution(stats: dict[str, dict[str, float]]) -> str:
    def five(values: list[float]) -> str:
        data = torch.tensor(values, dtype=torch.float64)
        levels = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
        points = torch.quantile(data, levels)
        return "/".join(f"{float(p):.4g}" for p in points)

    cosines = [s["cos"] for s in stats.values() if not math.isnan(s["cos"])] or [math.nan]
    return (
        f"Per-tensor cos min/q1/median/q3/max: {five(cosines)}; "
        f"mean |G_UL| min/q1/median/q3/max: {five([s['mag'] for s in stats.values()])}"
    )
