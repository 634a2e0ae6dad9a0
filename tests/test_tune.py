"""The tuning protocol's rule (benchmarks/tune.py) on constructed figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tune() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tune", ROOT / "benchmarks" / "tune.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tune"] = module
    spec.loader.exec_module(module)
    return module


tune = _tune()
F = tune.Figures


def test_the_rule_skips_a_collapsed_model_with_a_higher_average() -> None:
    points = {
        1e-4: F(unlearn=20.0, retention=100.0),  # avg 60
        3e-4: F(unlearn=50.0, retention=92.0),  # avg 71, keeps 92% of 100
        1e-3: F(unlearn=100.0, retention=60.0),  # avg 80, collapsed
    }
    assert tune.choose(points, vanilla_retention=100.0, floor=0.9) == tune.Choice(3e-4, True)
    # Without a floor the collapsed point wins: the floor is what decides here.
    assert tune.choose(points, vanilla_retention=100.0, floor=0.0) == tune.Choice(1e-3, True)


def test_the_floor_is_relative_to_the_vanilla_model() -> None:
    points = {1e-4: F(10.0, 72.0), 3e-4: F(40.0, 70.0)}
    # Vanilla keeps 80: 0.9 x 80 = 72, so only 1e-4 keeps the floor.
    assert tune.choose(points, 80.0, 0.9) == tune.Choice(1e-4, True)
    assert tune.choose(points, 77.0, 0.9) == tune.Choice(3e-4, True)


def test_ties_go_to_the_smaller_lr_and_no_point_kept_is_marked() -> None:
    tied = {3e-4: F(50.0, 90.0), 1e-4: F(40.0, 100.0)}
    assert tune.choose(tied, 100.0, 0.9) == tune.Choice(1e-4, True)
    fallen = {1e-4: F(10.0, 50.0), 3e-4: F(60.0, 40.0)}
    assert tune.choose(fallen, 100.0, 0.9) == tune.Choice(3e-4, False)
    with pytest.raises(ValueError, match="no grid points"):
        tune.choose({}, 100.0, 0.9)


def test_neighbours_are_the_grid_points_either_side() -> None:
    grid = [1e-3, 1e-4, 3e-4, 3e-5]
    assert tune.neighbours(grid, 1e-4) == [3e-5, 1e-4, 3e-4]
    assert tune.neighbours(grid, 3e-5) == [3e-5, 1e-4]
    assert tune.neighbours(grid, 1e-3) == [3e-4, 1e-3]


def test_each_method_is_tested_at_its_choice_and_neighbours_only() -> None:
    grid = [1e-4, 3e-4, 1e-3, 3e-3]
    choices = {"a": tune.Choice(1e-4, True), "b": tune.Choice(1e-3, True)}
    assert tune.points_to_test(grid, choices) == {
        1e-4: ["a"],
        3e-4: ["a", "b"],
        1e-3: ["b"],
        3e-3: ["b"],
    }


@pytest.mark.parametrize(
    ("name", "family", "methods"),
    [("tiny-privacy", "tiny", 9), ("smollm2-privacy-real5", "smollm2", 9)],
)
def test_a_committed_choice_is_a_valid_config_with_its_report(
    name: str, family: str, methods: int
) -> None:
    """methods/tuned/NAME.yaml, written by a real-data run, is an --unlearn-config the
    plugin accepts, and each lr is the one its report (docs/tuning-NAME.md) marks as
    chosen."""
    from pytest_unlearn.config_file import ConfigFile
    from pytest_unlearn.registry import MethodRegistry

    config = ConfigFile(ROOT / "methods" / "tuned" / f"{name}.yaml")
    registry = MethodRegistry.from_entry_points()
    config.check(registry.names())
    report = (ROOT / "docs" / f"tuning-{name}.md").read_text()
    sections = config.sections()
    assert len(sections) == methods, sections
    for method, section in sections.items():
        made = config.method_config(registry.get(method), method, family)
        assert made.lr == section["lr"], (method, made)
        assert f"| {method} | {section['lr']:g}* |" in report, method


def test_the_smollm2_controls_train_at_memflexs_tuned_lr() -> None:
    """benchmarks/smollm2_real5_controls.yaml runs MemFlex and its controls at the lr the
    protocol chose for MemFlex, so that the controls differ from it only in their region."""
    from pytest_unlearn.config_file import ConfigFile
    from pytest_unlearn.registry import MethodRegistry

    tuned = ConfigFile(ROOT / "methods" / "tuned" / "smollm2-privacy-real5.yaml").sections()
    controls = ConfigFile(ROOT / "benchmarks" / "smollm2_real5_controls.yaml")
    registry = MethodRegistry.from_entry_points()
    controls.check(registry.names())
    expected = {"memflex", *registry.get("memflex").controls}
    assert set(controls.sections()) == expected
    for method, section in controls.sections().items():
        assert section["lr"] == tuned["memflex"]["lr"], method


def test_the_tiny_models_defaults_are_the_protocols_choice() -> None:
    """Without an --unlearn-config, every built-in method (and MemFlex's controls, which
    share its lr) trains the tiny model at the lr that the tuning protocol chose for it
    (methods/tuned/tiny-privacy.yaml), not at a rule of thumb."""
    from pytest_unlearn.config_file import ConfigFile
    from pytest_unlearn.registry import MethodRegistry

    tuned = ConfigFile(ROOT / "methods" / "tuned" / "tiny-privacy.yaml").sections()
    registry = MethodRegistry.from_entry_points()
    plain = ConfigFile(None)
    for method, section in tuned.items():
        assert plain.method_config(registry.get(method), method, "tiny").lr == section["lr"]
    for control in registry.get("memflex").controls:
        made = plain.method_config(registry.get(control), control, "tiny")
        assert made.lr == tuned["memflex"]["lr"], control
