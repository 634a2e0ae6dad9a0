"""The release gate file and its verdict, and baseline comparison, as pure functions."""

import json

import pytest

from pytest_unlearn.baselines import compare_with_baseline, save_baseline
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.gate import evaluate_gate, load_gate

SUMMARY = {
    "run": {},
    "rows": [
        {"method": "none", "domain": "privacy", "unlearn_success": 0.0,
         "retention_success": 1.0},
        {"method": "memflex", "domain": "privacy", "unlearn_success": 0.9,
         "retention_success": 0.7, "retention_ppl": 3.0},
    ],
    "general": [{"method": "memflex", "domain": "privacy", "task": "arith", "drop": 0.08},
                {"method": "none", "domain": "privacy", "task": "arith", "drop": 0.0}],
    "items": [
        {"method": "memflex", "item": "privacy-unlearn-000", "scope": "unlearn",
         "outcome": "failed"},
        {"method": "memflex", "item": "privacy-retention-000", "scope": "retention",
         "outcome": "passed"},
    ],
}


def write(tmp_path, text):
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return path


def test_gate_names_each_violated_threshold_with_its_value(tmp_path):
    gate = load_gate(write(tmp_path, """
domains:
  privacy:
    unlearn_success: {min: 0.8}
    retention_success: {min: 0.75}
    retention_ppl: {max: 5}
general:
  max_drop: 0.05
"""))
    checks = evaluate_gate(gate, SUMMARY)
    failed = [check.describe() for check in checks if not check.passed]
    assert failed == ["memflex/privacy retention_success = 0.7 (needs >= 0.75)",
                      "memflex/privacy arith drop = 0.08 (needs <= 0.05)"]
    # The vanilla row ('none') is not gated unless the gate names it.
    assert not any(check.what.startswith("none/") for check in checks)


def test_gate_on_a_domain_that_did_not_run_fails(tmp_path):
    gate = load_gate(write(tmp_path, "domains:\n  copyright:\n    unlearn_success: {min: 0.5}\n"))
    [check] = evaluate_gate(gate, SUMMARY)
    assert not check.passed and "no item tests" in check.what


@pytest.mark.parametrize("text, message", [
    ("domains:\n  privacy:\n    forget_rate: {min: 1}\n", "unknown metric 'forget_rate'"),
    ("domains:\n  privacy:\n    unlearn_success: {least: 1}\n", "unknown key 'least'"),
    ("domains:\n  privacy:\n    unlearn_success: {min: high}\n", "expected a number"),
    ("thresholds: {}\n", "unknown key 'thresholds'"),
    ("domains: [1, 2]\n", "expected a mapping"),
    ("domains: {privacy: {unlearn_success: {min: 1}}\n", "not valid YAML"),
])
def test_bad_gate_files(tmp_path, text, message):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, text))
    assert message in str(error.value) and "gate.yaml" in str(error.value)


def test_compare_lists_newly_leaked_and_newly_lost(tmp_path):
    baseline = json.loads(json.dumps(SUMMARY))
    baseline["items"][0]["outcome"] = "passed"  # was forgotten, now recalled again
    save_baseline(tmp_path, "release-1", baseline)
    now = json.loads(json.dumps(SUMMARY))
    now["items"][1]["outcome"] = "failed"  # was kept, now lost
    comparison = compare_with_baseline(tmp_path, "release-1", now)
    assert comparison["newly_leaked"] == ["memflex:privacy-unlearn-000"]
    assert comparison["newly_lost"] == ["memflex:privacy-retention-000"]
    gate = load_gate(write(tmp_path, "compare: {max_newly_leaked: 0, max_newly_lost: 1}\n"))
    checks = evaluate_gate(gate, {**now, "comparison": comparison})
    assert [check.passed for check in checks] == [False, True]


def test_compare_with_a_missing_baseline_lists_the_saved_ones(tmp_path):
    save_baseline(tmp_path, "a", SUMMARY)
    with pytest.raises(UnlearnError, match="saved baselines: a"):
        compare_with_baseline(tmp_path, "b", SUMMARY)


# A row as the run writes it with --unlearn-seeds: the mean at row[metric], and the
# interval of each metric it computed one for under row["intervals"].
SEEDED_ROW = {"method": "memflex", "domain": "privacy", "retention_success": 0.78,
              "unlearn_ppl": 4.2,
              "intervals": {"retention_success": {"lower": 0.71, "upper": 0.85,
                                                  "confidence": 0.95, "seeds": 3,
                                                  "method": "percentile bootstrap"},
                            "unlearn_ppl": {"lower": 3.1, "upper": 5.6, "confidence": 0.95,
                                            "seeds": 3, "method": "percentile bootstrap"}}}


def seeded_checks(tmp_path, text):
    return evaluate_gate(load_gate(write(tmp_path, text)), {"rows": [SEEDED_ROW]})


def test_a_bound_gates_the_end_of_the_interval_and_prints_it(tmp_path):
    lower, upper = seeded_checks(tmp_path, """
domains:
  privacy:
    retention_success.lower: {min: 0.75}
    unlearn_ppl.upper: {max: 6}
""")
    assert (lower.value, lower.passed) == (0.71, False)
    assert lower.describe() == ("memflex/privacy retention_success.lower = 0.71 (mean 0.78, "
                                "95% interval [0.71, 0.85], 3 seeds; needs >= 0.75)")
    assert (upper.value, upper.passed) == (5.6, True)


def test_the_mean_is_gated_with_or_without_its_suffix_and_shows_the_interval(tmp_path):
    plain, suffixed = seeded_checks(tmp_path, """
domains:
  privacy:
    retention_success: {min: 0.75}
    retention_success.mean: {min: 0.75}
""")
    assert plain.value == suffixed.value == 0.78 and plain.passed and suffixed.passed
    assert plain.describe() == ("memflex/privacy retention_success = 0.78 (95% interval "
                                "[0.71, 0.85], 3 seeds; needs >= 0.75)")


def test_a_bound_without_an_interval_fails_and_says_how_to_get_one(tmp_path):
    [check] = seeded_checks(tmp_path, "domains:\n  privacy:\n    avg_success.lower: {min: 0.5}\n")
    assert not check.passed and check.value is None
    assert "no interval of avg_success" in check.describe()
    assert "--unlearn-seeds" in check.describe()
    # A run without any intervals (one seed, as before) fails the same way, without a crash.
    gate = load_gate(write(tmp_path, "domains:\n  privacy:\n"
                                     "    retention_success.lower: {min: 0.5}\n"))
    [check] = evaluate_gate(gate, SUMMARY)
    assert not check.passed and "no interval of retention_success" in check.describe()


def test_an_interval_from_stats_is_what_the_gate_reads(tmp_path):
    from pytest_unlearn.stats import interval

    outcomes = {seed: [1.0] * (70 + seed) + [0.0] * (30 - seed) for seed in range(3)}
    computed = interval(outcomes)
    row = {"method": "memflex", "domain": "privacy", "retention_success": computed.mean,
           "intervals": {"retention_success": computed.to_dict()}}
    gate = load_gate(write(tmp_path, "domains:\n  privacy:\n"
                                     "    retention_success.lower: {min: 0.5}\n"))
    [check] = evaluate_gate(gate, {"rows": [row]})
    assert check.passed and check.value == computed.lower < computed.mean
    assert f"[{computed.lower:.4g}, {computed.upper:.4g}], 3 seeds" in check.describe()


@pytest.mark.parametrize("key", ["retention_success.p5", "retention_success.",
                                 "unlearn_ppl.lower.x"])
def test_an_unknown_suffix_lists_the_valid_ones(tmp_path, key):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, f"domains:\n  privacy:\n    {key}: {{min: 1}}\n"))
    assert "unknown suffix" in str(error.value)
    assert "mean, lower, upper" in str(error.value) and "gate.yaml" in str(error.value)


def test_an_unknown_metric_with_a_suffix_is_an_unknown_metric(tmp_path):
    with pytest.raises(UnlearnError, match="unknown metric 'forget_rate'"):
        load_gate(write(tmp_path, "domains:\n  privacy:\n    forget_rate.lower: {min: 1}\n"))
