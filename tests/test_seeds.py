"""--unlearn-seeds: one test per item and seed, intervals in the summary, gates on bounds, and
the verdict of MemFlex against its ablation controls (black-box, through pytester)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def text_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def test_seeds_intervals_gate_bounds_and_the_localization_verdict(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    data, cache = small_data_cache
    gate = pytester.path / "gate.yaml"
    gate.write_text("methods: [memflex]\ndomains:\n  privacy:\n    avg_success.lower: {min: 1.0}\n")
    result = pytester.runpytest_subprocess(
        "--unlearn-method=memflex+controls",
        "--unlearn-seeds=2",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
        "--unlearn-json=r.json",
        f"--unlearn-gate={gate}",
        "-v",
    )
    text = text_of(result)
    summary = json.loads((pytester.path / "r.json").read_text())
    assert summary["run"]["seeds"] == [0, 1]

    # One test per method, seed and item; the ids show the seed.
    methods = ("memflex", "memflex_all_tensors", "memflex_random_region", "memflex_inverse_region")
    assert len(summary["items"]) == len(methods) * 2 * 6
    assert "test_forgets[memflex-seed1-privacy-unlearn-000]" in text
    assert {item["seed"] for item in summary["items"]} == {0, 1}

    # Each seed is its own model; each row is the mean over seeds, with an interval.
    for method in methods:
        [row] = [row for row in summary["rows"] if row["method"] == method]
        assert row["seeds"] == [0, 1]
        keys = {item["model_cache_key"] for item in summary["items"] if item["method"] == method}
        assert len(keys) == 2, keys
        per_seed = [row["per_seed"][seed]["avg_success"] for seed in ("0", "1")]
        assert row["avg_success"] == pytest.approx(sum(per_seed) / 2)
        interval = row["intervals"]["avg_success"]
        assert interval["lower"] <= row["avg_success"] <= interval["upper"]
        assert interval["seeds"] == 2
        # its row in the terminal's table of intervals
        assert re.search(rf"^{method} +privacy +\d+\.\d \[", text, re.MULTILINE), text

    # The gate reads the interval's lower end (below 1: MemFlex is not perfect on this
    # small data), so it fails, and prints the interval.
    [memflex] = [row for row in summary["rows"] if row["method"] == "memflex"]
    lower = memflex["intervals"]["avg_success"]["lower"]
    assert lower < 1
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    assert f"FAIL memflex/privacy avg_success.lower = {lower:.4g} (mean " in text
    assert "95% interval [" in text

    # The verdict names every control, with its numbers and how it was reached.
    verdict = summary["localization_verdict"]["privacy"]
    assert len(verdict["lines"]) == 4
    for control in methods[1:]:
        assert f"vs {control}: avg success " in text
    assert "How: memflex minus each control" in text
