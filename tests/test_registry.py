"""The method registry and method configs."""

from dataclasses import dataclass

import pytest

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.method import UnlearningMethod, make_config
from pytest_unlearn.registry import MethodRegistry


@dataclass(frozen=True)
class ToyConfig:
    lr: float = 1e-3
    epochs: int = 2
    name: str = "x"
    flag: bool = False


class Toy(UnlearningMethod):
    name = "toy"
    config_class = ToyConfig
    presets = {"tiny": {"lr": 5e-4}}


def test_builtin_methods_come_from_entry_points():
    registry = MethodRegistry.from_entry_points()
    assert {"none", "gradient_ascent"} <= set(registry.names())
    assert "entry point" in registry.origin("gradient_ascent")
    assert registry.get("gradient_ascent").name == "gradient_ascent"


def test_unknown_method_suggests_and_lists():
    registry = MethodRegistry.from_entry_points()
    with pytest.raises(UnlearnError) as error:
        registry.resolve(("gradient_asent",))
    assert "did you mean 'gradient_ascent'" in str(error.value)
    assert "none" in str(error.value)


def test_all_expands_to_every_method_once():
    registry = MethodRegistry.from_entry_points()
    registry.register("toy", Toy)
    assert registry.resolve(("toy", "all")) == ["toy", *[n for n in registry.names() if n != "toy"]]


def test_duplicate_name_is_refused_with_both_origins():
    registry = MethodRegistry.from_entry_points()
    with pytest.raises(UnlearnError, match="registered twice: by entry point .* and by .*Toy"):
        registry.register("none", Toy)


def test_non_method_class_is_refused_on_load():
    registry = MethodRegistry()
    registry.register("bad", ToyConfig)
    with pytest.raises(UnlearnError, match="not a subclass"):
        registry.get("bad")


def test_config_defaults_presets_and_overrides():
    assert make_config(Toy, "other") == ToyConfig()
    assert make_config(Toy, "tiny").lr == 5e-4
    assert make_config(Toy, "tiny", {"lr": 1, "epochs": 3}) == ToyConfig(lr=1.0, epochs=3)


@pytest.mark.parametrize("overrides, message", [
    ({"lrr": 1e-3}, "has no config key 'lrr'; its keys are: lr, epochs, name, flag"),
    ({"epochs": "two"}, "toy.epochs = 'two' has type str, expected int"),
    ({"flag": 1}, "expected bool"),
    ({"epochs": 2.5}, "expected int"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(UnlearnError) as error:
        make_config(Toy, "tiny", overrides, "unlearn.yaml")
    assert message in str(error.value) and "unlearn.yaml" in str(error.value)


def test_memflex_controls_expands_to_memflex_and_its_three_controls():
    registry = MethodRegistry.from_entry_points()
    assert registry.resolve(("memflex+controls",)) == [
        "memflex", "memflex_all_tensors", "memflex_random_region", "memflex_inverse_region"]


def test_memflex_controls_keeps_the_order_given_and_lists_each_method_once():
    registry = MethodRegistry.from_entry_points()
    assert registry.resolve(("none", "memflex_random_region", "memflex+controls", "memflex")) == [
        "none", "memflex_random_region", "memflex", "memflex_all_tensors",
        "memflex_inverse_region"]
    assert registry.resolve(("memflex+controls", "all")) == [
        "memflex", "memflex_all_tensors", "memflex_random_region", "memflex_inverse_region",
        *[n for n in registry.names() if not n.startswith("memflex")]]


def test_group_with_a_missing_member_names_the_group():
    registry = MethodRegistry()
    registry.register("memflex", Toy)
    with pytest.raises(UnlearnError, match=r"unknown unlearning method 'memflex_all_tensors' "
                                           r"\(in 'memflex\+controls'"):
        registry.resolve(("memflex+controls",))


def test_misspelled_group_suggests_it():
    registry = MethodRegistry.from_entry_points()
    with pytest.raises(UnlearnError, match=r"did you mean 'memflex\+controls'"):
        registry.resolve(("memflex+control",))


@pytest.mark.parametrize("name", ["all", "memflex+controls"])
def test_group_names_cannot_be_registered(name):
    with pytest.raises(UnlearnError, match="invalid method name"):
        MethodRegistry().register(name, Toy)
