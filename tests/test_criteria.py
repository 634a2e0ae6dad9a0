"""The two criteria side by side: the summary's whole-answer pass rates and token-share
figures from the same outcomes, and the paper's findings checked under each
(``benchmarks/fidelity.py``, ``benchmarks/criteria.py``)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pytest_unlearn.outcomes import ItemOutcome
from pytest_unlearn.report import summarize

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _benchmark(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _outcome(scope: str, index: int, token_accuracy: float, outcome: str) -> ItemOutcome:
    return ItemOutcome(
        method="m",
        domain="privacy",
        scope=scope,
        item=f"privacy-{scope}-{index:03d}",
        outcome=outcome,
        token_accuracy=token_accuracy,
        mean_logprob=-0.1,
        model_cache_key="k",
    )


def test_the_summary_gives_both_criteria_from_the_same_items() -> None:
    """Unlearn item 0 keeps 90% of its answer tokens: not recalled in full, so its forget
    test passes (whole-answer), while the token share counts it 0.9 recalled."""
    outcomes = [
        _outcome("unlearn", 0, 0.9, "passed"),
        _outcome("unlearn", 1, 1.0, "failed"),
        _outcome("retention", 0, 1.0, "passed"),
        _outcome("retention", 1, 0.5, "failed"),
    ]
    [row] = summarize(outcomes)
    assert row["unlearn_success"] == pytest.approx(0.5)
    assert row["retention_success"] == pytest.approx(0.5)
    assert row["avg_success"] == pytest.approx(0.5)
    assert row["unlearn_success_token"] == pytest.approx(1 - (0.9 + 1.0) / 2)
    assert row["retention_success_token"] == pytest.approx((1.0 + 0.5) / 2)
    assert row["avg_success_token"] == pytest.approx((0.05 + 0.75) / 2)
    assert row["per_seed"]["0"]["avg_success_token"] == pytest.approx(0.4)


def test_a_finding_can_hold_under_one_criterion_and_not_the_other() -> None:
    """The paper's findings are checked under the criterion asked for: here gradient ascent
    collapses retention item by item (whole-answer) but keeps most answer tokens."""
    fidelity = _benchmark("fidelity")
    rows = {
        "gradient_ascent": {
            "unlearn_success": 0.96,
            "retention_success": 0.07,
            "avg_success": 0.515,
            "unlearn_success_token": 0.26,
            "retention_success_token": 0.83,
        },
        "memflex": {
            "unlearn_success": 0.96,
            "retention_success": 0.18,
            "avg_success": 0.57,
            "unlearn_success_token": 0.69,
            "retention_success_token": 0.86,
            "avg_success_token": 0.775,
        },
    }
    whole = {claim: holds for claim, holds, _ in fidelity.findings(rows, "whole-answer")}
    share = {claim: holds for claim, holds, _ in fidelity.findings(rows, "token-share")}
    collapse = "gradient_ascent collapses Retention Success (< 50%)"
    assert whole[collapse] and not share[collapse]
    best = "memflex has the best average success"
    assert whole[best] and share[best]
    assert fidelity.PAPER_CRITERION == "token-share"


def _row(unlearn: float, retention: float, unlearn_token: float, retention_token: float) -> dict:
    return {
        "unlearn_success": unlearn,
        "retention_success": retention,
        "avg_success": (unlearn + retention) / 2,
        "unlearn_success_token": unlearn_token,
        "retention_success_token": retention_token,
        "avg_success_token": (unlearn_token + retention_token) / 2,
    }


def test_finding_2_compares_how_far_each_method_moves_under_the_prompt() -> None:
    """Finding 2 holds when MemFlex's Avg Success moves less than GA+GD ID's between the
    plain and the helpful prompt, under each criterion on its own."""
    fidelity = _benchmark("fidelity")
    plain = {"memflex": _row(0.9, 0.6, 0.8, 0.8), "ga_gd_id": _row(1.0, 0.1, 0.9, 0.7)}
    helpful = {
        "memflex": _row(0.9, 0.3, 0.78, 0.8),  # whole-answer -15 points, token share -1
        "ga_gd_id": _row(1.0, 0.0, 0.9, 0.5),  # whole-answer -5 points, token share -10
    }
    share = fidelity.stability(plain, helpful, "helpful", "token-share")
    whole = fidelity.stability(plain, helpful, "helpful", "whole-answer")
    assert share is not None and whole is not None
    assert share[1] and not whole[1]
    assert "memflex 80.0% -> 79.0% (-1.0 points)" in share[2]
    assert "ga_gd_id 55.0% -> 50.0% (-5.0 points)" in whole[2]
    assert (
        fidelity.stability(plain, {"memflex": helpful["memflex"]}, "helpful", "token-share") is None
    )
    # The same move, 10 points, which the float subtractions round to 0.1000...03 for
    # MemFlex and 0.1000...09 for GA+GD ID, is not less.
    tied_plain = {"memflex": _row(0.6, 0.0, 0, 0), "ga_gd_id": _row(0.3, 18 / 30, 0, 0)}
    tied = {"memflex": _row(0.8, 0.0, 0, 0), "ga_gd_id": _row(2 / 3, 13 / 30, 0, 0)}
    check = fidelity.stability(tied_plain, tied, "helpful", "whole-answer")
    assert check is not None and not check[1], check
    assert "(+10.0 points), ga_gd_id" in check[2]
    table = "\n".join(fidelity.prompt_table({"plain": plain, "helpful": helpful}))
    assert "| memflex | helpful | 78.0% / 80.0% / 79.0% | 90.0% / 30.0% / 60.0% |" in table
    assert "| **does not hold** (" in table


def test_fidelity_refuses_prompts_without_the_plain_one() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "fidelity.py"),
            "--data",
            "builtin",
            "--out",
            "x.md",
            "--prompts",
            "helpful",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "lacks plain" in done.stderr and "--prompts plain,helpful" in done.stderr


def test_the_criteria_block_is_recomputed_from_the_report(tmp_path: Path) -> None:
    """benchmarks/criteria.py writes its block from the report's rows, and replaces it on a
    second run rather than adding another."""
    criteria = _benchmark("criteria")
    report = tmp_path / "results.json"
    row = {
        "method": "memflex",
        "unlearn_success": 0.964,
        "retention_success": 0.176,
        "avg_success": 0.57,
        "unlearn_success_token": 0.686,
        "retention_success_token": 0.863,
        "seeds": [0],
        "per_seed": {},
    }
    report.write_text(json.dumps({"rows": [row]}))
    page = tmp_path / "results.md"
    page.write_text("# page\n")
    for _ in range(2):
        criteria.write_block(page, criteria.block(report, "python benchmarks/criteria.py x"))
    text = page.read_text()
    assert text.count(criteria.START) == 1 and text.startswith("# page\n")
    assert (
        "| memflex | 68.6% | 86.3% | 77.5% | 96.4% | 17.6% | 57.0% | 83.0 / 81.8 / 82.4 |" in text
    )


def test_a_page_fidelity_wrote_with_both_criteria_gets_no_second_copy(tmp_path: Path) -> None:
    """A page whose own tables (fidelity.py's) already give both criteria is recognised and
    left alone; a page without them, or with only this script's block, is not."""
    criteria = _benchmark("criteria")
    fidelity = _benchmark("fidelity")
    written = tmp_path / "written.md"
    written.write_text("\n".join(["# run", *fidelity.side_by_side({"none": _row(0, 1, 0, 1)})]))
    assert criteria.written_with_both_criteria(written)
    bare = tmp_path / "bare.md"
    bare.write_text("# page\n")
    assert not criteria.written_with_both_criteria(bare)
    blocked = tmp_path / "blocked.md"
    blocked.write_text("# page\n")
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"rows": [{"method": "none", **_row(0, 1, 0, 1)}]}))
    criteria.write_block(blocked, criteria.block(report, "python benchmarks/criteria.py r.json"))
    assert not criteria.written_with_both_criteria(blocked)
    assert not criteria.written_with_both_criteria(tmp_path / "absent.md")


def test_the_localization_verdict_under_the_token_share() -> None:
    """The same outcomes judged per item test and per token share: the control passes as
    many item tests as the method (no difference), but forgets far fewer answer tokens, so
    under the token share the method beats it on unlearn success."""
    from pytest_unlearn.verdict import control_verdicts

    outcomes = []
    for seed in (0, 1, 2):
        for index in range(6):
            for method, forgotten_share in (("memflex", 0.6), ("memflex_all_tensors", 0.1)):
                outcomes.append(
                    dataclasses.replace(
                        _outcome("unlearn", index, 1.0 - forgotten_share, "passed"),
                        method=method,
                        seed=seed,
                    )
                )
                outcomes.append(
                    dataclasses.replace(
                        _outcome("retention", index, 1.0, "passed"), method=method, seed=seed
                    )
                )
    controls = {"memflex": (("memflex_all_tensors",), "localization")}
    whole = control_verdicts(outcomes, controls)["privacy"]
    share = control_verdicts(outcomes, controls, "token-share")["privacy"]
    whole_unlearn = whole["controls"][0]["differences"]["unlearn_success"]
    share_unlearn = share["controls"][0]["differences"]["unlearn_success"]
    assert whole_unlearn["mean"] == pytest.approx(0.0)
    assert share_unlearn["mean"] == pytest.approx(0.5)
    assert share_unlearn["outcome"] == "beats"
