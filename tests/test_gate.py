"""The release gate file and its verdict, and baseline comparison, as pure functions."""

import json

import pytest

from pytest_unlearn.baselines import compare_with_baseline, save_baseline
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.gate import evaluate_gate
from pytest_unlearn.gate_file import load_gate

SUMMARY = {
    "run": {},
    "rows": [
        {
            "method": "none",
            "domain": "privacy",
            "unlearn_success": 0.0,
            "retention_success": 1.0,
            "unlearns": False,
        },
        {
            "method": "memflex",
            "domain": "privacy",
            "unlearn_success": 0.9,
            "retention_success": 0.7,
            "retention_ppl": 3.0,
        },
    ],
    "general": [
        {"method": "memflex", "domain": "privacy", "task": "arith", "drop": 0.08},
        {"method": "none", "domain": "privacy", "task": "arith", "drop": 0.0, "unlearns": False},
    ],
    "items": [
        {
            "method": "memflex",
            "item": "privacy-unlearn-000",
            "scope": "unlearn",
            "outcome": "failed",
        },
        {
            "method": "memflex",
            "item": "privacy-retention-000",
            "scope": "retention",
            "outcome": "passed",
        },
    ],
}


def write(tmp_path, text):
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return path


def test_gate_names_each_violated_threshold_with_its_value(tmp_path):
    gate = load_gate(
        write(
            tmp_path,
            """
domains:
  privacy:
    unlearn_success: {min: 0.8}
    retention_success: {min: 0.75}
    retention_ppl: {max: 5}
general:
  max_drop: 0.05
""",
        )
    )
    checks = evaluate_gate(gate, SUMMARY)
    failed = [check.describe() for check in checks if not check.passed]
    assert failed == [
        "memflex/privacy retention_success = 0.7 (needs >= 0.75)",
        "memflex/privacy arith drop = 0.08 (needs <= 0.05)",
    ]
    # The vanilla row ('none') is not gated unless the gate names it.
    assert not any(check.what.startswith("none/") for check in checks)


def test_gate_on_a_domain_that_did_not_run_fails(tmp_path):
    gate = load_gate(write(tmp_path, "domains:\n  copyright:\n    unlearn_success: {min: 0.5}\n"))
    [check] = evaluate_gate(gate, SUMMARY)
    assert not check.passed and "no item tests" in check.what


@pytest.mark.parametrize(
    "text, message",
    [
        ("domains:\n  privacy:\n    forget_rate: {min: 1}\n", "unknown metric 'forget_rate'"),
        ("domains:\n  privacy:\n    unlearn_success: {least: 1}\n", "unknown key 'least'"),
        ("domains:\n  privacy:\n    unlearn_success: {min: high}\n", "expected a number"),
        ("thresholds: {}\n", "unknown key 'thresholds'"),
        ("domains: [1, 2]\n", "expected a mapping"),
        ("domains: {privacy: {unlearn_success: {min: 1}}\n", "not valid YAML"),
    ],
)
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
SEEDED_ROW = {
    "method": "memflex",
    "domain": "privacy",
    "retention_success": 0.78,
    "unlearn_ppl": 4.2,
    "intervals": {
        "retention_success": {
            "lower": 0.71,
            "upper": 0.85,
            "confidence": 0.95,
            "seeds": 3,
            "method": "percentile bootstrap",
        },
        "unlearn_ppl": {
            "lower": 3.1,
            "upper": 5.6,
            "confidence": 0.95,
            "seeds": 3,
            "method": "percentile bootstrap",
        },
    },
}


def seeded_checks(tmp_path, text):
    return evaluate_gate(load_gate(write(tmp_path, text)), {"rows": [SEEDED_ROW]})


def test_a_bound_gates_the_end_of_the_interval_and_prints_it(tmp_path):
    lower, upper = seeded_checks(
        tmp_path,
        """
domains:
  privacy:
    retention_success.lower: {min: 0.75}
    unlearn_ppl.upper: {max: 6}
""",
    )
    assert (lower.value, lower.passed) == (0.71, False)
    assert lower.describe() == (
        "memflex/privacy retention_success.lower = 0.71 (mean 0.78, "
        "95% interval [0.71, 0.85], 3 seeds; needs >= 0.75)"
    )
    assert (upper.value, upper.passed) == (5.6, True)


def test_the_mean_is_gated_with_or_without_its_suffix_and_shows_the_interval(tmp_path):
    plain, suffixed = seeded_checks(
        tmp_path,
        """
domains:
  privacy:
    retention_success: {min: 0.75}
    retention_success.mean: {min: 0.75}
""",
    )
    assert plain.value == suffixed.value == 0.78 and plain.passed and suffixed.passed
    assert plain.describe() == (
        "memflex/privacy retention_success = 0.78 (95% interval "
        "[0.71, 0.85], 3 seeds; needs >= 0.75)"
    )


def test_a_bound_without_an_interval_fails_and_says_how_to_get_one(tmp_path):
    [check] = seeded_checks(tmp_path, "domains:\n  privacy:\n    avg_success.lower: {min: 0.5}\n")
    assert not check.passed and check.value is None
    assert "no interval of avg_success" in check.describe()
    assert "--unlearn-seeds" in check.describe()
    # A run without any intervals (one seed, as before) fails the same way, without a crash.
    gate = load_gate(
        write(tmp_path, "domains:\n  privacy:\n    retention_success.lower: {min: 0.5}\n")
    )
    [check] = evaluate_gate(gate, SUMMARY)
    assert not check.passed and "no interval of retention_success" in check.describe()


def test_an_interval_from_stats_is_what_the_gate_reads(tmp_path):
    from pytest_unlearn.stats import interval

    outcomes = {seed: [1.0] * (70 + seed) + [0.0] * (30 - seed) for seed in range(3)}
    computed = interval(outcomes)
    row = {
        "method": "memflex",
        "domain": "privacy",
        "retention_success": computed.mean,
        "intervals": {"retention_success": computed.to_dict()},
    }
    gate = load_gate(
        write(tmp_path, "domains:\n  privacy:\n    retention_success.lower: {min: 0.5}\n")
    )
    [check] = evaluate_gate(gate, {"rows": [row]})
    assert check.passed and check.value == computed.lower < computed.mean
    assert f"[{computed.lower:.4g}, {computed.upper:.4g}], 3 seeds" in check.describe()


@pytest.mark.parametrize(
    "key", ["retention_success.p5", "retention_success.", "unlearn_ppl.lower.x"]
)
def test_an_unknown_suffix_lists_the_valid_ones(tmp_path, key):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, f"domains:\n  privacy:\n    {key}: {{min: 1}}\n"))
    assert "unknown suffix" in str(error.value)
    assert "mean, lower, upper" in str(error.value) and "gate.yaml" in str(error.value)


@pytest.mark.parametrize("text", ["[]\n", "- domains\n"])
def test_a_gate_that_is_a_list_is_an_error(tmp_path, text):
    with pytest.raises(UnlearnError, match="gate.yaml: expected a mapping, got list"):
        load_gate(write(tmp_path, text))


def test_an_unknown_metric_with_a_suffix_is_an_unknown_metric(tmp_path):
    with pytest.raises(UnlearnError, match="unknown metric 'forget_rate'"):
        load_gate(write(tmp_path, "domains:\n  privacy:\n    forget_rate.lower: {min: 1}\n"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# thresholds to come\n",
        "domains: {}\n",
        "general: {}\ncompare: {}\n",
        "methods: [memflex]\n",
    ],
)
def test_a_gate_that_asks_for_no_check_is_an_error(tmp_path, text):
    # Loaded, such a gate would pass every run.
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, text))
    message = str(error.value)
    assert "gate.yaml: the gate asks for no check" in message
    assert "unlearn_success: {min: 0.8}" in message and "max_drop" in message
    assert "max_newly_leaked" in message


@pytest.mark.parametrize(
    "text, message",
    [
        ("domains:\n  privacy: {}\n", "domains.privacy: no thresholds; add one"),
        (
            "domains:\n  privacy:\n    unlearn_success: {}\n",
            "domains.privacy.unlearn_success: no bound; give min, max or both",
        ),
        ("general:\n  max_drop: {}\n", "general.max_drop: an empty mapping checks no task"),
        (
            "methods: []\ndomains:\n  privacy:\n    unlearn_success: {min: 0.8}\n",
            "'methods' must be a non-empty list",
        ),
    ],
)
def test_an_empty_section_is_an_error(tmp_path, text, message):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, text))
    assert message in str(error.value) and "gate.yaml" in str(error.value)


def test_a_baseline_sharing_no_item_with_the_run_fails_a_compare_gate(tmp_path):
    other = json.loads(json.dumps(SUMMARY))
    for item in other["items"]:
        item["item"] = item["item"].replace("privacy", "copyright")  # another -k selection
    save_baseline(tmp_path, "old", other)
    comparison = compare_with_baseline(tmp_path, "old", SUMMARY)
    assert comparison["matched_items"] == 0 and comparison["newly_leaked"] == []
    gate = load_gate(write(tmp_path, "compare: {max_newly_leaked: 0, max_newly_lost: 0}\n"))
    checks = evaluate_gate(gate, {**SUMMARY, "comparison": comparison})
    [failed] = [check for check in checks if not check.passed]
    assert failed.describe().startswith(
        "items matched with baseline 'old' = 0 (the baseline shares no item with this run"
    )
    assert "-k selection" in failed.describe() and "--unlearn-save=NAME" in failed.describe()
    # The same baseline matched: no such check.
    save_baseline(tmp_path, "same", SUMMARY)
    matched = evaluate_gate(
        gate, {**SUMMARY, "comparison": compare_with_baseline(tmp_path, "same", SUMMARY)}
    )
    assert [check.what for check in matched] == ["newly_leaked", "newly_lost"]
    assert all(check.passed for check in matched)


def test_a_gate_file_that_is_not_utf8_is_an_error(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_bytes(b"domains:\n  privacy:\n    unlearn_success: {min: 0.8}  # \xff\xfe\n")
    with pytest.raises(UnlearnError) as error:
        load_gate(path)
    assert "gate.yaml: not UTF-8 text" in str(error.value)
    assert "save it as UTF-8" in str(error.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "cannot read the baseline"),
        (b'{"items": [1]}\xff', "cannot read the baseline"),
        (b"[1, 2]", "expected a JSON object with an 'items' list, got list"),
        (b'{"rows": []}', "got an object without an 'items' list"),
        (b'{"items": {"a": 1}}', "got an object without an 'items' list"),
        (b'{"items": [1]}', "items[0] is not a saved item outcome"),
        (b'{"items": [{"method": "memflex", "item": "x"}]}', "items[0] is not a saved item"),
        (
            b'{"items": [{"method": "memflex", "item": "x", "outcome": "passed", "seed": "0"}]}',
            "items[0] is not a saved item",
        ),
    ],
)
def test_a_corrupt_baseline_is_an_error_that_says_to_save_it_again(tmp_path, content, message):
    save_baseline(tmp_path, "release-1", SUMMARY)
    (tmp_path / "baselines" / "release-1.json").write_bytes(content)
    with pytest.raises(UnlearnError) as error:
        compare_with_baseline(tmp_path, "release-1", SUMMARY)
    assert message in str(error.value)
    assert "--unlearn-compare=release-1" in str(error.value)
    assert "release-1.json" in str(error.value)
    assert "save it again with --unlearn-save=release-1" in str(error.value)


def test_a_float_yaml_reads_as_a_string_is_that_number(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 and 5E+0, without a dot, as strings.
    gate = load_gate(
        write(
            tmp_path,
            """
domains:
  privacy:
    unlearn_success: {min: 5e-1}
    retention_ppl: {max: 5E+0}
general:
  max_drop: {arith: 1e-1}
compare: {max_newly_lost: 1e0}
""",
        )
    )
    privacy = gate["domains"]["privacy"]
    assert privacy["unlearn_success"]["min"] == 0.5 and privacy["retention_ppl"]["max"] == 5.0
    assert gate["general"]["max_drop"]["arith"] == 0.1
    assert gate["compare"]["max_newly_lost"] == 1
    assert [check.describe() for check in evaluate_gate(gate, SUMMARY)] == [
        "memflex/privacy unlearn_success = 0.9 (needs >= 0.5)",
        "memflex/privacy retention_ppl = 3 (needs <= 5)",
        "memflex/privacy arith drop = 0.08 (needs <= 0.1)",
        "max_newly_lost: the gate compares with a baseline, but the run has no --unlearn-compare "
        "= missing (needs <= 1)",
    ]


@pytest.mark.parametrize(
    "value", ["'0.5%'", "1e", "e5", "'0x1'", "nan", ".inf", "'1,5'", "'1e-3 '", "1e-3e1"]
)
def test_a_string_that_is_not_a_plain_float_stays_an_error(tmp_path, value):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, f"domains:\n  privacy:\n    unlearn_success: {{min: {value}}}\n"))
    assert "gate.yaml: domains.privacy.unlearn_success.min: expected a" in str(error.value)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "domains:\n  privacy:\n    unlearn_success: {min: .nan}\n",
            "domains.privacy.unlearn_success.min: expected a finite number, got nan",
        ),
        (
            "domains:\n  privacy:\n    retention_ppl: {max: .inf}\n",
            "domains.privacy.retention_ppl.max: expected a finite number, got inf",
        ),
        (
            "domains:\n  privacy:\n    unlearn_success: {min: 80}\n",
            "domains.privacy.unlearn_success.min: 80 is outside [0, 1] (metrics are fractions: "
            "0.8 = 80%); give a fraction between 0 and 1",
        ),
        (
            "domains:\n  privacy:\n    unlearn_success: {max: 101}\n",
            "domains.privacy.unlearn_success.max: 101 is outside [0, 1]; give a fraction",
        ),
        (
            "domains:\n  privacy:\n    retention_success.lower: {min: -0.1}\n",
            "retention_success.lower.min: -0.1 is outside [0, 1]; give a fraction",
        ),
        (
            "domains:\n  privacy:\n    unlearn_success: {min: 0.9, max: 0.5}\n",
            "domains.privacy.unlearn_success: min 0.9 is greater than max 0.5 for unlearn_success",
        ),
        (
            "domains:\n  privacy:\n    unlearn_success: {max: 0.5}\n"
            "    unlearn_success.mean: {min: 0.9}\n",
            "domains.privacy.unlearn_success.mean: min 0.9 is greater than max 0.5",
        ),
        (
            "general:\n  max_drop: 5\n",
            "general.max_drop: 5 is outside [0, 1] (metrics are fractions: 0.8 = 80%)",
        ),
        ("general:\n  max_drop: {arith: 1.5}\n", "general.max_drop.arith: 1.5 is outside [0, 1]"),
        ("general:\n  max_drop: {arith: -0.01}\n", "general.max_drop.arith: -0.01 is outside"),
        (
            "compare: {max_newly_lost: -1}\n",
            "compare.max_newly_lost: expected a whole number of items, 0 or more, got -1",
        ),
        ("compare: {max_newly_leaked: 0.5}\n", "compare.max_newly_leaked: expected a whole number"),
    ],
)
def test_out_of_range_thresholds_are_errors(tmp_path, text, message):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, text))
    assert message in str(error.value) and "gate.yaml" in str(error.value)


def test_in_range_thresholds_load(tmp_path):
    # Perplexities are not fractions; the ends of [0, 1] and min == max are allowed.
    gate = load_gate(
        write(
            tmp_path,
            """
domains:
  privacy:
    unlearn_ppl.lower: {min: 150}
    unlearn_success: {min: 0, max: 1}
    retention_success: {min: 0.7, max: 0.7}
general:
  max_drop: 0
compare: {max_newly_lost: 3}
""",
        )
    )
    assert gate["domains"]["privacy"]["unlearn_ppl.lower"] == {"min": 150}


def test_an_unknown_domain_lists_the_domains(tmp_path):
    with pytest.raises(UnlearnError) as error:
        load_gate(write(tmp_path, "domains:\n  privcy:\n    unlearn_success: {min: 0.8}\n"))
    assert str(error.value) == (
        f"{tmp_path / 'gate.yaml'}: domains: unknown domain 'privcy'; "
        "the domains are: privacy, copyright"
    )


def test_a_listed_method_that_ran_no_test_fails_the_gate(tmp_path):
    gate = load_gate(
        write(
            tmp_path,
            """
methods: [memflex, memflx]
domains:
  privacy:
    unlearn_success: {min: 0.8}
general:
  max_drop: 0.1
""",
        )
    )
    described = [(check.describe(), check.passed) for check in evaluate_gate(gate, SUMMARY)]
    hint = "check its name against --unlearn-method, or remove it from methods"
    assert described == [
        ("memflex/privacy unlearn_success = 0.9 (needs >= 0.8)", True),
        (
            f"method 'memflx' listed in the gate's methods ran no item test = missing ({hint}; "
            "needs >= 1)",
            False,
        ),
        ("memflex/privacy arith drop = 0.08 (needs <= 0.1)", True),
        (
            f"method 'memflx' listed in the gate's methods ran no general-task test = missing "
            f"({hint}; needs >= 1)",
            False,
        ),
    ]


def test_a_general_task_the_gate_names_that_ran_no_test_fails_the_gate(tmp_path):
    gate = load_gate(write(tmp_path, "general:\n  max_drop: {arith: 0.1, mmlu: 0.03}\n"))
    checks = evaluate_gate(gate, SUMMARY)
    assert [(check.what, check.passed) for check in checks] == [
        ("memflex/privacy arith drop", True),
        ("general task 'mmlu' named in the gate ran no test", False),
    ]
    assert "run suites/general with it" in checks[1].describe()
    assert "the tasks that ran: arith" in checks[1].describe()


def test_a_max_drop_without_any_general_test_fails_the_gate(tmp_path):
    gate = load_gate(write(tmp_path, "general:\n  max_drop: 0.05\n"))
    for summary in (
        {**SUMMARY, "general": []},
        {"rows": SUMMARY["rows"]},
        # Only the vanilla model's tasks ran, and the gate skips its row.
        {**SUMMARY, "general": [SUMMARY["general"][1]]},
    ):
        [check] = evaluate_gate(gate, summary)
        assert not check.passed
        assert check.describe() == (
            "general.max_drop: no general-task test ran = missing (run "
            "suites/general too, or remove general.max_drop from the "
            "gate; needs <= 0.05)"
        )
