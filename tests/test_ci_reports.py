"""What CI systems and people read of a run (issue 21): the baseline comparison of an
identical rerun, the gate as a JUnit test case read by a real JUnit consumer (junitparser),
findings recorded as expected failures, the JSON report against its published schema, the
GitHub step summary, pytest-html's report and the terminal summary.

One pair of runs serves most tests: both domains, two methods, two seeds, two prompt
variants, with the attack and leak tests, on three records per split (the injection then
takes about 45 s per domain). The first saves a baseline; the second, identical, compares
with it under a gate and with --unlearn-findings=xfail.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT, SUITES_CONFTEST, ini_text, run_inner_pytest, write_data_folder
from pytest_unlearn.gate_file import METRICS as GATED

junitparser = pytest.importorskip("junitparser")
jsonschema = pytest.importorskip("jsonschema")

METRICS = (*GATED, "unlearn_items", "retention_items")
GATE = """\
domains:
  privacy:
    retention_success: {min: 0.0}
  copyright:
    retention_success: {min: 0.0}
compare:
  max_newly_leaked: 0
  max_newly_lost: 0
"""


class Run:
    """One inner run: its folder, exit code, output, JSON report and JUnit file."""

    def __init__(self, folder: Path, name: str, args: list[str], env: dict[str, str]) -> None:
        self.folder = folder
        self.json_path = folder / f"{name}.json"
        self.xml_path = folder / f"{name}.xml"
        completed = run_inner_pytest(
            folder,
            *args,
            f"--unlearn-json={self.json_path}",
            f"--junitxml={self.xml_path}",
            env=env,
        )
        self.returncode = completed.returncode
        self.output = completed.stdout + completed.stderr
        assert self.json_path.is_file(), self.output[-6000:]
        self.report: dict[str, Any] = json.loads(self.json_path.read_text())


def _suites_folder(folder: Path) -> Path:
    """The real privacy and copyright suites, with the suites' conftest and a tiny ini."""
    for domain in ("privacy", "copyright"):
        # The three item-test kinds these reports are about; the membership and quantized
        # suites (docs/privacy.md) have tests of their own.
        shutil.copytree(
            REPO_ROOT / "suites" / domain,
            folder / domain,
            ignore=shutil.ignore_patterns("test_membership.py", "test_quantized.py"),
        )
    (folder / "conftest.py").write_text(SUITES_CONFTEST.read_text())
    (folder / "pytest.ini").write_text(ini_text())
    return folder


@pytest.fixture(scope="session")
def run_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    folder = _suites_folder(tmp_path_factory.mktemp("ci-runs"))
    data = folder / "data"
    for domain in ("privacy", "copyright"):
        write_data_folder(data / domain, records_per_split=3, domain=domain)
    (folder / "gate.yaml").write_text(GATE)
    common = [
        "--unlearn-method=none,gradient_ascent",
        "--unlearn-seeds=2",
        "--unlearn-prompts=plain,direct",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={folder / 'cache'}",
        "--unlearn-max-new-tokens=8",
        "--unlearn-leak-samples=1",
    ]
    first = Run(folder, "first", [*common, "--unlearn-save=b1"], {})
    summary_file = folder / "step-summary.md"
    second = Run(
        folder,
        "second",
        [
            *common,
            "--unlearn-compare=b1",
            f"--unlearn-gate={folder / 'gate.yaml'}",
            "--unlearn-findings=xfail",
            f"--unlearn-plots={folder / 'plots'}",
            f"--html={folder / 'report.html'}",
            "--self-contained-html",
        ],
        {"GITHUB_STEP_SUMMARY": str(summary_file)},
    )
    return first, second


def _identity(item: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(item[key] for key in ("method", "domain", "seed", "prompt", "test", "item"))


# --- 1. the baseline comparison --------------------------------------------------------------


def test_identical_rerun_newly_leaks_and_loses_nothing(run_pair: tuple[Run, Run]) -> None:
    first, second = run_pair
    items = first.report["items"]
    # Every combination ran: both domains, both seeds, both prompts, the three test kinds.
    assert {item["domain"] for item in items} == {"privacy", "copyright"}
    assert {item["seed"] for item in items} == {0, 1}
    assert {item["prompt"] for item in items} == {"plain", "direct"}
    assert {item["test"] for item in items} == {"recall", "attack", "leak"}
    assert len({_identity(item) for item in items}) == len(items)  # each test once
    # The comparison can go wrong: an item's tests of different kinds (or prompts, seeds)
    # had different outcomes, so a comparison that mixed them up would report changes.
    outcomes: dict[tuple[Any, ...], set[str]] = {}
    for item in items:
        key = (item["method"], item["domain"], item["item"])
        outcomes.setdefault(key, set()).add(item["outcome"])
    assert any(len(seen) > 1 for seen in outcomes.values()), "every test of each item agreed"
    comparison = second.report["comparison"]
    assert comparison == {
        "baseline": "b1",
        "newly_leaked": [],
        "newly_lost": [],
        "matched_items": len(items),
    }, second.output[-4000:]
    gate = second.report["gate"]
    assert gate["passed"], gate
    assert {check["metric"] for check in gate["checks"] if check["kind"] == "compare"} == {
        "newly_leaked",
        "newly_lost",
    }
    assert second.returncode == 0, second.output[-4000:]


def test_comparison_keys_each_test_by_all_that_identifies_it(tmp_path: Path) -> None:
    """One item's recall, attack and leak tests, with different outcomes: an identical rerun
    changes nothing; one test that newly fails is listed once, with its kind."""
    from pytest_unlearn.baselines import compare_with_baseline, save_baseline

    def item(test: str, outcome: str, seed: int = 0, prompt: str = "plain") -> dict[str, Any]:
        return {
            "method": "ga",
            "domain": "privacy",
            "scope": "unlearn",
            "item": "privacy-unlearn-000",
            "seed": seed,
            "prompt": prompt,
            "test": test,
            "outcome": outcome,
        }

    items = [
        item("recall", "passed"),
        item("recall", "failed", prompt="direct"),
        item("attack", "failed"),
        item("leak", "passed"),
        item("recall", "failed", seed=1),
    ]
    summary = {"run": {}, "rows": [], "items": items}
    save_baseline(tmp_path, "b", summary)
    assert compare_with_baseline(tmp_path, "b", summary) == {
        "baseline": "b",
        "newly_leaked": [],
        "newly_lost": [],
        "matched_items": 5,
    }
    changed = [dict(each) for each in items]
    changed[3]["outcome"] = "failed"
    result = compare_with_baseline(tmp_path, "b", {**summary, "items": changed})
    assert result["newly_leaked"] == ["ga:privacy-unlearn-000 (leak, seed 0)"]


# --- 5. CI test views --------------------------------------------------------------------------


def _cases(path: Path) -> list[Any]:
    return [case for suite in junitparser.JUnitXml.fromfile(str(path)) for case in suite]


def test_findings_as_expected_failures_keep_the_metrics(run_pair: tuple[Run, Run]) -> None:
    first, second = run_pair
    for before, after in zip(first.report["rows"], second.report["rows"], strict=True):
        assert {key: before.get(key) for key in METRICS} == {key: after.get(key) for key in METRICS}
    failed = [item for item in first.report["items"] if item["outcome"] == "failed"]
    assert failed
    # In the first run each finding is a failed JUnit test case ...
    first_cases = _cases(first.xml_path)
    failures = [c for c in first_cases if any(isinstance(r, junitparser.Failure) for r in c.result)]
    assert len(failures) == len(failed)
    # ... in the second an expected failure (skipped, with the finding as its message), and the
    # only failing case could be the gate's.
    cases = _cases(second.xml_path)
    skipped = [c for c in cases if any(isinstance(r, junitparser.Skipped) for r in c.result)]
    documented = [i for i in second.report["items"] if i["outcome"] == "skipped"]
    assert len(skipped) == len(failed) + len(documented)
    assert not [
        c for c in cases if c.name != "release_gate" and not c.is_passed and not c.is_skipped
    ]
    finding = next(c for c in skipped if "gradient_ascent" in c.name and "recall" not in c.name)
    assert any("the model" in (r.message or "") for r in finding.result)


def test_the_gate_is_a_junit_test_case(run_pair: tuple[Run, Run]) -> None:
    _, second = run_pair
    [gate] = [case for case in _cases(second.xml_path) if case.name == "release_gate"]
    assert gate.classname == "pytest_unlearn"
    assert gate.is_passed
    checks = second.report["gate"]["checks"]
    [element] = [
        case
        for case in ElementTree.parse(second.xml_path).iter("testcase")
        if case.get("name") == "release_gate"
    ]
    properties = {p.get("name"): p.get("value") for p in element.iter("property")}
    assert [properties[f"check_{index}"] for index in range(len(checks))] == [
        f"ok: {check['check']}" for check in checks
    ]
    assert first_property(second.xml_path, "unlearn.gate.verdict") == "passed"


def test_a_failing_gate_is_a_failing_junit_test_case(
    run_pair: tuple[Run, Run], tmp_path: Path
) -> None:
    """A third run, from the cache (every score is there, no model loads)."""
    _, second = run_pair
    gate = tmp_path / "strict.yaml"
    # The vanilla model recalls what it learned: its Unlearn Success is far below 1.
    gate.write_text("methods: [none]\ndomains:\n  privacy:\n    unlearn_success: {min: 1.0}\n")
    args = json.loads(json.dumps(second.report["command"]["args"]))
    args = [
        arg
        for arg in args
        if not arg.startswith(("--unlearn-gate", "--unlearn-json", "--junitxml", "--html"))
        and arg not in ("--self-contained-html", "--unlearn-compare=b1")
    ]
    strict = Run(second.folder, "strict", [*args, f"--unlearn-gate={gate}"], {})
    assert strict.returncode == 1, strict.output[-3000:]
    [case] = [case for case in _cases(strict.xml_path) if case.name == "release_gate"]
    [failure] = case.result
    assert isinstance(failure, junitparser.Failure)
    failing = [check for check in strict.report["gate"]["checks"] if not check["passed"]]
    assert failing and all(check["metric"] == "unlearn_success" for check in failing)
    assert f"{len(failing)} of " in (failure.message or "")
    assert failing[0]["check"] in (failure.message or "")


def first_property(path: Path, name: str) -> str | None:
    for element in ElementTree.parse(path).iter("property"):
        if element.get("name") == name:
            return element.get("value")
    return None


def test_github_step_summary(run_pair: tuple[Run, Run]) -> None:
    first, second = run_pair
    text = (second.folder / "step-summary.md").read_text()
    assert text.startswith("## pytest-unlearn")
    rows = second.report["rows"]
    for row in rows:
        assert f"{row['method']:<15}  {row['domain']:<9}" in text or row["method"] in text
    assert "Release gate" in text and "passed" in text
    assert "- Newly leaked: 0" in text and "- Newly lost: 0" in text
    # The first run had no GITHUB_STEP_SUMMARY: nothing was written for it.
    assert text.count("## pytest-unlearn") == 1


# --- 6. the JSON report ------------------------------------------------------------------------


def test_json_reports_validate_against_the_published_schema(run_pair: tuple[Run, Run]) -> None:
    from pytest_unlearn.json_report import SCHEMA_VERSION, load_schema

    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for run in run_pair:
        errors = sorted(validator.iter_errors(run.report), key=lambda error: error.json_path)
        assert not errors, [f"{error.json_path}: {error.message}" for error in errors[:5]]
        assert run.report["schema_version"] == SCHEMA_VERSION
        assert run.report["versions"]["torch"] and run.report["versions"]["transformers"]
        assert "--unlearn-seeds=2" in run.report["command"]["args"]
        assert run.report["settings"]["seeds"] == 2
    report = run_pair[1].report
    data = {
        (domain, split): json.loads(
            (run_pair[0].folder / "data" / domain / f"{split}.json").read_text()
        )
        for domain in ("privacy", "copyright")
        for split in ("unlearn_val", "retention_val")
    }
    for item in report["items"]:
        scope, index = item["item"].split("-")[1], int(item["item"].split("-")[2])
        record = data[(item["domain"], f"{scope}_val")][index]
        assert (item["question"], item["answer"]) == (record["text"], record["labels"])
    leaks = [item for item in report["items"] if item["test"] == "leak"]
    assert leaks and all(len(item["generations"]) == 2 for item in leaks)  # greedy + 1 sample
    for item in leaks:
        assert (item["outcome"] == "failed") == bool(item["leaked"])
        assert all(any(s.lower() in g.lower() for g in item["generations"]) for s in item["leaked"])
    recall = [item for item in report["items"] if item["test"] == "recall"]
    assert all(len(item["generations"]) == 1 for item in recall)
    [check] = [c for c in report["gate"]["checks"] if c["metric"] == "newly_leaked"]
    assert (check["kind"], check["value"], check["bound"], check["limit"]) == (
        "compare",
        0.0,
        "max",
        0.0,
    )


def test_schema_rejects_a_report_missing_its_versions() -> None:
    """The schema is a real check: it refuses a report without what it requires."""
    from pytest_unlearn.json_report import load_schema

    validator = jsonschema.Draft202012Validator(load_schema())
    assert list(validator.iter_errors({"schema_version": 1}))
    bad_check = {"check": "x", "passed": True, "kind": "metric", "subject": "a", "metric": "m"}
    errors = list(
        validator.iter_errors({"gate": {"passed": True, "file": "g", "checks": [bad_check]}})
    )
    assert any("'value' is a required property" in error.message for error in errors)


# --- 7. pytest-html -------------------------------------------------------------------------------


def test_pytest_html_report_shows_the_summary_gate_and_plots(run_pair: tuple[Run, Run]) -> None:
    pytest.importorskip("pytest_html")
    _, second = run_pair
    text = (second.folder / "report.html").read_text()
    assert "<h2>pytest-unlearn</h2>" in text
    assert "Release gate" in text
    assert "data:image/png;base64," in text  # the plots, embedded
    assert "release_gate" in text  # the gate's own row in the results table
    assert "Unlearn  Retention" in text


# --- 8. the terminal ------------------------------------------------------------------------------


def _summary_lines(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "unlearning summary" in line)
    return lines[start:]


def test_terminal_summary_fits_120_columns_and_comes_last(run_pair: tuple[Run, Run]) -> None:
    first, second = run_pair
    for run in run_pair:
        summary = _summary_lines(run.output)
        assert all(len(line) <= 120 for line in summary), max(summary, key=len)
        # After the summary, only pytest's final line.
        assert "passed" in summary[-1] and " in " in summary[-1]
    # The findings are counted per method, not listed as FAILED lines (pytest's final line
    # still counts them).
    assert "FAILED " not in first.output
    assert "findings of gradient_ascent (privacy):" in first.output
    assert " failed" in first.output.splitlines()[-1]


def test_failures_are_listed_on_request(run_pair: tuple[Run, Run], tmp_path: Path) -> None:
    first, _ = run_pair
    args = [
        arg
        for arg in first.report["command"]["args"]
        if not arg.startswith(("--unlearn-json", "--junitxml", "--unlearn-save"))
    ]
    listed = Run(first.folder, "listed", [*args, "-rf"], {})
    failed = [item for item in first.report["items"] if item["outcome"] == "failed"]
    assert listed.output.count("FAILED ") == len(failed)
    quiet = Run(first.folder, "quiet", [*args, "-q"], {})
    summary = _summary_lines(quiet.output)
    assert not any(
        line.startswith(("findings of", "95% intervals", "JSON report")) for line in summary
    )
    assert any(line.startswith("gradient_ascent  privacy") for line in summary)
