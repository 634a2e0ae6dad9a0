"""Training curves (--unlearn-curve-every) and plots (--unlearn-plots)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_curves_are_real_scores_and_leave_training_unchanged(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    data, cache = small_data_cache
    common = (
        "--unlearn-method=gradient_ascent",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
    )
    plain = pytester.runpytest_subprocess(*common, "--unlearn-json=plain.json")
    assert plain.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    plots = tmp_path / "plots"
    result = pytester.runpytest_subprocess(
        *common, "--unlearn-curve-every=1", f"--unlearn-plots={plots}", "--unlearn-json=r.json"
    )
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text
    summary = json.loads((pytester.path / "r.json").read_text())
    [row] = summary["rows"]
    curve = row["method_log"]["curve"]
    steps = row["method_log"]["train"]["steps"]
    assert [point["step"] for point in curve] == list(range(steps + 1))
    # The last point scores the final model as the item tests do: the same figures.
    assert curve[-1]["unlearn_success"] == row["unlearn_success"]
    assert curve[-1]["retention_success"] == row["retention_success"]
    assert curve[-1]["unlearn_ppl"] == pytest.approx(row["unlearn_ppl"], rel=1e-4)
    # Before the first step the model is the vanilla one, which recalls what it learned.
    assert curve[0]["unlearn_success"] < 0.5

    # Scoring during training changed nothing: the same weights as without curves.
    [before] = json.loads((pytester.path / "plain.json").read_text())["rows"]
    assert before["model_cache_key"] != row["model_cache_key"]

    def weights(key: str) -> str:
        manifest = cache / "unlearned" / key[:2] / key / "manifest.json"
        return json.loads(manifest.read_text())["files"]["weights.safetensors"]

    assert weights(before["model_cache_key"]) == weights(row["model_cache_key"])

    expected = [
        str(plots / f"{name}.{suffix}")
        for name in ("curve-gradient_ascent-privacy", "comparison")
        for suffix in ("png", "pdf", "svg")
    ]
    assert summary["plots"] == expected
    signatures = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}
    for path in expected:
        assert Path(path).read_bytes().startswith(signatures[Path(path).suffix])
        assert f"plot: {path}" in text


def test_several_seeds_curves_reach_the_plots_as_a_band(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PolyCollection

    from pytest_unlearn.plots import curve_figure, row_curves

    data, cache = small_data_cache
    result = pytester.runpytest_subprocess(
        "--unlearn-method=gradient_ascent",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
        "--unlearn-seeds=2",
        "--unlearn-curve-every=1",
        f"--unlearn-plots={tmp_path / 'plots'}",
        "--unlearn-json=r.json",
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    [row] = json.loads((pytester.path / "r.json").read_text())["rows"]
    assert sorted(row["curves"]) == ["0", "1"]
    assert row["curves"]["0"] == row["method_log"]["curve"]  # the row's own model: seed 0
    assert row["curves"]["0"] != row["curves"]["1"]  # two runs, two curves
    figure = curve_figure(row_curves(row), "ga", seeds=2)
    assert any(isinstance(each, PolyCollection) for each in figure.axes[0].collections)
    assert (tmp_path / "plots" / "curve-gradient_ascent-privacy.pdf").is_file()


def test_plots_without_matplotlib_is_a_usage_error(
    suite_dir: Path, pytester: pytest.Pytester
) -> None:
    # A conftest that hides matplotlib stands in for an environment without the extra.
    pytester.makeconftest("import sys\nsys.modules['matplotlib'] = None\n")
    result = pytester.runpytest_subprocess("--unlearn-plots=plots", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--unlearn-plots=plots: drawing plots needs matplotlib*"
            "pip install 'pytest-unlearn[[]plots[]]'*"
        ]
    )


def test_plots_that_cannot_be_written_fail_the_run_but_keep_the_report(
    suite_dir: Path, pytester: pytest.Pytester, small_data_cache: tuple[Path, Path]
) -> None:
    data, cache = small_data_cache
    blocker = pytester.path / "not-a-folder"
    blocker.write_text("a file where the plots folder should be\n")
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-max-new-tokens=0",
        f"--unlearn-plots={blocker}",
        "--unlearn-json=r.json",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"ERROR: --unlearn-plots={blocker}: could not write the plots*"])
    summary = json.loads((pytester.path / "r.json").read_text())
    assert summary["rows"] and "could not write the plots" in summary["plots_error"]
