"""The relearning attack (tests marked ``attack``) and the generation leak tests (``leak``),
black-box through pytester on a small data set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SUITES = Path(__file__).resolve().parents[1] / "suites" / "privacy"


def test_attack_and_leak_tests_report_their_own_metrics(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    for name in ("test_attack.py", "test_leaks.py"):
        shutil.copy(SUITES / name, suite_dir / name)
    data, cache = small_data_cache
    gate = suite_dir / "gate.yaml"
    gate.write_text(
        "methods: [gradient_ascent]\ndomains:\n  privacy:\n"
        "    attack_unlearn_success: {min: 0.0}\n    leak_success: {min: 0.0}\n"
    )
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none,gradient_ascent",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-json=r.json",
        "--unlearn-leak-samples=2",
        "--unlearn-attack=steps=2,fraction=0.5",
        f"--unlearn-gate={gate}",
        "-rsf",  # findings' failure messages are shown with -rf (or -v)
    )
    text = "\n".join(result.outlines + result.errlines)
    summary = json.loads((suite_dir / "r.json").read_text())
    rows = {row["method"]: row for row in summary["rows"]}

    kinds = {(item["method"], item["test"]) for item in summary["items"]}
    assert kinds == {(m, t) for m in rows for t in ("recall", "attack", "leak")}
    for row in rows.values():
        assert row["unlearn_items"] == 3 and row["retention_items"] == 3  # recall tests only
        assert row["attack_unlearn_items"] == 3
        assert 0.0 <= row["attack_unlearn_success"] <= 1.0
        assert row["leak_items"] + row.get("leak_skipped", 0) == 3
        assert "attack_unlearn_success" in row["intervals"]

    # The vanilla model wrote its answers, so its leak tests fail with the strings named.
    assert rows["none"]["leak_success"] == 0.0
    assert "the model wrote what it must forget" in text
    assert "in its greedy generation" in text

    # The attacked model is its own cache entry, logged with the attack's settings.
    logs = {
        path.parent.name: json.loads(path.read_text())
        for path in cache.glob("unlearned/*/*/method_log.json")
    }
    attacks = [log for log in logs.values() if "attack" in log]
    assert attacks and all(
        log["attack"]["steps"] == 2
        and log["attack"]["fraction"] == 0.5
        and log["attack"]["lr"] == 1e-4
        and log["train"]["steps"] == 2
        for log in attacks
    )
    # Each attack test scored that attacked model, and each leak test the unlearned model
    # that the item's recall test scored.
    recall = {
        (item["method"], item["item"]): item
        for item in summary["items"]
        if item["test"] == "recall"
    }
    attacked = [item for item in summary["items"] if item["test"] == "attack"]
    for item in attacked:
        assert "attack" in logs[item["model_cache_key"]], item
        assert item["model_cache_key"] != recall[item["method"], item["item"]]["model_cache_key"]
    for item in summary["items"]:
        if item["test"] == "leak":
            assert (
                item["model_cache_key"] == recall[item["method"], item["item"]]["model_cache_key"]
            )
    # Two steps of relearning move what the model assigns the forgotten answers.
    assert any(
        item["mean_logprob"] != recall[item["method"], item["item"]]["mean_logprob"]
        for item in attacked
        if item["method"] == "gradient_ascent"
    )

    # The gate reads the attack and leak metrics: it prints gradient ascent's values, and
    # thresholds of 0 pass, so the gate alone makes the exit status 0.
    assert result.ret == pytest.ExitCode.OK, text
    ga = rows["gradient_ascent"]
    assert (
        f"ok   gradient_ascent/privacy attack_unlearn_success = "
        f"{ga['attack_unlearn_success']:.4g} ("
    ) in text
    assert f"ok   gradient_ascent/privacy leak_success = {ga['leak_success']:.4g} (" in text


def test_leak_tests_need_generation(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    shutil.copy(SUITES / "test_leaks.py", suite_dir / "test_leaks.py")
    data, cache = small_data_cache
    result = pytester.runpytest_subprocess(
        "test_leaks.py",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
    )
    text = "\n".join(result.outlines)
    assert "--unlearn-max-new-tokens=0 turns generation off" in text
    assert result.parseoutcomes().get("failed", 0) + result.parseoutcomes().get("errors", 0) == 3


def test_bad_attack_spec_is_a_usage_error(suite_dir: Path, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--unlearn-attack=steps=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "steps=0 is out of range" in "\n".join(result.errlines)
    result = pytester.runpytest_subprocess("--unlearn-attack=epochs=3")
    assert "'epochs=3' is not one of steps=, fraction=, lr=" in "\n".join(result.errlines)
