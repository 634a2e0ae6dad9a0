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


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lrr": 1e-3}, "has no config key 'lrr'; its keys are: lr, epochs, name, flag"),
        ({"epochs": "two"}, "toy.epochs = 'two' has type str, expected int"),
        ({"flag": 1}, "expected bool"),
        ({"epochs": 2.5}, "expected int"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(UnlearnError) as error:
        make_config(Toy, "tiny", overrides, "unlearn.yaml")
    assert message in str(error.value) and "unlearn.yaml" in str(error.value)


def test_memflex_controls_expands_to_memflex_and_its_three_controls():
    registry = MethodRegistry.from_entry_points()
    assert registry.resolve(("memflex+controls",)) == [
        "memflex",
        "memflex_all_tensors",
        "memflex_random_region",
        "memflex_inverse_region",
    ]


def test_memflex_controls_keeps_the_order_given_and_lists_each_method_once():
    registry = MethodRegistry.from_entry_points()
    assert registry.resolve(("none", "memflex_random_region", "memflex+controls", "memflex")) == [
        "none",
        "memflex_random_region",
        "memflex",
        "memflex_all_tensors",
        "memflex_inverse_region",
    ]
    assert registry.resolve(("memflex+controls", "all")) == [
        "memflex",
        "memflex_all_tensors",
        "memflex_random_region",
        "memflex_inverse_region",
        *[n for n in registry.names() if not n.startswith("memflex")],
    ]


def test_controls_of_a_method_are_what_its_class_declares():
    class WithControls(Toy):
        controls = ("toy_control",)

    registry = MethodRegistry()
    registry.register("toy", WithControls)
    with pytest.raises(
        UnlearnError,
        match=r"unknown unlearning method 'toy_control' "
        r"\(in 'toy\+controls'",
    ):
        registry.resolve(("toy+controls",))
    registry.register("toy_control", Toy)
    assert registry.resolve(("toy+controls",)) == ["toy", "toy_control"]
    with pytest.raises(
        UnlearnError,
        match=r"method 'toy_control' declares no ablation "
        r"controls",
    ):
        registry.resolve(("toy_control+controls",))


def test_misspelled_group_suggests_it():
    registry = MethodRegistry.from_entry_points()
    with pytest.raises(UnlearnError, match=r"did you mean 'memflex\+controls'"):
        registry.resolve(("memflex+control",))


@pytest.mark.parametrize("name", ["all", "memflex+controls", "a+b"])
def test_group_names_cannot_be_registered(name):
    with pytest.raises(UnlearnError, match="invalid method name"):
        MethodRegistry().register(name, Toy)


def test_a_float_written_as_yaml_1_1_reads_it_is_taken_as_that_float():
    # PyYAML (YAML 1.1) reads `lr: 5e-5` as the string '5e-5'.
    assert make_config(Toy, "tiny", {"lr": "5e-5"}, "unlearn.yaml").lr == 5e-5
    with pytest.raises(UnlearnError, match="toy.lr = 'fast' has type str, expected float"):
        make_config(Toy, "tiny", {"lr": "fast"}, "unlearn.yaml")


def _builtin(name: str) -> type[UnlearningMethod]:
    return MethodRegistry.from_entry_points().get(name)


@pytest.mark.parametrize(
    "method, overrides, message",
    [
        ("gradient_ascent", {"lr": -1.0}, "lr must be a finite number > 0 (got -1.0)"),
        ("gradient_ascent", {"lr": float("inf")}, "lr must be a finite number > 0 (got inf)"),
        ("gradient_ascent", {"epochs": 0}, "epochs must be >= 1 (got 0)"),
        ("gradient_ascent", {"warmup_ratio": 1.5}, "warmup_ratio must be in [0, 1) (got 1.5)"),
        ("gradient_ascent", {"scheduler": "linear"}, "scheduler must be 'cosine' or 'constant'"),
        ("memflex", {"copies": 0}, "copies must be >= 1 (got 0)"),
        (
            "memflex",
            {"threshold_rule": "absolut"},
            "threshold_rule must be one of auto, absolute, quantile (got 'absolut')",
        ),
        ("memflex", {"cosine_quantile": 5.0}, "cosine_quantile must be in [0, 1] (got 5.0)"),
        ("memflex", {"mu": float("inf")}, "mu must be a finite number (got inf)"),
        (
            "memflex_random_region",
            {"magnitude_quantile": -0.1},
            "magnitude_quantile must be in [0, 1] (got -0.1)",
        ),
        ("npo", {"beta": 0.0}, "beta must be a finite number > 0 (got 0.0)"),
        ("npo", {"retain_weight": -1.0}, "retain_weight must be a finite number >= 0 (got -1.0)"),
    ],
)
def test_values_out_of_range_are_errors_when_the_config_is_built(method, overrides, message):
    # Checked when the config is read (at start-up, with the file's name), not when the
    # method starts training after the vanilla model was built.
    with pytest.raises(UnlearnError) as error:
        make_config(_builtin(method), "tiny", overrides, "unlearn.yaml")
    assert message in str(error.value), str(error.value)
    assert f"unlearn.yaml: method {method!r}" in str(error.value)


def test_a_method_checks_a_config_built_by_hand():
    import dataclasses

    memflex = _builtin("memflex")
    config = dataclasses.replace(make_config(memflex, "tiny"), copies=0)
    with pytest.raises(UnlearnError, match="method 'memflex' config: copies must be >= 1"):
        memflex(config)
