"""MemFlex's ablation controls choose the regions they claim, on the conformance toy model."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest

from pytest_unlearn.conformance import run_method, toy_config, toy_context
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.method import UnlearningMethod, make_config
from pytest_unlearn_methods.memflex import MemFlex
from pytest_unlearn_methods.memflex_controls import (
    MemFlexAllTensors,
    MemFlexInverseRegion,
    MemFlexRandomRegion,
)

KINDS = ["full", "lora"]


@functools.cache
def region_of(
    method_class: type[UnlearningMethod], kind: str, overrides: tuple[tuple[str, Any], ...] = ()
) -> dict[str, Any]:
    """The region a method chooses on a fresh toy model (localization only, no training)."""
    context = toy_context(kind)
    method = method_class(toy_config(method_class, dict(overrides)))
    return method.choose_region(context, list(context.trainable))


@pytest.mark.parametrize("kind", KINDS)
def test_random_region_has_memflex_size_and_is_seeded(kind):
    memflex = region_of(MemFlex, kind)
    seed_0 = region_of(MemFlexRandomRegion, kind)
    assert seed_0["n_selected"] == memflex["n_selected"] == len(seed_0["selected"])
    assert seed_0["memflex_selected"] == memflex["selected"]
    assert seed_0["control"] == "random-region" and seed_0["region_seed"] == 0
    region_of.cache_clear()  # the same seed again, computed afresh
    assert region_of(MemFlexRandomRegion, kind)["selected"] == seed_0["selected"]
    seed_1 = region_of(MemFlexRandomRegion, kind, (("region_seed", 1),))
    assert len(seed_1["selected"]) == memflex["n_selected"]
    assert seed_1["selected"] != seed_0["selected"]


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_region_is_the_other_end_of_memflex_ranking(kind):
    memflex = region_of(MemFlex, kind)
    inverse = region_of(MemFlexInverseRegion, kind)
    stats = inverse["per_tensor"]
    assert inverse["control"] == "inverse-region"
    assert inverse["n_selected"] == memflex["n_selected"]
    assert set(inverse["selected"]).isdisjoint(memflex["selected"])
    assert inverse["overlap_with_memflex"] == 0
    cosines = [stats[name]["cos"] for name in inverse["selected"]]
    assert not any(math.isnan(cos) for cos in cosines)
    assert min(cosines) > max(stats[name]["cos"] for name in memflex["selected"])
    others = [
        s["cos"]
        for name, s in stats.items()
        if name not in inverse["selected"] and not math.isnan(s["cos"])
    ]
    assert min(cosines) >= max(others)  # the highest cosines, none left out


@pytest.mark.parametrize("kind", KINDS)
def test_all_tensors_selects_every_trainable_tensor(kind):
    region = region_of(MemFlexAllTensors, kind)
    assert region["selected"] == toy_context(kind).trainable
    assert region["control"] == "all-tensors" and region["fraction_parameters"] == 1.0


def test_all_tensors_trains_every_tensor_and_logs_its_control():
    run = run_method(MemFlexAllTensors, "full")
    unchanged = [
        name for name in run.trainable if bool((run.before[name] == run.after[name]).all())
    ]
    assert unchanged == []
    logged = run.result.log["region"]
    assert logged["control"] == "all-tensors" and "per_tensor" not in logged
    assert logged["n_selected"] == logged["n_tensors"] == len(run.trainable)
    assert run.result.artifacts["region"]["selected"] == run.trainable


def test_progress_names_the_control_and_its_size():
    messages: list[str] = []
    context = toy_context("full")
    context.progress = messages.append
    MemFlexRandomRegion(toy_config(MemFlexRandomRegion)).unlearn(context)
    size = region_of(MemFlex, "full")["n_selected"]
    assert any(
        f"memflex_random_region privacy: random-region control, region of {size} of "
        f"{len(context.trainable)} tensors" in message
        for message in messages
    )


def test_all_tensors_has_no_localization_settings():
    with pytest.raises(UnlearnError, match="has no config key 'copies'"):
        make_config(MemFlexAllTensors, "tiny", {"copies": 5})
