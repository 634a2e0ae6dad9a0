"""MemFlex's ablation controls: MemFlex's training, on another region of tensors.

Each control is MemFlex with only ``choose_region`` replaced: the same loss weights (-0.4 x
NLL forget, +2.0 x NLL retain), schedule, learning rate (and tiny preset) and shuffled
forget/retain pairs. What differs is which tensors train:

- ``memflex_all_tensors``: every trainable tensor, no localization. Does confining the
  update to a region matter at all?
- ``memflex_random_region``: as many tensors as MemFlex's region, drawn uniformly at random
  from every trainable tensor with a generator seeded by ``region_seed`` and the run's seed
  (so under --unlearn-seeds each seed draws its own region). Does it matter
  which tensors, or only how many?
- ``memflex_inverse_region``: as many tensors as MemFlex's region, taken from the other end
  of its ranking: the highest cos(G_UL, G_RT), where MemFlex keeps cos < mu (ties: the
  lower mean |G_UL| first, MemFlex keeping mag > sigma). Tensors without a gradient on both
  scopes (cos nan) are never taken, as in MemFlex. Does the gradient criterion point the
  right way?

The random and inverse controls run MemFlex's localization with MemFlex's config and the
run's seed, so their region has exactly as many tensors as MemFlex's region on the same
run. Each saves its region like MemFlex (``region.json``, and a summary in the method log),
with ``control`` naming it and, where MemFlex's region was computed, that region and the
overlap with it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pytest_unlearn.api import UnlearnContext
from pytest_unlearn_methods.memflex import MemFlex, MemFlexConfig, MemFlexTraining, region_record


@dataclass(frozen=True)
class MemFlexAllTensorsConfig(MemFlexTraining):
    """MemFlex's training settings; nothing is localized, so there is nothing else."""


@dataclass(frozen=True)
class MemFlexRandomRegionConfig(MemFlexConfig):
    """MemFlex's settings, and the seed of the random draw of the region."""

    region_seed: int = 0


@dataclass(frozen=True)
class MemFlexInverseRegionConfig(MemFlexConfig):
    """MemFlex's settings (its localization sizes and ranks the region)."""


class MemFlexAllTensors(MemFlex):
    name = "memflex_all_tensors"
    config_class = MemFlexAllTensorsConfig
    controls = ()  # a control has none of its own

    def choose_region(self, context: UnlearnContext, trainable: list[str]) -> dict[str, Any]:
        parameters = dict(context.model.named_parameters())
        sizes = {name: {"numel": parameters[name].numel()} for name in trainable}
        return {
            **region_record("none", math.nan, math.nan, trainable, sizes),
            "control": "all-tensors",
        }


class MemFlexRandomRegion(MemFlex):
    name = "memflex_random_region"
    config_class = MemFlexRandomRegionConfig
    controls = ()  # a control has none of its own

    def choose_region(self, context: UnlearnContext, trainable: list[str]) -> dict[str, Any]:
        memflex_region = super().choose_region(context, trainable)
        generator = random.Random(f"region {self.config.region_seed} seed {context.seed}")
        drawn = set(generator.sample(trainable, memflex_region["n_selected"]))
        selected = [name for name in trainable if name in drawn]
        return _control_record(
            "random-region", selected, memflex_region, region_seed=self.config.region_seed
        )


class MemFlexInverseRegion(MemFlex):
    name = "memflex_inverse_region"
    config_class = MemFlexInverseRegionConfig
    controls = ()  # a control has none of its own

    def choose_region(self, context: UnlearnContext, trainable: list[str]) -> dict[str, Any]:
        memflex_region = super().choose_region(context, trainable)
        ranked = inverse_ranking(memflex_region["per_tensor"])
        taken = set(ranked[: memflex_region["n_selected"]])
        selected = [name for name in trainable if name in taken]
        return _control_record("inverse-region", selected, memflex_region)


def inverse_ranking(stats: dict[str, dict[str, float]]) -> list[str]:
    """Tensors with a cosine, highest cos first; at equal cos, lowest mean |G_UL| first."""
    live = [name for name, s in stats.items() if not math.isnan(s["cos"])]
    return sorted(live, key=lambda name: (-stats[name]["cos"], stats[name]["mag"]))


def _control_record(
    control: str, selected: list[str], memflex_region: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A control's region record: the rule and thresholds of the MemFlex region that sized
    it, MemFlex's own selection, and how many of its tensors are also in that selection."""
    record = region_record(
        memflex_region["rule"],
        memflex_region["mu"],
        memflex_region["sigma"],
        selected,
        memflex_region["per_tensor"],
    )
    memflex_selected = memflex_region["selected"]
    return {
        **record,
        "control": control,
        **extra,
        "memflex_selected": memflex_selected,
        "overlap_with_memflex": len(set(selected) & set(memflex_selected)),
    }
