"""Black-box tests of a release-gating run: the gate decides the exit status, baselines are
saved and compared, general tasks run through lm-eval, and ROUGE-L comes from generations."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
GENERAL_SUITE = REPO_ROOT / "suites" / "general"
# The gate that README's and docs/ci.md's release commands pass.
RELEASE_GATE = REPO_ROOT / "suites" / "release-gate.yaml"


def output_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def test_passing_gate_makes_a_run_with_failing_items_exit_zero(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    # The vanilla model fails (nearly) every test_forgets item; a gate that only asks for
    # retention passes, and it alone decides the exit status.
    pytester.makefile(
        ".yaml", gate="methods: [none]\ndomains:\n  privacy:\n    retention_success: {min: 0.9}\n"
    )
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none", cache_arg, "--unlearn-gate=gate.yaml", "--junitxml=out.xml"
    )
    assert result.ret == pytest.ExitCode.OK, output_of(result)
    outcomes = result.parseoutcomes()
    [row] = warm_cache["rows"]
    passed = round(row["unlearn_success"] * 28) + round(row["retention_success"] * 28)
    assert outcomes["failed"] == 56 - passed and outcomes["passed"] == passed, outcomes
    assert outcomes["failed"] >= 20  # failing items, yet the run exits 0
    result.stdout.fnmatch_lines(["*unlearn gate PASSED*", "ok   none/privacy retention_success*"])
    properties = {
        p.get("name"): p.get("value") for p in ET.parse(pytester.path / "out.xml").iter("property")
    }
    assert properties["unlearn.gate.verdict"] == "passed"


def test_failing_gate_names_the_threshold_and_the_value(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    pytester.makefile(
        ".yaml", gate="methods: [none]\ndomains:\n  privacy:\n    unlearn_success: {min: 0.8}\n"
    )
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none", cache_arg, "--unlearn-gate=gate.yaml", "--unlearn-json=r.json"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output_of(result)
    result.stdout.fnmatch_lines(
        [
            "*unlearn gate FAILED*",
            "FAIL none/privacy unlearn_success = * (95% interval [[]*], 1 seed; needs >= 0.8)",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["gate"]["passed"] is False
    [check] = [c for c in report["gate"]["checks"] if c["metric"] == "unlearn_success"]
    assert check["value"] == pytest.approx(warm_cache["rows"][0]["unlearn_success"])
    assert check["value"] < 0.8 and (check["bound"], check["limit"]) == ("min", 0.8)
    assert check["passed"] is False


def test_gate_with_an_unknown_metric_is_a_usage_error(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    pytester.makefile(".yaml", gate="domains:\n  privacy:\n    forget_rate: {min: 0.8}\n")
    result = pytester.runpytest("--unlearn-gate=gate.yaml", cache_arg, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown metric 'forget_rate'; the metrics are: unlearn_success" in output_of(result)


def test_baseline_save_then_compare(
    suite_dir: Path,
    pytester: pytest.Pytester,
    unlearn_cache_dir: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    missing = pytester.runpytest("--unlearn-compare=nosuch", cache_arg, "--collect-only")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "--unlearn-save=nosuch" in output_of(missing)

    saved = pytester.runpytest_subprocess("--unlearn-method=none", cache_arg, "--unlearn-save=rel1")
    saved.stdout.fnmatch_lines(["baseline saved: *rel1.json"])
    # Pretend one retention item was lost since: the comparison must name it.
    path = unlearn_cache_dir / "baselines" / "rel1.json"
    baseline = json.loads(path.read_text())
    retained = [item for item in baseline["items"] if item["scope"] == "retention"]
    assert all(item["outcome"] == "passed" for item in retained)
    baseline["items"] = [
        dict(item, outcome="passed") if item["item"] == "privacy-unlearn-003" else item
        for item in baseline["items"]
    ]
    path.write_text(json.dumps(baseline))
    pytester.makefile(".yaml", gate="methods: [none]\ncompare: {max_newly_leaked: 0}\n")
    compared = pytester.runpytest_subprocess(
        "--unlearn-method=none",
        cache_arg,
        "--unlearn-compare=rel1",
        "--unlearn-gate=gate.yaml",
        "--unlearn-json=r.json",
    )
    assert compared.ret == pytest.ExitCode.TESTS_FAILED, output_of(compared)
    comparison = json.loads((pytester.path / "r.json").read_text())["comparison"]
    assert comparison["newly_leaked"] == ["none:privacy-unlearn-003"]
    assert comparison["newly_lost"] == []
    compared.stdout.fnmatch_lines(
        [
            "items in both runs: 56 of 56 in this run",
            "newly leaked: 1: none:privacy-unlearn-003",
            "FAIL newly_leaked = 1 (needs <= 0)",
        ]
    )


def test_general_suite_through_lm_eval(
    pytester: pytest.Pytester, suite_writer: Any, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    suite_writer(pytester.path)
    (pytester.path / "test_general.py").write_text((GENERAL_SUITE / "test_general.py").read_text())
    (pytester.path / "thresholds.yaml").write_text((GENERAL_SUITE / "thresholds.yaml").read_text())
    # Ten times the tiny preset's lr: the model moves far enough that its general-task
    # answers change (at the preset they may not, on 30 items, depending on the CPU).
    pytester.makefile(".yaml", unlearn="gradient_ascent: {lr: 1.0e-3}\n")
    result = pytester.runpytest_subprocess(
        "test_general.py",
        "-k",
        "not copyright",
        "--unlearn-method=none,gradient_ascent",
        cache_arg,
        "--unlearn-config=unlearn.yaml",
        "--unlearn-general-limit=30",
        "--unlearn-json=r.json",
        "-v",
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output_of(result)
    result.stdout.fnmatch_lines(
        [
            "*test_general_ability?none-privacy-unlearn_builtin_arith? PASSED*",
            "*test_general_ability?gradient_ascent-privacy-unlearn_builtin_order? *",
        ]
    )
    # The table names each row's method and domain, in the order of --unlearn-method.
    result.stdout.fnmatch_lines(
        [
            "*general tasks (acc)*",
            "none * privacy * unlearn_builtin_arith *",
            "gradient_ascent * privacy * unlearn_builtin_arith *",
        ]
    )
    general = json.loads((pytester.path / "r.json").read_text())["general"]
    assert {(g["method"], g["task"]) for g in general} == {
        (m, t)
        for m in ("none", "gradient_ascent")
        for t in ("unlearn_builtin_arith", "unlearn_builtin_facts", "unlearn_builtin_order")
    }
    for result_row in general:
        assert result_row["n"] == 30 and 0.0 <= result_row["score"] <= 1.0
        if result_row["method"] == "none":  # the vanilla model is its own reference
            assert result_row["drop"] == 0.0
    # Gradient ascent is scored on its own model, against the vanilla model's score.
    vanilla = {g["task"]: g["score"] for g in general if g["method"] == "none"}
    unlearned = {g["task"]: g for g in general if g["method"] == "gradient_ascent"}
    for task, row in unlearned.items():
        assert row["reference_score"] == vanilla[task]
        assert row["drop"] == pytest.approx(vanilla[task] - row["score"])
    assert any(row["score"] != vanilla[task] for task, row in unlearned.items()), general
    # The shipped release gate checks the candidate's (none's) general tasks, not the others.
    from pytest_unlearn.gate import evaluate_gate
    from pytest_unlearn.gate_file import load_gate

    drops = [
        check
        for check in evaluate_gate(
            load_gate(RELEASE_GATE), json.loads((pytester.path / "r.json").read_text())
        )
        if check.what.endswith(" drop")
    ]
    assert sorted(check.what for check in drops) == [
        f"none/privacy {task} drop"
        for task in ("unlearn_builtin_arith", "unlearn_builtin_facts", "unlearn_builtin_order")
    ]
    assert all(check.value == 0.0 and check.passed for check in drops)


def test_rouge_l_of_the_vanilla_model_is_high(warm_cache: dict[str, Any]) -> None:
    """The vanilla model recalls its answers exactly, so its greedy generations (as long as
    each answer) reproduce them: ROUGE-L near 1. The items' outcomes carry it too."""
    row = next(r for r in warm_cache["rows"] if r["method"] == "none")
    assert row["retention_rouge_l"] > 0.9 and row["unlearn_rouge_l"] > 0.9
    assert all(item["rouge_l"] is not None for item in warm_cache["items"])


def test_the_shipped_release_gate_checks_the_candidates_row(warm_cache: dict[str, Any]) -> None:
    # README's and docs/ci.md's release commands test a candidate as it is
    # (--unlearn-method=none, suites/privacy): the shipped gate must check that row (a gate
    # skips none's row by default) and no domain the command does not run.
    from pytest_unlearn.gate import evaluate_gate
    from pytest_unlearn.gate_file import load_gate

    checks = evaluate_gate(load_gate(RELEASE_GATE), warm_cache)
    row = next(r for r in warm_cache["rows"] if r["method"] == "none")
    assert [(check.what, check.value) for check in checks] == [
        ("none/privacy unlearn_success", row["unlearn_success"]),
        ("none/privacy retention_success", row["retention_success"]),
        ("general.max_drop: no general-task test ran", None),
    ]  # this run has no suites/general
    # The vanilla model recalls what it must forget: it fails on unlearning.
    assert [check.passed for check in checks] == [False, True, False]


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            "{min_score: null, max_drop: 5}",
            "mmlu.max_drop = 5 is outside [0, 1]: scores and drops are fractions of accuracy",
        ),
        ("{min_score: -0.1, max_drop: 0.05}", "mmlu.min_score = -0.1 is outside [0, 1]"),
        ("{max_drop: 0.05}", "task 'mmlu' needs a mapping with exactly min_score and max_drop"),
        ("{min_score: null, max_drop: 0.05, floor: 1}", "needs a mapping with exactly"),
        ("{min_score: null, max_drop: '5%'}", "mmlu.max_drop must be a number or null, got '5%'"),
    ],
)
def test_bad_general_thresholds_name_the_file_and_task(
    tmp_path: Path, entry: str, message: str
) -> None:
    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.general_suite import load_thresholds

    path = tmp_path / "thresholds.yaml"
    path.write_text(f"mmlu: {entry}\n")
    with pytest.raises(UnlearnError) as error:
        load_thresholds(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_the_shipped_general_thresholds_load() -> None:
    from pytest_unlearn.general_suite import load_thresholds

    thresholds = load_thresholds(GENERAL_SUITE / "thresholds.yaml")
    assert {"mmlu", "arc_challenge", "truthfulqa_mc2", "social_iqa", "race"} <= set(thresholds)


def test_a_general_drop_carries_its_standard_error() -> None:
    from pytest_unlearn.general_suite import judge

    thresholds = {"arc": {"min_score": None, "max_drop": 0.05}}
    # 30 documents: scores 0.40 and 0.50 with lm-eval's standard errors of about 0.09.
    noisy = judge(
        "arc",
        {"value": 0.40, "stderr": 0.09, "n": 30},
        {"value": 0.50, "stderr": 0.093, "n": 30},
        thresholds,
    )
    assert not noisy.passed
    assert noisy.drop_stderr == pytest.approx((0.09**2 + 0.093**2) ** 0.5)
    assert "it may be sampling noise; score more documents" in noisy.explain()
    # The full task: the same drop is far beyond its noise, and said plainly.
    clear = judge(
        "arc",
        {"value": 0.40, "stderr": 0.014, "n": 1172},
        {"value": 0.50, "stderr": 0.015, "n": 1172},
        thresholds,
    )
    assert not clear.passed and "noise" not in clear.explain()
    assert (
        judge(
            "arc",
            {"value": 0.5, "stderr": None, "n": 3},
            {"value": 0.5, "stderr": 0.1, "n": 3},
            thresholds,
        ).drop_stderr
        is None
    )
