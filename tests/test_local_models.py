"""The pretrained-model path, on a small LLaMA model saved to a local folder: loading with
transformers, LoRA knowledge injection (paper Table 7), unlearning the adapter, testing a
model as it is (--unlearn-inject=never) against a --unlearn-reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_folder_model_gets_a_lora_injection_and_unlearns(
    pytester: pytest.Pytester,
    suite_writer: Any,
    data_writer: Any,
    local_model: Path,
    tmp_path: Path,
) -> None:
    suite_writer(pytester.path)
    data = data_writer(tmp_path / "data", records_per_split=3)
    cache = tmp_path / "cache"
    result = pytester.runpytest_subprocess(
        f"--model={local_model}",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-method=none,gradient_ascent",
        "--unlearn-json=r.json",
        "--unlearn-max-new-tokens=8",
    )
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
    rows = {
        row["method"]: row for row in json.loads((pytester.path / "r.json").read_text())["rows"]
    }
    assert set(rows) == {"none", "gradient_ascent"}
    assert all(row["unlearn_items"] == 3 and row["retention_items"] == 3 for row in rows.values())

    from safetensors.torch import load_file

    [vanilla] = list((cache / "vanilla").glob("*/*"))
    injection = json.loads((vanilla / "injection.json").read_text())
    # Paper Table 7, privacy: 10 epochs of the LoRA adapter, lr 1e-4, weight decay 1e-4.
    assert injection["settings"]["epochs"] == 10 and injection["settings"]["lr"] == 1e-4
    assert injection["train_log"]["epochs_run"] == 10
    saved = load_file(str(vanilla / "weights.safetensors"))
    assert saved and all("lora_" in name for name in saved)  # only the adapter is stored
    # r=8 on every linear layer but lm_head: 7 projections x 2 layers x (A, B).
    assert len(saved) == 28
    assert all(tensor.shape[0] == 8 for name, tensor in saved.items() if "lora_A" in name)

    [unlearned] = list((cache / "unlearned").glob("*/*"))
    changed = load_file(str(unlearned / "weights.safetensors"))
    assert set(changed) == set(saved)
    assert any(not (changed[name] == saved[name]).all() for name in saved)


def test_inject_section_target_stops_a_lora_injection_early(
    pytester: pytest.Pytester,
    suite_writer: Any,
    data_writer: Any,
    local_model: Path,
    tmp_path: Path,
) -> None:
    suite_writer(pytester.path)
    data = data_writer(tmp_path / "data", records_per_split=3)
    # The target is checked every second epoch. The random model's token accuracy at a given
    # epoch differs between CPUs (here 0.04 or 0.06 at epoch 2, on CI 0.00 at epoch 2, 0.09 at
    # epoch 4), so the test asks only that a low target ends injection well before its 12 epochs.
    pytester.makefile(
        ".yaml",
        unlearn="inject:\n  epochs: 12\n  lr: 1.0e-2\n  batch_size: 4\n"
        "  grad_accum: 1\n  target_token_accuracy: 0.05\n",
    )
    cache = tmp_path / "cache"
    result = pytester.runpytest_subprocess(
        f"--model={local_model}",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-config=unlearn.yaml",
        "--unlearn-max-new-tokens=0",
    )
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
    [vanilla] = list((cache / "vanilla").glob("*/*"))
    injection = json.loads((vanilla / "injection.json").read_text())
    assert injection["settings"]["epochs"] == 12 and injection["settings"]["lr"] == 1e-2
    epochs_run = injection["train_log"]["epochs_run"]
    assert epochs_run in (2, 4, 6, 8, 10), output
    assert injection["token_accuracy"] >= 0.05
    assert f"epoch {epochs_run} token accuracy" in output
    # It recalls no record exactly: the weak injection is named.
    assert "InjectionWarning: knowledge injection (privacy)" in output


def test_model_tested_as_it_is_against_a_reference(
    pytester: pytest.Pytester, suite_writer: Any, local_model: Path, tmp_path: Path
) -> None:
    suite_writer(pytester.path)
    (pytester.path / "test_general.py").write_text(
        (REPO_ROOT / "suites" / "general" / "test_general.py").read_text()
    )
    (pytester.path / "thresholds.yaml").write_text(
        (REPO_ROOT / "suites" / "general" / "thresholds.yaml").read_text()
    )
    # The general suite alone, so it tests both domains' rows.
    result = pytester.runpytest_subprocess(
        "test_general.py",
        f"--model={local_model}",
        f"--unlearn-reference={local_model}",
        "--unlearn-inject=never",
        "--unlearn-method=none",
        "--unlearn-data=builtin",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-general-tasks=builtin",
        "--unlearn-general-limit=10",
        "--unlearn-json=r.json",
    )
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret == pytest.ExitCode.OK, output
    report = json.loads((pytester.path / "r.json").read_text())
    assert sorted((row["domain"], row["task"]) for row in report["general"]) == [
        (domain, task)
        for domain in ("copyright", "privacy")
        for task in ("unlearn_builtin_arith", "unlearn_builtin_facts", "unlearn_builtin_order")
    ]
    # The candidate is its own reference here: the same weights give the same scores.
    assert all(row["drop"] == 0.0 and row["outcome"] == "passed" for row in report["general"])
    # A model tested as it is depends on no domain: loaded and evaluated once for both
    # domains, and once more as the reference.
    assert output.count("[unlearn] loading ") == 2, output
    assert output.count("[unlearn] general tasks: ") == 2, output
    # Nothing was injected: no vanilla entry was built.
    assert not (tmp_path / "cache" / "vanilla").exists()


def test_model_tested_as_it_is_scores_each_domains_own_items(
    pytester: pytest.Pytester, suite_writer: Any, local_model: Path, tmp_path: Path
) -> None:
    """Both domains share the model's cache key; each still gets its own items' scores."""
    suite_writer(pytester.path)
    (pytester.path / "test_copyright.py").write_text(
        (REPO_ROOT / "suites" / "copyright" / "test_copyright.py").read_text()
    )
    result = pytester.runpytest_subprocess(
        f"--model={local_model}",
        "--unlearn-inject=never",
        "--unlearn-method=none",
        "--unlearn-data=builtin",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-json=r.json",
        "--unlearn-max-new-tokens=0",
    )
    output = "\n".join(result.outlines + result.errlines)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
    items = json.loads((pytester.path / "r.json").read_text())["items"]
    by_domain = {
        domain: [each for each in items if each["domain"] == domain]
        for domain in ("privacy", "copyright")
    }
    from pytest_unlearn.data import load_domain

    assert {domain: len(rows) for domain, rows in by_domain.items()} == {
        domain: len(load_domain("builtin", domain).items()) for domain in by_domain
    }, output
    assert len({each["model_cache_key"] for each in items}) == 1
    # Scores kept by the key alone would give the copyright items privacy's first ones,
    # position by position.
    privacy = [each["mean_logprob"] for each in by_domain["privacy"]]
    copyright_ = [each["mean_logprob"] for each in by_domain["copyright"]]
    assert privacy[: len(copyright_)] != copyright_


@pytest.mark.parametrize("damage", ["truncated", "missing tensor"])
def test_corrupt_checkpoint_folder_is_a_clear_error(
    local_model: Path, tmp_path: Path, damage: str
) -> None:
    """A damaged weights file never loads as a partly random model."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.models import ModelSpec, load_pretrained

    folder = tmp_path / "model"
    shutil.copytree(local_model, folder)
    weights = folder / "model.safetensors"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        expected = "a truncated or corrupt weights file must be copied again"
    else:
        tensors = load_file(weights)
        del tensors["model.norm.weight"]
        save_file(tensors, weights, metadata={"format": "pt"})
        expected = (
            "lacks 1 tensor(s) the model needs or has them in another shape (model.norm.weight)"
        )
    with pytest.raises(UnlearnError) as error:
        load_pretrained(
            ModelSpec.parse(str(folder)),
            torch.device("cpu"),
            torch.float32,
            trust_remote_code=False,
        )
    assert f"could not load model {str(folder)!r}" in str(error.value)
    assert expected in str(error.value)


def test_a_model_with_its_own_code_names_the_option_that_allows_it(
    local_model: Path, tmp_path: Path
) -> None:
    import shutil

    import torch

    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.models import ModelSpec, load_pretrained

    folder = tmp_path / "custom"
    shutil.copytree(local_model, folder)
    config = json.loads((folder / "config.json").read_text())
    # A model type transformers does not know, so only the model's own code could load it.
    config["model_type"] = "custom_llama"
    config["auto_map"] = {
        "AutoConfig": "modeling_custom.CustomConfig",
        "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text("raise SystemExit('this code must not run')\n")
    with pytest.raises(UnlearnError) as error:
        load_pretrained(
            ModelSpec.parse(str(folder)),
            torch.device("cpu"),
            torch.float32,
            trust_remote_code=False,
        )
    message = str(error.value)
    assert "ships its own Python code" in message
    assert "pass --unlearn-trust-remote-code" in message


def test_gradient_checkpointing_changes_memory_not_results(local_model: Path) -> None:
    """--unlearn-gradient-checkpointing=on reaches the model, and LoRA training with it gives
    the same adapter as without (so it is not part of the cache key)."""
    import torch

    from pytest_unlearn.cache import ModelCache
    from pytest_unlearn.data import load_domain
    from pytest_unlearn.encoding import encode_all
    from pytest_unlearn.models import attach_lora, get_tensors, lora_tensor_names, set_trainable
    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.pipeline import Pipeline
    from pytest_unlearn.training import Trainer, TrainSettings, answer_nll

    records = load_domain("builtin", "privacy").splits["unlearn_train"][:8]
    adapters = {}
    for choice in ("off", "on"):
        settings = settings_for_script(
            unlearn_model=str(local_model),
            unlearn_device="cpu",
            unlearn_gradient_checkpointing=choice,
        )
        pipeline = Pipeline(settings, ModelCache(Path("unused")), lambda message: None)
        base, tokenizer = pipeline._load_base()
        assert base.is_activation_checkpointing == (choice == "on")
        torch.manual_seed(0)
        model = attach_lora(base)
        names = lora_tensor_names(model)
        set_trainable(model, names)
        encoded = encode_all(tokenizer, records, 256, "probe")
        pad = tokenizer.pad_token_id
        Trainer(
            model,
            encoded,
            lambda batch: answer_nll(model, batch, pad),
            TrainSettings(lr=1e-3, epochs=1, batch_size=4, grad_accum=1, shuffle=False),
            0,
            "probe",
        ).run()
        adapters[choice] = get_tensors(model, names)
    assert all(torch.equal(adapters["off"][name], adapters["on"][name]) for name in adapters["off"])
    assert any(
        tensor.abs().sum() > 0 for name, tensor in adapters["on"].items() if "lora_B" in name
    )  # it trained
