"""--unlearn-build-only, alone and with two processes training together under torchrun
(gloo on CPU: the data-parallel path that GPUs take with NCCL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from pytest_unlearn.distributed import World

SUITES = Path(__file__).resolve().parent.parent / "suites"


def _add_suite_file(pytester: pytest.Pytester, relative: str) -> None:
    """Copy a file of the repository's suites/ (e.g. 'privacy/test_attack.py') into the run."""
    (pytester.path / Path(relative).name).write_text((SUITES / relative).read_text())


def _private_cache(small_data_cache: tuple[Path, Path], folder: Path) -> tuple[Path, Path]:
    """The small data and a copy of its cache (vanilla model only), for this test alone."""
    data, cache = small_data_cache
    copy = folder / "cache"
    shutil.copytree(cache / "vanilla", copy / "vanilla")
    return data, copy


def _unlearned_weights(cache: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        path.parent.name: load_file(str(path))
        for path in sorted((cache / "unlearned").glob("*/*/weights.safetensors"))
    }


def test_build_only_builds_then_tests_load_from_the_cache(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    data, cache = _private_cache(small_data_cache, pytester.path)
    common = (
        "--unlearn-method=none,gradient_ascent",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
    )
    first = pytester.runpytest_subprocess(*common, "--unlearn-build-only")
    assert first.ret == pytest.ExitCode.OK
    first.stdout.fnmatch_lines(
        [
            "*unlearn: models built and scored (--unlearn-build-only)*",
            "privacy none seed 0: in the cache (*)",
            "privacy gradient_ascent seed 0: built (*)",
            "*deselected*",
        ]
    )
    assert len(_unlearned_weights(cache)) == 1

    again = pytester.runpytest_subprocess(*common, "--unlearn-build-only")
    again.stdout.fnmatch_lines(["privacy gradient_ascent seed 0: in the cache (*)"])

    tests = pytester.runpytest_subprocess(*common, "--unlearn-json=r.json")
    assert tests.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    assert "unlearn privacy: gradient_ascent" not in "\n".join(tests.outlines)  # no training
    rows = json.loads((pytester.path / "r.json").read_text())["rows"]
    [built] = _unlearned_weights(cache)
    assert {row["method"]: row["model_cache_key"] for row in rows}["gradient_ascent"] == built


def _build_only_with(
    pytester: pytest.Pytester, small_data_cache: tuple[Path, Path], suite_file: str, *options: str
) -> tuple[pytest.RunResult, Path]:
    """One build-only run with a file of suites/ added to the run; its result and cache."""
    data, cache = _private_cache(small_data_cache, pytester.path)
    _add_suite_file(pytester, suite_file)
    result = pytester.runpytest_subprocess(
        *options, f"--unlearn-data={data}", f"--unlearn-cache-dir={cache}", "--unlearn-build-only"
    )
    return result, cache


def test_build_only_with_the_attack_builds_the_relearned_model_too(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    result, cache = _build_only_with(
        pytester, small_data_cache, "privacy/test_attack.py", "--unlearn-method=gradient_ascent"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "privacy gradient_ascent seed 0: built (*)",
            "privacy gradient_ascent seed 0 after the relearning attack: built (*)",
        ]
    )
    assert len(_unlearned_weights(cache)) == 2


def test_build_only_for_leak_tests_without_generation_is_the_leak_tests_error(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    result, _ = _build_only_with(
        pytester,
        small_data_cache,
        "privacy/test_leaks.py",
        "--unlearn-method=none",
        "--unlearn-max-new-tokens=0",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert (
        "--unlearn-build-only: the leak tests read the model's generations, and "
        "--unlearn-max-new-tokens=0 turns generation off"
        in "\n".join(result.outlines + result.errlines)
    )


# What accelerate launch --use_fsdp --fsdp_version 2 puts in each process's environment.
FSDP2_LAUNCH = {
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "2",
    "FSDP_RESHARD_AFTER_FORWARD": "true",
    "FSDP_OFFLOAD_PARAMS": "false",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
}


def _torchrun(
    folder: Path, *args: str, processes: int = 2, launch_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["OMP_NUM_THREADS"] = "1"
    env.update(launch_env or {})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            "pytest",
            str(folder),
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _beyond_rounding(theirs: torch.Tensor, ours: torch.Tensor) -> int:
    """How many elements of two trainings' copies of a tensor differ by more than float
    rounding."""
    return int((~torch.isclose(theirs, ours, rtol=1e-4, atol=1e-6)).sum().item())


@pytest.mark.parametrize(
    "sharding,config",
    [
        ("optimizer", "{lr: 1.0e-3, epochs: 5}"),
        # Steps of 3 items (all 3 forget items) in micro-batches of 1: the second process has
        # one micro-batch fewer than the first in each step, and runs one with weight 0 (each
        # FSDP pass communicates with both processes).
        ("fsdp", "{lr: 1.0e-3, epochs: 5, grad_accum: 3, micro_batch_size: 1}"),
    ],
)
def test_two_processes_train_the_model_that_one_process_trains(
    suite_dir: Path,
    pytester: pytest.Pytester,
    small_data_cache: tuple[Path, Path],
    tmp_path: Path,
    sharding: str,
    config: str,
) -> None:
    # Two torchrun processes (gloo) split each step's items and sum their gradients: the
    # weights are those of one process up to float rounding, and one cache entry is written.
    # They split the AdamW state (ZeRO stage 1) or, under accelerate's FSDP config, the
    # weights, gradients and AdamW state (FSDP2) while they train.
    data, together = _private_cache(small_data_cache, pytester.path)
    _, alone = _private_cache(small_data_cache, tmp_path)
    # Several steps at a high lr, so that the weights move well beyond float rounding.
    pytester.makefile(".yaml", unlearn=f"gradient_ascent: {config}\n")
    common = (
        "--unlearn-method=gradient_ascent",
        f"--unlearn-data={data}",
        "--unlearn-build-only",
        "--unlearn-config=unlearn.yaml",
    )
    launched = _torchrun(
        pytester.path,
        *common,
        f"--unlearn-cache-dir={together}",
        launch_env=FSDP2_LAUNCH if sharding == "fsdp" else None,
    )
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-6000:]
    assert output.count("privacy gradient_ascent seed 0: built") == 1, output[-6000:]
    single = pytester.runpytest_subprocess(*common, f"--unlearn-cache-dir={alone}")
    assert single.ret == pytest.ExitCode.OK

    [(key, parallel)] = _unlearned_weights(together).items()
    [(single_key, serial)] = _unlearned_weights(alone).items()
    assert key == single_key  # the same model, by what determines it
    logs = [
        json.loads(next((cache / "unlearned").glob("*/*/method_log.json")).read_text())
        for cache in (together, alone)
    ]
    assert [log["train"]["processes"] for log in logs] == [2, 1]
    assert [log["train"]["sharding"] for log in logs] == [sharding, ""]
    assert logs[0]["train"]["steps"] == logs[1]["train"]["steps"] == 5
    # Each process keeps the AdamW state of about half the trained tensors (ZeRO stage 1),
    # or half of each trained tensor (FSDP).
    main_share, whole = (log["train"]["optimizer_state_bytes"] for log in logs)
    assert 0.3 * whole < main_share < 0.7 * whole
    vanilla = load_file(str(next((together / "vanilla").glob("*/*/weights.safetensors"))))
    # Summing gradients in another order changes their last bits, and AdamW turns a
    # near-zero gradient's rounding into a step of up to the lr's size: a few elements in a
    # tensor (1 of 16,384 measured) differ by more than rounding, and by how much depends
    # on the CPU (at most 1% of training's change on one, 5.3% on another). So nearly all
    # of a tensor's elements must agree to rounding, and none may differ by a quarter of
    # how far training moved the tensor; a process's items left out, or a shard not put
    # back, moves most elements, by as much as training does.
    moved = 0.0
    for name, tensor in serial.items():
        change = (tensor - vanilla[name]).abs().max().item()
        off = _beyond_rounding(parallel[name], tensor)
        assert off <= max(1, tensor.numel() // 1000), (name, off)
        difference = (parallel[name] - tensor).abs().max().item()
        assert difference <= 0.25 * change, (name, difference, change)
        moved = max(moved, change)
    assert moved > 1e-3  # training changed the model: the comparison is not vacuous
    assert not list((together / "tmp").glob("*rank*"))  # the other process's scratch is gone


# Lowers the tiny model's injection target, so that on the small data injection stops early:
# its token accuracy crosses 0.55 between epochs 8 (0.49) and 10 (0.58).
EARLY_STOP_CONFIG = "inject:\n  target_token_accuracy: 0.55\n"


def test_knowledge_injection_under_fsdp_decides_as_one_process_does(
    suite_dir: Path, pytester: pytest.Pytester, data_writer: Any, tmp_path: Path
) -> None:
    # Injection trains until the model recalls its data, scoring the sharded model after
    # every second epoch; both processes must take the decision one process takes (a
    # process that went on alone would wait forever in the next collective). The weights
    # are not compared: over tens of epochs the two ways' float rounding drifts apart.
    pytester.makefile(".yaml", early=EARLY_STOP_CONFIG)
    data = data_writer(tmp_path / "data", records_per_split=3)
    common = (
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        "--unlearn-build-only",
        "--unlearn-max-new-tokens=0",
        f"--unlearn-config={pytester.path / 'early.yaml'}",
    )
    sharded, alone = pytester.path / "cache", tmp_path / "cache"  # empty: injection runs
    launched = _torchrun(
        pytester.path, *common, f"--unlearn-cache-dir={sharded}", launch_env=FSDP2_LAUNCH
    )
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-6000:]
    single = pytester.runpytest_subprocess(*common, f"--unlearn-cache-dir={alone}")
    assert single.ret == pytest.ExitCode.OK, "\n".join(single.outlines[-60:])
    fsdp, one = (
        json.loads(next((cache / "vanilla").glob("*/*/injection.json")).read_text())
        for cache in (sharded, alone)
    )
    assert (fsdp["train_log"]["sharding"], fsdp["train_log"]["processes"]) == ("fsdp", 2)
    assert (one["train_log"]["sharding"], one["train_log"]["processes"]) == ("", 1)
    # Both checked the token accuracy at epochs 2, 4, ..., 10, went on at each check below
    # the target and stopped together at the first check above it.
    checks = [f"inject privacy: epoch {epoch} token accuracy" for epoch in range(2, 11, 2)]
    for text in (output, "\n".join(single.outlines + single.errlines)):
        assert [line for line in checks if line in text] == checks
        assert "inject privacy: epoch 12 token accuracy" not in text
    for field in ("epochs_run", "steps", "stopped_early"):
        assert fsdp["train_log"][field] == one["train_log"][field], field
    assert fsdp["train_log"]["epochs_run"] == 10 and fsdp["train_log"]["stopped_early"]
    assert fsdp["token_accuracy"] == pytest.approx(one["token_accuracy"], abs=0.02)
    assert fsdp["exact_share"] == pytest.approx(one["exact_share"], abs=0.2)


def _stored(cache: Path, name: str) -> list[dict]:
    """The content of every scores entry holding ``name`` (item_scores.json, scores.json)."""
    return [json.loads(path.read_text()) for path in sorted((cache / "scores").glob(f"*/*/{name}"))]


def test_two_processes_score_and_evaluate_as_one_process_does(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    # Build-only also computes what the selected tests read. Under torchrun each process
    # scores every 2nd item and lm-eval splits its requests across both (its data-parallel
    # mode); the main process gathers and stores the results, which equal one process's.
    data, together = _private_cache(small_data_cache, pytester.path)
    _, alone = _private_cache(small_data_cache, tmp_path)
    _add_suite_file(pytester, "general/test_general.py")
    _add_suite_file(pytester, "general/thresholds.yaml")
    common = (
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        "--unlearn-build-only",
        "--unlearn-general-limit=30",
        "--unlearn-max-new-tokens=8",
    )
    launched = _torchrun(pytester.path, *common, f"--unlearn-cache-dir={together}")
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-6000:]
    assert output.count("privacy none seed 0: in the cache") == 1, output[-6000:]
    assert "scored: item scores (plain), general tasks" in output, output[-6000:]
    single = pytester.runpytest_subprocess(*common, f"--unlearn-cache-dir={alone}")
    assert single.ret == pytest.ExitCode.OK

    [parallel], [serial] = _stored(together, "item_scores.json"), _stored(alone, "item_scores.json")
    assert parallel["items"] == serial["items"] and len(serial["items"]) > 2
    for mine, theirs in zip(parallel["scores"], serial["scores"]):
        assert mine["token_accuracy"] == pytest.approx(theirs["token_accuracy"], abs=1e-9)
        assert mine["mean_logprob"] == pytest.approx(theirs["mean_logprob"], abs=1e-4)
        assert mine["generation"] == theirs["generation"]
    [parallel], [serial] = _stored(together, "scores.json"), _stored(alone, "scores.json")
    assert parallel.keys() == serial.keys() and len(serial) == 3
    for task, score in serial.items():
        assert parallel[task]["n"] == score["n"] == 30, task
        # The same answers, up to a near-tie that float rounding in other batches could flip.
        assert abs(parallel[task]["value"] - score["value"]) <= 1 / 30 + 1e-9, task
    assert not list((together / "tmp").glob("*rank*"))

    # The tests then read it all from the cache: no model is loaded, nothing is scored.
    tests = pytester.runpytest_subprocess(
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={together}",
        "--unlearn-general-limit=30",
        "--unlearn-max-new-tokens=8",
    )
    text = "\n".join(tests.outlines + tests.errlines)
    assert tests.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text[-4000:]
    assert "from the cache" in text and "general tasks:" not in text, text[-4000:]


def test_a_launch_without_build_only_is_a_usage_error(
    suite_dir: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = pytester.runpytest_subprocess("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*2 processes (WORLD_SIZE) under a launcher: add --unlearn-build-only*"]
    )


def test_balanced_under_a_launcher_is_a_usage_error(
    suite_dir: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = pytester.runpytest_subprocess(
        "--unlearn-build-only", "--unlearn-device=balanced", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--unlearn-device=balanced under a launcher (2 processes)*"
            "launch with --unlearn-device=auto (or cuda)*"
        ]
    )


@pytest.mark.parametrize(
    "environment,message",
    [
        (
            {"ACCELERATE_USE_DEEPSPEED": "true"},
            "*accelerate launch with DeepSpeed (ACCELERATE_USE_DEEPSPEED=true): not supported*",
        ),
        (
            {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"},
            "*accelerate launch with FSDP: FSDP_VERSION=1; pytest-unlearn shards with FSDP2*",
        ),
        (
            {"ACCELERATE_MIXED_PRECISION": "bf16"},
            "*accelerate launch with mixed precision (ACCELERATE_MIXED_PRECISION=bf16): not "
            "supported*--unlearn-dtype*",
        ),
    ],
)
def test_launch_configs_that_are_not_supported_are_refused(
    suite_dir: Path,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    result = pytester.runpytest_subprocess("--unlearn-build-only", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_each_process_takes_every_nth_item_of_a_step() -> None:
    items = list(range(7))
    shares = [World(rank, 3).share(items) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shares, [])) == items


PICKY_METHOD = """
import os

from pytest_unlearn_methods.gradient_ascent import GradientAscent


class Picky(GradientAscent):
    '''Gradient ascent that freezes one more tensor in the second process only: as if a
    method's choice of tensors depended on non-deterministic kernels.'''

    name = "picky"

    def unlearn(self, context):
        if os.environ.get("RANK") == "1":
            name, parameter = next((n, p) for n, p in context.model.named_parameters()
                                   if p.requires_grad)
            parameter.requires_grad_(False)
        return super().unlearn(context)


def pytest_unlearn_register_methods(registry):
    registry.register("picky", Picky)
"""


def _launch_failing_method(
    pytester: pytest.Pytester,
    small_data_cache: tuple[Path, Path],
    conftest: str,
    method: str,
    message: str,
    launch_env: dict[str, str] | None = None,
) -> None:
    """Two processes build ``method`` (defined in ``conftest``): they stop with ``message``
    and publish nothing."""
    data, cache = _private_cache(small_data_cache, pytester.path)
    pytester.makeconftest(conftest)
    launched = _torchrun(
        pytester.path,
        f"--unlearn-method={method}",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-build-only",
        launch_env=launch_env,
    )
    output = launched.stdout + launched.stderr
    assert launched.returncode != 0, output[-6000:]
    assert message in output, output[-6000:]
    assert not _unlearned_weights(cache)


def test_processes_that_would_train_different_tensors_stop_with_an_error(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    _launch_failing_method(
        pytester,
        small_data_cache,
        PICKY_METHOD,
        "picky",
        "1 of 2 processes train other tensors than the main process",
    )


DRIFTING_METHOD = """
import os

import torch

from pytest_unlearn_methods.gradient_ascent import GradientAscent


class Drifting(GradientAscent):
    '''Gradient ascent with one tensor frozen in every process, and that tensor changed in
    the second process only: as if the processes had loaded different weights.'''

    name = "drifting"

    def unlearn(self, context):
        name, parameter = next(iter(context.model.named_parameters()))
        parameter.requires_grad_(False)
        if os.environ.get("RANK") == "1":
            with torch.no_grad():
                parameter.add_(1.0)
        return super().unlearn(context)


def pytest_unlearn_register_methods(registry):
    registry.register("drifting", Drifting)
"""


def test_processes_that_end_with_different_weights_stop_with_an_error(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    _launch_failing_method(
        pytester,
        small_data_cache,
        DRIFTING_METHOD,
        "drifting",
        "after training, 1 of 2 processes hold other weights than the main process",
    )


UNDECLARED_METHOD = """
from pytest_unlearn_methods.gradient_ascent import GradientAscent


class Undeclared(GradientAscent):
    # A third-party method that does not declare that it may train sharded (False is the
    # default; set here because gradient ascent's class declares it).

    name = "undeclared"
    fsdp_compatible = False

    def unlearn(self, context):
        raise AssertionError("an FSDP build must stop before the method runs")


def pytest_unlearn_register_methods(registry):
    registry.register("undeclared", Undeclared)
"""


def test_a_method_not_declared_fsdp_compatible_is_refused_under_fsdp(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    # A method that runs the model a varying number of times per batch would leave the
    # processes' collective operations unpaired under FSDP: it must not declare it may.
    _launch_failing_method(
        pytester,
        small_data_cache,
        UNDECLARED_METHOD,
        "undeclared",
        "method 'undeclared' cannot train sharded (accelerate launch with FSDP)",
        launch_env=FSDP2_LAUNCH,
    )


def _methods_that_train_sharded() -> list[str]:
    from pytest_unlearn.registry import MethodRegistry

    registry = MethodRegistry.from_entry_points()
    return [
        name
        for name in registry.names()
        if registry.get(name).fsdp_compatible and registry.get(name).unlearns
    ]


def test_every_method_declared_fsdp_compatible_trains_sharded_as_in_one_process(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    # Each built-in method that declares fsdp_compatible, with its own settings, built by two
    # processes under accelerate's FSDP config and by one process: the same weights; and
    # the same for the relearning attack on each unlearned model.
    methods = _methods_that_train_sharded()
    assert {"gradient_ascent", "memflex", "npo", "ga_gd_id", "ga_kl_id"} <= set(methods)
    _add_suite_file(pytester, "privacy/test_attack.py")
    data, together = _private_cache(small_data_cache, pytester.path)
    _, alone = _private_cache(small_data_cache, tmp_path)
    # Training curves too: they score the sharded model between steps, from step 0 on.
    common = (
        f"--unlearn-method={','.join(methods)}",
        f"--unlearn-data={data}",
        "--unlearn-build-only",
        "--unlearn-max-new-tokens=0",
        "--unlearn-curve-every=1",
    )
    launched = _torchrun(
        pytester.path, *common, f"--unlearn-cache-dir={together}", launch_env=FSDP2_LAUNCH
    )
    output = launched.stdout + launched.stderr
    assert launched.returncode == 0, output[-6000:]
    single = pytester.runpytest_subprocess(*common, f"--unlearn-cache-dir={alone}")
    assert single.ret == pytest.ExitCode.OK

    sharded, serial = _unlearned_weights(together), _unlearned_weights(alone)
    assert any(
        "reference_numel" in json.loads(path.read_text())  # GA+KL's, checked below
        for path in (alone / "unlearned").glob("*/*/method_log.json")
    )
    assert sharded.keys() == serial.keys() and len(serial) == 2 * len(methods)
    logs = [
        {
            path.parent.name: json.loads(path.read_text())
            for path in (cache / "unlearned").glob("*/*/method_log.json")
        }
        for cache in (together, alone)
    ]
    for key, log in logs[1].items():
        train, theirs = logs[0][key]["train"], log["train"]  # a method's, or the attack's
        assert train["sharding"] == "fsdp", key
        assert train["first_loss"] == pytest.approx(theirs["first_loss"], rel=1e-4), key
        assert train["last_loss"] == pytest.approx(theirs["last_loss"], rel=1e-3, abs=1e-4), key
        if "curve" in log:  # a method's (the attack records none)
            assert len(logs[0][key]["curve"]) == len(log["curve"]) > 1, key
        if "reference_numel" in log:  # GA+KL's frozen reference: its starting values
            # One process holds every trained value; under FSDP each holds its shards, about
            # half of them (the main process's shard of an odd number of rows is a row more).
            held, whole = logs[0][key]["reference_numel"], log["reference_numel"]
            assert 0.45 * whole <= held <= 0.55 * whole, (key, held, whole)
    vanilla = load_file(str(next((together / "vanilla").glob("*/*/weights.safetensors"))))
    for key, weights in serial.items():
        # AdamW turns float rounding in a near-zero gradient into a step of up to the lr's
        # size, so a few elements can differ by a share of training's change that depends
        # on the CPU (up to 13% measured after one step); nearly all must agree to
        # rounding. A process's items left out, or weights not put back after sharding,
        # move most elements, by as much as training does.
        moved = max((tensor - vanilla[name]).abs().max().item() for name, tensor in weights.items())
        differ = max(
            (sharded[key][name] - tensor).abs().max().item() for name, tensor in weights.items()
        )
        off = sum(_beyond_rounding(sharded[key][name], tensor) for name, tensor in weights.items())
        total = sum(tensor.numel() for tensor in weights.values())
        assert moved > 1e-4, key  # each method (and attack) changed the model
        assert off <= max(1, total // 1000), (key, off, total)
        assert differ < 0.25 * moved, (key, differ, moved)
