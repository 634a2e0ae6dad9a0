"""End to end: the oracle (``retrain``), the membership and quantized suites on a small
data set with a real holdout, through the plugin, the summary, the JSON report and the
gate. One inner run (two tiny injections: the vanilla model and the oracle)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_inner_pytest, write_data_folder, write_suite
from pytest_unlearn import evaluate
from pytest_unlearn.holdout import null_half_width

# 72 Unlearn Scope records: the fewest that give a holdout (20 records) of a meaningful AUC.
SIZES = {"unlearn_train": 60, "unlearn_val": 12, "retention_train": 12, "retention_val": 6}
INJECTION = "inject:\n  epochs: 12\n  target_token_accuracy: null\n"


def small_privacy_data(folder: Path) -> Path:
    data = write_data_folder(folder)
    for split, size in SIZES.items():
        path = data / f"{split}.json"
        path.write_text(json.dumps(json.loads(path.read_text())[:size], indent=1))
    return data


# What a row of the summary must agree on between a run of the suites and evaluate().
ROW_FIGURES = (
    "method",
    "seeds",
    "unlearn_success",
    "retention_success",
    "quant8_unlearn_success",
    "quant4_unlearn_success",
    "privleak",
    "model_cache_key",
    "intervals",
)


def test_vanilla_leaks_membership_the_oracle_does_not(tmp_path: Path) -> None:
    write_suite(tmp_path)
    for name in ("test_membership.py", "test_quantized.py"):
        shutil.copy(REPO_ROOT / "suites" / "privacy" / name, tmp_path / name)
    data = small_privacy_data(tmp_path / "data")
    config = tmp_path / "inject.yaml"
    config.write_text(INJECTION)
    gate = tmp_path / "gate.yaml"
    gate.write_text(
        "methods: [retrain, none]\n"
        "domains:\n  privacy:\n    privleak: {min: -0.2, max: 0.2}\n"
        "    quant4_unlearn_success: {min: 0.0}\n"
    )
    report = tmp_path / "report.json"
    result = run_inner_pytest(
        tmp_path,
        "--unlearn-method=retrain,none",
        f"--unlearn-data={data}",
        f"--unlearn-config={config}",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        f"--unlearn-json={report}",
        f"--unlearn-gate={gate}",
        "--unlearn-max-new-tokens=0",
        "-p",
        "no:randomly",
    )
    assert report.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(report.read_text())
    entries = {entry["method"]: entry for entry in summary["membership"]}
    # The oracle's own test skips: it is the reference.
    assert entries["retrain"]["tests"]["skipped"] == 1 and "privleak" not in entries["retrain"]
    entry = entries["none"]
    assert entry["holdout_records"] == 20, entry
    assert entry["forget_records"] == 52
    width = null_half_width(entry["forget_records"], entry["holdout_records"])
    # The vanilla model learned the forget set and never saw the holdout: it tells them
    # apart; the oracle learned neither: chance, within the AUC's noise.
    assert entry["vanilla_auc_loss"] > 0.5 + width, entry
    assert abs(entry["oracle_auc_loss"] - 0.5) < width, entry
    assert entry["auc_loss"] == entry["vanilla_auc_loss"]  # none is the vanilla model
    assert entry["privleak"] > 0.2 and not entry["over_unlearning"]
    assert entry["tests"]["failed"] == 1  # |PrivLeak| above 0.2: the vanilla model leaks
    rows = {row["method"]: row for row in summary["rows"]}
    assert set(rows) == {"retrain", "none"}
    assert rows["none"]["privleak"] == entry["privleak"]
    assert "privleak" in rows["none"]["intervals"]
    for row in rows.values():
        assert 0 <= row["quant8_unlearn_success"] <= 1
        assert row["quant8_unlearn_items"] == SIZES["unlearn_val"]
    # The gate bounds PrivLeak: the vanilla model fails it.
    failed = [c["check"] for c in summary["gate"]["checks"] if not c["passed"]]
    assert any("none" in check and "privleak" in check for check in failed), failed
    schema = json.loads((REPO_ROOT / "pytest_unlearn" / "report.schema.json").read_text())
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator(schema).validate(summary)
    assert "membership inference against the oracle" in result.stdout
    assert result.returncode == 1

    # evaluate() runs the same tests on the same cache: the same figures, no model loaded.
    lines: list[str] = []
    evaluated = evaluate(
        methods="retrain,none",
        tests=["recall", "quant8", "quant4", "privacy_leak"],
        data=data,
        config=config,
        cache_dir=tmp_path / "cache",
        max_new_tokens=0,
        gate=gate,
        progress=lines.append,
    )
    assert evaluated["membership"] == summary["membership"]
    assert [{key: row.get(key) for key in ROW_FIGURES} for row in evaluated["rows"]] == [
        {key: row.get(key) for key in ROW_FIGURES} for row in summary["rows"]
    ]
    outcomes = {(i["method"], i["test"], i["item"], i["outcome"]) for i in summary["items"]}
    assert {(i["method"], i["test"], i["item"], i["outcome"]) for i in evaluated["items"]} == (
        outcomes
    )
    assert evaluated.passed is False
    assert not [line for line in lines if "from the cache" not in line], lines
