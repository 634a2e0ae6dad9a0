"""Black-box tests of the pytest-unlearn plugin, driven through ``pytester``.

Runs that load a model use ``runpytest_subprocess`` and the session's shared model cache
(see conftest.py), so the tiny model's knowledge injection happens once. Option and
collection tests run in-process: they never load a model.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from conftest import suites_conftest_with

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "transformers", "peft", "lm_eval", "datasets")
REAL_PRIVACY_DATA = REPO_ROOT.parent / "shared" / "knowundo" / "privacy"
ITEM_ID = re.compile(
    r"::(test_forgets|test_retains)\[([A-Za-z0-9_]+)-privacy-"
    r"(unlearn|retention)-(\d{3})\]$"
)


# --- helpers -------------------------------------------------------------------------------


def text_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def collected_ids(result: pytest.RunResult) -> list[str]:
    """Node ids listed by ``--collect-only -q``."""
    return [line.strip() for line in result.outlines if "::test_" in line]


def read_json(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"no JSON report at {path}"
    return json.loads(path.read_text())


def row_of(summary: dict[str, Any], method: str, domain: str = "privacy") -> dict[str, Any]:
    rows = [row for row in summary["rows"] if row["method"] == method and row["domain"] == domain]
    assert len(rows) == 1, summary["rows"]
    return rows[0]


def item_outcomes(summary: dict[str, Any], method: str) -> list[tuple[str, str, float | None]]:
    return sorted(
        (item["item"], item["outcome"], item["token_accuracy"])
        for item in summary["items"]
        if item["method"] == method
    )


def cache_snapshot(cache: Path) -> tuple[set[str], dict[str, float]]:
    """Files under the cache (without locks/) and the "created" time of every manifest."""
    files = {
        str(path.relative_to(cache))
        for path in cache.rglob("*")
        if path.is_file() and path.relative_to(cache).parts[0] != "locks"
    }
    created = {
        str(path.relative_to(cache)): json.loads(path.read_text())["created"]
        for path in cache.rglob("manifest.json")
    }
    return files, created


# --- a. help ---------------------------------------------------------------------------------


def test_help_shows_the_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    text = "\n".join(result.outlines)
    assert "LLM unlearning (KnowUnDo):" in text
    group = text.split("LLM unlearning (KnowUnDo):", 1)[1].split("\n\n", 1)[0]
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", group))
    for flag in (
        "--unlearn-method",
        "--model",
        "--unlearn-model",
        "--unlearn-data",
        "--unlearn-cache-dir",
        "--unlearn-device",
        "--unlearn-dtype",
        "--unlearn-seed",
        "--unlearn-criterion",
        "--unlearn-inject",
        "--unlearn-json",
    ):
        assert flag in flags, f"{flag} is not in the help group:\n{group}"
    # The ini keys are documented too.
    for key in ("unlearn_method", "unlearn_model", "unlearn_data", "unlearn_cache_dir"):
        assert re.search(rf"^\s+{key} \(string\):", text, re.MULTILINE), key


# --- b. import-light entry module, entry point ----------------------------------------------


def test_entry_module_is_import_light() -> None:
    code = (
        "import json, sys; import pytest_unlearn.plugin; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == []


def test_plugin_is_registered_as_pytest11_entry_point() -> None:
    plugins = {ep.name: ep for ep in entry_points(group="pytest11")}
    assert "unlearn" in plugins, sorted(plugins)
    assert plugins["unlearn"].value == "pytest_unlearn.plugin"
    methods = {ep.name for ep in entry_points(group="pytest_unlearn.methods")}
    assert {"none", "gradient_ascent"} <= methods


def test_plain_pytest_run_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    """The plugin is loaded by every pytest run; a run without unlearning tests stays light."""
    pytester.makepyfile(
        test_plain=f"""
        import sys

        def test_plain():
            heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]
            assert heavy == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_project_with_its_own_model_option_runs_unharmed(pytester: pytest.Pytester) -> None:
    """Installed in an environment, the plugin must not break another project's run: many
    define ``--model`` in their conftest (the plugin's own option is --unlearn-model; the
    suites add --model in theirs). Nor does it print anything in a run without its tests."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--model", default="resnet")

        @pytest.fixture
        def model(request):
            return request.config.getoption("model")
        """
    )
    pytester.makepyfile(test_theirs="def test_model(model):\n    assert model == 'bert'\n")
    result = pytester.runpytest_subprocess("--model=bert", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    text = text_of(result)
    assert not [line for line in result.outlines if line.startswith(("unlearn", "[unlearn]"))]
    assert "unlearning summary" not in text and "ArgumentError" not in text


# --- c. usage errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (
            "--unlearn-method=gradient_asent",
            [
                r"unknown unlearning method 'gradient_asent'",
                r"did you mean 'gradient_ascent'",
                r"Available: .*\bnone\b",
            ],
        ),
        ("--model=qwen-7b", [r"unknown model 'qwen-7b'", r"qwen1\.5-7b", r"llama2-7b"]),
        ("--unlearn-model=qwen-7b", [r"unknown model 'qwen-7b'", r"qwen1\.5-7b", r"llama2-7b"]),
        (
            "--unlearn-data=nosuchdir",
            [r"unknown dataset 'nosuchdir'", r"'builtin'", r"zjunlp/KnowUnDo"],
        ),
        (
            "--unlearn-criterion=token-share>=2",
            [r"token-share>=2", r"'whole-answer'", r"token-share>=T"],
        ),
        ("--unlearn-criterion=exact", [r"'exact' was renamed 'whole-answer'"]),
        ("--unlearn-device=gpu", [r"--unlearn-device='gpu'", r"auto, cpu, cuda, mps"]),
        ("--unlearn-dtype=float8", [r"--unlearn-dtype='float8'", r"float32"]),
        ("--unlearn-seed=abc", [r"--unlearn-seed='abc' is not an integer"]),
        ("--unlearn-method=", [r"--unlearn-method is empty"]),
    ],
)
def test_usage_errors(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, flag: str, expected: list[str]
) -> None:
    result = pytester.runpytest(flag, cache_arg, "--collect-only")
    text = text_of(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text
    for pattern in expected:
        assert re.search(pattern, text), f"{pattern!r} not in:\n{text}"


# --- d. the paper's command line, model aliases, offline collection --------------------------


HEAVY_PROBE_CONFTEST = f"""
import json, sys

def pytest_sessionfinish(session):
    heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]
    (session.config.rootpath / "heavy.json").write_text(json.dumps(heavy))
"""


def test_paper_model_collects_offline_without_loading(
    suite_dir: Path, pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(suites_conftest_with(HEAVY_PROBE_CONFTEST))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    cache = tmp_path / "untouched-cache"
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none",
        "--model=qwen1.5-7b",
        f"--unlearn-cache-dir={cache}",
        "--collect-only",
    )
    text = text_of(result)
    assert result.ret == pytest.ExitCode.OK, text
    assert "model=qwen1.5-7b (Qwen/Qwen1.5-7B-Chat)" in text
    assert re.search(r"collected 56 items", text), text
    # Collection loaded no model: no ML library imported, nothing written to the cache.
    assert json.loads((pytester.path / "heavy.json").read_text()) == []
    assert not cache.exists() or not any(cache.rglob("*"))


def test_paper_command_line_is_accepted_by_the_parser(
    suite_dir: Path, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """`pytest suites/privacy --unlearn-method=memflex --model=qwen1.5-7b`: the flags parse,
    and MemFlex, registered through the entry point, collects every item (no model loads)."""
    assert "memflex" in {ep.name for ep in entry_points(group="pytest_unlearn.methods")}
    result = pytester.runpytest(
        "--unlearn-method=memflex",
        "--model=qwen1.5-7b",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--collect-only",
        "-q",
    )
    text = text_of(result)
    assert result.ret == pytest.ExitCode.OK, text
    assert len(collected_ids(result)) == 56
    assert "Traceback" not in text


def test_unlearn_model_is_an_alias_of_model(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    result = pytester.runpytest("--unlearn-model=llama2-7b", cache_arg, "--collect-only")
    text = text_of(result)
    assert result.ret == pytest.ExitCode.OK, text
    assert "model=llama2-7b (meta-llama/Llama-2-7b-chat-hf)" in text


# --- e. report header ------------------------------------------------------------------------


def test_report_header_shows_resolved_settings(
    suite_dir: Path, pytester: pytest.Pytester, unlearn_cache_dir: Path, cache_arg: str
) -> None:
    result = pytester.runpytest(
        "--unlearn-method=none, gradient_ascent",
        cache_arg,
        "--unlearn-criterion=token-share>=0.9",
        "--unlearn-seed=7",
        "--unlearn-device=cpu",
        "--collect-only",
    )
    text = text_of(result)
    assert result.ret == pytest.ExitCode.OK, text
    assert "unlearn: methods=none,gradient_ascent model=tiny data=builtin" in text
    assert (
        "unlearn: criterion=token-share>=0.9 inject=auto seed=7 seeds=1 prompts=plain "
        "device=cpu dtype=auto"
    ) in text
    assert f"cache={unlearn_cache_dir.resolve()}" in text


# --- f. ini keys -----------------------------------------------------------------------------


def test_ini_selects_the_method(
    pytester: pytest.Pytester, cache_arg: str, suite_writer: Any
) -> None:
    suite_writer(pytester.path, ini_extra="unlearn_method = gradient_ascent\n")
    result = pytester.runpytest(cache_arg, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, text_of(result)
    ids = collected_ids(result)
    assert len(ids) == 56
    assert all("[gradient_ascent-privacy-" in node for node in ids), ids[:5]


def test_command_line_overrides_ini(
    pytester: pytest.Pytester, cache_arg: str, suite_writer: Any
) -> None:
    suite_writer(pytester.path, ini_extra="unlearn_method = gradient_ascent\n")
    result = pytester.runpytest(cache_arg, "--unlearn-method=none", "--collect-only", "-q")
    ids = collected_ids(result)
    assert len(ids) == 56
    assert all("[none-privacy-" in node for node in ids), ids[:5]


# --- g. collection ---------------------------------------------------------------------------


def test_collection_is_methods_times_items(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    result = pytester.runpytest(
        "--unlearn-method=none,gradient_ascent", cache_arg, "--collect-only", "-q"
    )
    assert result.ret == pytest.ExitCode.OK, text_of(result)
    ids = collected_ids(result)
    assert len(ids) == 2 * 56
    assert len(set(ids)) == len(ids)
    counts: dict[tuple[str, str, str], int] = {}
    for node in ids:
        match = ITEM_ID.search(node)
        assert match, node
        function, method, scope, _ = match.groups()
        assert (function == "test_forgets") == (scope == "unlearn"), node
        counts[(method, function, scope)] = counts.get((method, function, scope), 0) + 1
    assert counts == {
        ("none", "test_forgets", "unlearn"): 28,
        ("none", "test_retains", "retention"): 28,
        ("gradient_ascent", "test_forgets", "unlearn"): 28,
        ("gradient_ascent", "test_retains", "retention"): 28,
    }
    assert any(node.endswith("test_forgets[gradient_ascent-privacy-unlearn-000]") for node in ids)
    assert any(node.endswith("test_retains[none-privacy-retention-027]") for node in ids)


# --- h. end to end: JUnit XML and JSON agree ---------------------------------------------------


def test_vanilla_run_junit_and_json_agree(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none", cache_arg, "--junitxml=out.xml", "--unlearn-json=r.json"
    )
    text = text_of(result)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text
    summary = read_json(pytester.path / "r.json")
    row = row_of(summary, "none")
    assert row["unlearn_items"] == 28 and row["retention_items"] == 28
    assert row["errors"] == 0

    root = ET.parse(pytester.path / "out.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    counts = {
        "test_forgets": {"passed": 0, "failed": 0},
        "test_retains": {"passed": 0, "failed": 0},
    }
    for case in suite.iter("testcase"):
        function = case.get("name", "").split("[", 1)[0]
        bad = case.find("failure") is not None or case.find("error") is not None
        counts[function]["failed" if bad else "passed"] += 1
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert "token_accuracy" in props and "recalled" in props, props
        assert 0.0 <= float(props["token_accuracy"]) <= 1.0
        # A forget test passes exactly when the answer is not recalled; a retain test when it is.
        recalled = props["recalled"] == "True"
        assert bad == (recalled if function == "test_forgets" else not recalled), props
        failure = case.find("failure")
        if failure is not None:  # the item's message is the whole failure: no traceback
            verdict = "still recalls" if function == "test_forgets" else "no longer recalls"
            assert f"the model {verdict} the answer" in failure.get("message", ""), failure.attrib
            assert "def test_" not in (failure.text or ""), failure.text
    assert counts["test_forgets"]["passed"] == round(row["unlearn_success"] * 28)
    assert counts["test_retains"]["passed"] == round(row["retention_success"] * 28)
    assert sum(counts["test_forgets"].values()) == row["unlearn_items"]
    assert sum(counts["test_retains"].values()) == row["retention_items"]

    suite_props = {p.get("name"): p.get("value") for p in suite.find("properties").iter("property")}
    assert float(suite_props["unlearn.none.privacy.unlearn_success"]) == pytest.approx(
        row["unlearn_success"], abs=1e-6
    )
    assert float(suite_props["unlearn.none.privacy.retention_success"]) == pytest.approx(
        row["retention_success"], abs=1e-6
    )
    # The terminal summary table is printed too; the findings are counted there, not listed
    # (-rf or -v lists them, test_item_failures_point_at_the_line_of_the_test).
    assert "unlearning summary" in text
    assert re.search(r"findings of none \(privacy\): \d+ of 28 still recalled", text), text
    assert "the model still recalls the answer" not in text and "def test_forgets" not in text

    # The injection memorized the data: the vanilla model recalls nearly everything.
    assert row["unlearn_success"] <= 0.1
    assert row["retention_success"] >= 0.9


def test_item_failures_point_at_the_line_of_the_test(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    """The plugin starts a failed item test's traceback at the test function (pytest would
    walk every frame above it): each failure is still reported by its message, at the
    line of the suite that failed it."""
    # Findings are listed one by one with -rf (or -v); by default only their counts.
    result = pytester.runpytest_subprocess("--unlearn-method=none", cache_arg, "--tb=line", "-rf")
    text = text_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text
    suite = next(pytester.path.rglob("test_privacy.py"))
    lines = suite.read_text().splitlines()
    for verdict, scope in (("still recalls", "unlearn"), ("no longer recalls", "retention")):
        line_number = 1 + next(index for index, line in enumerate(lines) if f'"{verdict}"' in line)
        # --tb=line: "<file>:<line>: Failed: <message>" per failure
        reported = [line for line in result.outlines if f": Failed: privacy-{scope}-" in line]
        passed = warm_cache["rows"][0][f"{scope}_success"] * 28
        assert len(reported) == 28 - round(passed), text
        for line in reported:
            assert line.startswith(f"{suite}:{line_number}: Failed: privacy-{scope}-"), line
            assert f"the model {verdict} the answer" in line, line


# --- i. a second identical run trains nothing ---------------------------------------------------


def test_second_identical_run_trains_nothing(
    suite_dir: Path,
    pytester: pytest.Pytester,
    unlearn_cache_dir: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    args = ("--unlearn-method=gradient_ascent", cache_arg)
    first = pytester.runpytest_subprocess(*args, "--unlearn-json=first.json")
    assert first.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(first)
    before = cache_snapshot(unlearn_cache_dir)
    assert any(name.startswith("unlearned/") for name in before[0]), before

    second = pytester.runpytest_subprocess(*args, "--unlearn-json=second.json")
    text = text_of(second)
    assert second.ret == first.ret, text
    after = cache_snapshot(unlearn_cache_dir)
    assert after[0] == before[0]
    assert after[1] == before[1]
    # The progress lines are visible (so their absence below means something) ...
    assert "[unlearn] score privacy: 56 items, prompt plain, from the cache (model " in text
    # ... and neither injection, unlearning nor scoring ran: no model was even loaded.
    assert "[unlearn] inject" not in text
    assert "[unlearn] unlearn privacy" not in text
    assert "[unlearn] score privacy: 56 items, prompt plain\n" not in text
    assert "[unlearn] generate" not in text

    first_items = item_outcomes(read_json(pytester.path / "first.json"), "gradient_ascent")
    second_items = item_outcomes(read_json(pytester.path / "second.json"), "gradient_ascent")
    assert len(first_items) == 56
    assert second_items == first_items


# --- j. a method from a conftest --------------------------------------------------------------


CONFTEST_METHOD = """
from dataclasses import dataclass

import pytest_unlearn


@dataclass(frozen=True)
class KeepAllConfig:
    note: str = "kept everything"


class KeepAll(pytest_unlearn.UnlearningMethod):
    name = "keep_all"
    config_class = KeepAllConfig

    def unlearn(self, context):
        assert context.trainable, "the harness names the trainable tensors"
        return pytest_unlearn.MethodResult(
            context.model, {"note": self.config.note, "forget": len(context.forget)})


def pytest_unlearn_register_methods(registry):
    registry.register("keep_all", KeepAll)
"""


def test_conftest_method_runs(
    suite_dir: Path,
    pytester: pytest.Pytester,
    unlearn_cache_dir: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    pytester.makeconftest(CONFTEST_METHOD)
    collected = pytester.runpytest("--unlearn-method=keep_all", cache_arg, "--collect-only", "-q")
    ids = collected_ids(collected)
    assert len(ids) == 56, text_of(collected)
    assert all("[keep_all-privacy-" in node for node in ids)

    result = pytester.runpytest_subprocess(
        "--unlearn-method=keep_all", cache_arg, "--unlearn-json=r.json"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(result)
    row = row_of(read_json(pytester.path / "r.json"), "keep_all")
    assert row["unlearn_items"] == 28 and row["retention_items"] == 28 and row["errors"] == 0
    # It returned the vanilla model unchanged, so it scores exactly like 'none'.
    vanilla = row_of(warm_cache, "none")
    assert row["unlearn_success"] == vanilla["unlearn_success"]
    assert row["retention_success"] == vanilla["retention_success"]
    logs = [
        json.loads(path.read_text())
        for path in (unlearn_cache_dir / "unlearned").glob("*/*/method_log.json")
    ]
    assert {"note": "kept everything", "forget": 84} in logs


BROKEN_METHOD = """
from dataclasses import dataclass

import pytest_unlearn


@dataclass(frozen=True)
class BrokenConfig:
    pass


class Broken(pytest_unlearn.UnlearningMethod):
    name = "broken"
    config_class = BrokenConfig

    def unlearn(self, context):
        raise pytest_unlearn.UnlearnError("broken: this method cannot run on this model")


def pytest_unlearn_register_methods(registry):
    registry.register("broken", Broken)
"""


def test_a_build_that_fails_before_the_tests_is_reported_by_the_tests(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    """Models are built before the first test; when a build fails there, the run goes on
    and every test that needs the model reports the failure, as it would without the build
    first (the failure is remembered: the method does not run again for every test)."""
    pytester.makeconftest(BROKEN_METHOD)
    result = pytester.runpytest_subprocess("--unlearn-method=broken", cache_arg, "-rE")
    text = text_of(result)
    assert "[unlearn] building before the tests stopped at an error; the tests that" in text
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 56 and "passed" not in outcomes, text
    assert text.count("broken: this method cannot run on this model") >= 56
    assert 1 <= text.count("[unlearn] unlearn privacy: broken (seed 0)") <= 2, text


def test_registering_a_taken_name_is_a_usage_error(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    pytester.makeconftest("""
        import pytest_unlearn

        class Impostor(pytest_unlearn.UnlearningMethod):
            name = "none"

        def pytest_unlearn_register_methods(registry):
            registry.register("none", Impostor)
        """)
    result = pytester.runpytest("--unlearn-method=none", cache_arg, "--collect-only")
    text = text_of(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text
    assert "'none' is registered twice" in text
    assert "pytest_unlearn_methods.none:NoUnlearning" in text  # the entry point
    assert "Impostor" in text  # the conftest class


# --- k. a method from an installed distribution (entry point) --------------------------------


THIRDPARTY_MODULE = """
from dataclasses import dataclass
from pathlib import Path

from pytest_unlearn.method import MethodResult, UnlearningMethod

# Records that the module was imported (the registry must load it only when used).
(Path(__file__).parent / "imported.txt").write_text("imported")


@dataclass(frozen=True)
class NoopConfig:
    pass


class Noop(UnlearningMethod):
    name = "noop3"
    config_class = NoopConfig

    def unlearn(self, context):
        return MethodResult(context.model, {"noop": True})
"""


def test_entry_point_method(
    suite_dir: Path,
    pytester: pytest.Pytester,
    cache_arg: str,
    monkeypatch: pytest.MonkeyPatch,
    warm_cache: dict[str, Any],
) -> None:
    site = pytester.path / "site"
    package = site / "thirdparty_unlearn"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(THIRDPARTY_MODULE)
    dist_info = site / "thirdparty_unlearn-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-unlearn\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[pytest_unlearn.methods]\nnoop3 = thirdparty_unlearn:Noop\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(site))

    collected = pytester.runpytest_subprocess(
        "--unlearn-method=noop3", cache_arg, "--collect-only", "-q"
    )
    assert collected.ret == pytest.ExitCode.OK, text_of(collected)
    ids = collected_ids(collected)
    assert len(ids) == 56
    assert all("[noop3-privacy-" in node for node in ids)
    assert not (package / "imported.txt").exists(), "collection imported the method module"

    result = pytester.runpytest_subprocess(
        "--unlearn-method=noop3", cache_arg, "-k", "unlearn-000", "--unlearn-json=r.json"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1, text_of(result)
    assert "error" not in outcomes and "errors" not in outcomes, text_of(result)
    assert (package / "imported.txt").exists()
    row = row_of(read_json(pytester.path / "r.json"), "noop3")
    assert row["unlearn_items"] == 1 and row["retention_items"] == 0


# --- l. bad data -------------------------------------------------------------------------------


def _bad_data_run(pytester: pytest.Pytester, cache_arg: str, folder: Path) -> str:
    result = pytester.runpytest(f"--unlearn-data={folder}", cache_arg, "--collect-only")
    text = text_of(result)
    assert result.ret == pytest.ExitCode.INTERRUPTED, text
    assert "ERROR collecting" in text or "error during collection" in text.lower(), text
    assert "Traceback" not in text
    assert "pytest_unlearn" not in text, "the error shows the plugin's internals"
    return text


def test_data_file_that_is_not_json(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, data_writer: Any
) -> None:
    folder = data_writer(pytester.path / "baddata")
    (folder / "unlearn_train.json").write_text('[{"text": "a", "labels": "b"},')
    text = _bad_data_run(pytester, cache_arg, folder)
    assert str(folder / "unlearn_train.json") in text
    assert "not valid JSON" in text


def test_data_record_without_labels(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, data_writer: Any
) -> None:
    folder = data_writer(pytester.path / "baddata")
    records = json.loads((folder / "retention_val.json").read_text())
    del records[3]["labels"]
    (folder / "retention_val.json").write_text(json.dumps(records))
    text = _bad_data_run(pytester, cache_arg, folder)
    assert str(folder / "retention_val.json") in text
    assert "record 3" in text
    assert "'labels'" in text


def test_data_empty_split(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, data_writer: Any
) -> None:
    folder = data_writer(pytester.path / "baddata")
    (folder / "unlearn_val.json").write_text("[]")
    text = _bad_data_run(pytester, cache_arg, folder)
    assert str(folder / "unlearn_val.json") in text
    assert "the split is empty" in text


# --- m. a corrupt cache entry is rebuilt ----------------------------------------------------------


def _corrupt_copy(
    quick_data_cache: tuple[Path, Path, Path], tmp_path: Path
) -> tuple[tuple[str, ...], Path, bytes]:
    """The options of a run on a copy of the quickly injected small-data cache whose
    vanilla weights are garbage, the weights file and the garbage.

    The quick injection makes the rebuild take seconds, and the copy keeps every other
    test's cache intact."""
    data, populated, config = quick_data_cache
    cache = tmp_path / "corrupt-cache"
    shutil.copytree(populated, cache)
    shutil.rmtree(cache / "scores")  # with the scores cached, the model would not even load
    weights = list((cache / "vanilla").glob("*/*/weights.safetensors"))
    assert len(weights) == 1, weights
    garbage = b"this is not a safetensors file\n" * 64
    weights[0].write_bytes(garbage)
    options = (
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        f"--unlearn-config={config}",
        "--unlearn-max-new-tokens=4",
    )
    return options, weights[0], garbage


def _entry_is_intact(weights: Path, garbage: bytes) -> None:
    content = weights.read_bytes()
    rebuilt = content != garbage
    assert rebuilt, f"the corrupt entry {weights.parent} was not rebuilt"
    manifest = json.loads((weights.parent / "manifest.json").read_text())
    assert manifest["files"]["weights.safetensors"] == hashlib.sha256(content).hexdigest()


def test_corrupt_cache_entry_is_rebuilt(
    pytester: pytest.Pytester,
    tmp_path: Path,
    suite_writer: Any,
    quick_data_cache: tuple[Path, Path, Path],
) -> None:
    suite_writer(pytester.path, filterwarnings="default")
    options, weights, garbage = _corrupt_copy(quick_data_cache, tmp_path)
    result = pytester.runpytest_subprocess(*options)
    text = text_of(result)
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 6, text
    assert "error" not in outcomes and "errors" not in outcomes, text
    assert "corrupt" in text
    assert "CacheWarning" in text
    _entry_is_intact(weights, garbage)


def test_general_tests_follow_the_domains_of_the_item_tests(
    suite_dir: Path,
    pytester: pytest.Pytester,
    tmp_path: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    # suites/general tests the models of both domains; beside the privacy item tests only
    # privacy's, so that no copyright model is built for it, and it says so. No model loads.
    general = Path(__file__).resolve().parents[1] / "suites" / "general"
    for name in ("test_general.py", "thresholds.yaml"):
        (suite_dir / name).write_text((general / name).read_text())
    cache = f"--unlearn-cache-dir={tmp_path / 'cache'}"
    both = pytester.runpytest("--collect-only", "-q", cache)
    ids = collected_ids(both)
    assert len([i for i in ids if "test_general_ability[" in i]) == 3  # builtin tasks, none
    assert not [i for i in ids if "after_copyright_unlearning" in i]
    assert (
        "unlearn: 3 general-task tests of copyright deselected: this run has item tests "
        "of privacy only (add suites/copyright to test them" in text_of(both)
    )
    alone = pytester.runpytest("test_general.py", "--collect-only", "-q", cache)
    ids = collected_ids(alone)
    assert len(ids) == 6 and len([i for i in ids if "copyright" in i]) == 3, ids
    assert "deselected" not in text_of(alone)
    # Under xdist the workers collect; the controller still says what they deselected.
    ran = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-k",
        "privacy-unlearn-000 or general",
        "--unlearn-method=none",
        "--unlearn-general-limit=5",
        cache_arg,
    )
    assert ran.ret == pytest.ExitCode.TESTS_FAILED, text_of(ran)  # unlearn-000 is recalled
    assert ran.parseoutcomes() == {"failed": 1, "passed": 3}, text_of(ran)
    assert "unlearn: 3 general-task tests of copyright deselected" in text_of(ran)


def test_the_plugins_warnings_stay_warnings_under_filterwarnings_error(
    suite_dir: Path, pytester: pytest.Pytester
) -> None:
    # The repo's ini (and the suite's here) turns warnings into errors; a record truncated to
    # the maximum length, warned while a model is built in a fixture, must not error every
    # test of that model: it is reported in the warnings summary.
    pytester.makepyfile(
        test_warns="""
        import warnings

        import pytest

        from pytest_unlearn.cache import CacheWarning
        from pytest_unlearn.encoding import TruncationWarning


        @pytest.fixture(scope="session")
        def built():
            warnings.warn(TruncationWarning("1 of 3 forget records are longer than 256 tokens"))
            warnings.warn(CacheWarning("a corrupt entry has been rebuilt"))
            return True


        def test_uses_the_model(built):
            assert built
    """
    )
    result = pytester.runpytest("test_warns.py", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, text_of(result)
    result.stdout.fnmatch_lines(
        [
            "*TruncationWarning: 1 of 3 forget records are longer*",
            "*CacheWarning: a corrupt entry has been rebuilt*",
            "*1 passed, 2 warnings*",
        ]
    )


# --- n. xdist ------------------------------------------------------------------------------------


def test_xdist_gives_the_serial_results(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--unlearn-method=none", cache_arg, "--unlearn-json=r.json"
    )
    text = text_of(result)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text
    assert "2 workers" in text
    summary = read_json(pytester.path / "r.json")
    row, serial = row_of(summary, "none"), row_of(warm_cache, "none")
    for key in (
        "unlearn_items",
        "retention_items",
        "errors",
        "unlearn_success",
        "retention_success",
    ):
        assert row[key] == serial[key], key
    assert item_outcomes(summary, "none") == item_outcomes(warm_cache, "none")


# --- o. the real KnowUnDo privacy data ------------------------------------------------------


@pytest.mark.skipif(
    not REAL_PRIVACY_DATA.is_dir(),
    reason=f"the real KnowUnDo privacy data is not at {REAL_PRIVACY_DATA}",
)
def test_real_privacy_data_collects(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    result = pytester.runpytest(
        f"--unlearn-data={REAL_PRIVACY_DATA}",
        "--unlearn-method=gradient_ascent",
        cache_arg,
        "--collect-only",
        "-q",
    )
    assert result.ret == pytest.ExitCode.OK, text_of(result)
    ids = collected_ids(result)
    assert len(ids) == 218
    assert sum("::test_forgets[gradient_ascent-privacy-unlearn-" in n for n in ids) == 110
    assert sum("::test_retains[gradient_ascent-privacy-retention-" in n for n in ids) == 108


# --- m (continued). last, so that `-x` runs everything else first: it fails until the
# CacheWarning bug in pytest_unlearn/cache.py is fixed (see the docstring).


def test_corrupt_cache_entry_is_rebuilt_under_filterwarnings_error(
    pytester: pytest.Pytester,
    tmp_path: Path,
    suite_writer: Any,
    quick_data_cache: tuple[Path, Path, Path],
) -> None:
    """The repo's own pyproject sets filterwarnings=error. A run there may report the
    CacheWarning as an error, but it must still repair the entry, or every later run fails
    the same way until someone deletes the cache by hand."""
    suite_writer(pytester.path, filterwarnings="error")
    options, weights, garbage = _corrupt_copy(quick_data_cache, tmp_path)
    pytester.runpytest_subprocess(*options)
    _entry_is_intact(weights, garbage)
    again = pytester.runpytest_subprocess(*options)
    outcomes = again.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 6, text_of(again)


CONFTEST_COUNTING_METHODS = """
import gc
import json
from dataclasses import dataclass

import pytest_unlearn
from transformers import LlamaForCausalLM


@dataclass(frozen=True)
class CountConfig:
    pass


class CountModels(pytest_unlearn.UnlearningMethod):
    config_class = CountConfig

    def unlearn(self, context):
        gc.collect()
        # Whole tiny models (each holds one inner LlamaModel, not counted). type() rather
        # than isinstance(): the latter reads __class__, which some lazy objects answer
        # with a deprecation warning.
        alive = sum(type(o) is LlamaForCausalLM for o in gc.get_objects())
        with open("alive.jsonl", "a") as log:
            log.write(json.dumps({"method": self.name, "alive": alive}) + "\\n")
        return pytest_unlearn.MethodResult(context.model, {})


class CountA(CountModels):
    name = "count_a"


class CountB(CountModels):
    name = "count_b"


def pytest_unlearn_register_methods(registry):
    registry.register("count_a", CountA)
    registry.register("count_b", CountB)
"""


def test_one_model_in_memory_at_a_time(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    """With two methods in one session, the first unlearned model is released before the
    second is built: while each method runs, exactly one model object is alive."""
    pytester.makeconftest(CONFTEST_COUNTING_METHODS)
    result = pytester.runpytest_subprocess("--unlearn-method=count_a,count_b", cache_arg)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(result)
    lines = [json.loads(line) for line in (pytester.path / "alive.jsonl").read_text().splitlines()]
    assert [line["method"] for line in lines] == ["count_a", "count_b"]
    assert [line["alive"] for line in lines] == [1, 1]


def test_memflex_region_is_saved_and_reported(
    suite_dir: Path,
    pytester: pytest.Pytester,
    unlearn_cache_dir: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    result = pytester.runpytest_subprocess(
        "--unlearn-method=memflex", cache_arg, "--unlearn-json=r.json"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(result)
    row = row_of(read_json(pytester.path / "r.json"), "memflex")
    region = row["method_log"]["region"]
    assert region["rule"] == "quantile"  # the tiny model is not in paper Table 12
    assert 0 < region["n_selected"] < region["n_tensors"] == 38
    result.stdout.fnmatch_lines(
        [f"memflex privacy region (quantile rule*): {region['n_selected']} of 38 tensors*"]
    )
    entry = unlearn_cache_dir / "unlearned" / row["model_cache_key"][:2] / row["model_cache_key"]
    saved = json.loads((entry / "region.json").read_text())
    assert saved["selected"] == region["selected"]
    assert set(saved["per_tensor"]) >= set(region["selected"])
    config = json.loads((entry / "method_config.json").read_text())
    assert config["method"] == "memflex" and config["config"]["retain_weight"] == 2.0


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("gradient_ascent:\n  lrr: 1\n", "has no config key 'lrr'; its keys are: lr, epochs"),
        ("gradient_ascent:\n  epochs: two\n", "gradient_ascent.epochs = 'two' has type str"),
        ("gradient_ascnt:\n  lr: 1\n", "section 'gradient_ascnt' names no registered method"),
        ("gradient_ascent: [1]\n", "section 'gradient_ascent' must be a mapping"),
        (
            "inject:\n  epochz: 3\n",
            "section 'inject' has no key 'epochz'; its keys are: lr, epochs",
        ),
        ("inject:\n  lr: fast\n", "inject.lr = 'fast' has type str"),
        ("inject:\n  epochs: 0\n", "inject: epochs must be >= 1 (got 0)"),
        (
            "inject:\n  target_token_accuracy: 1.5\n",
            "target_token_accuracy = 1.5 must be in (0, 1]",
        ),
        ("inject: 3\n", "section 'inject' must be a mapping"),
        ("[]\n", "expected a mapping of method names to their settings, got list"),
        ("[gradient_ascent]\n", "expected a mapping of method names to their settings, got list"),
    ],
)
def test_bad_method_config_is_a_usage_error(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, yaml_text: str, message: str
) -> None:
    pytester.makefile(".yaml", unlearn=yaml_text)
    result = pytester.runpytest(
        "--unlearn-method=gradient_ascent",
        cache_arg,
        "--unlearn-config=unlearn.yaml",
        "--collect-only",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = text_of(result)
    assert message in output and "unlearn.yaml" in output and "Traceback" not in output


def test_config_file_sets_the_knowledge_injection_and_a_weak_one_warns(
    pytester: pytest.Pytester, suite_writer: Any, data_writer: Any, tmp_path: Path
) -> None:
    suite_writer(pytester.path)
    data = data_writer(tmp_path / "data", records_per_split=3)
    pytester.makefile(
        ".yaml", unlearn="inject:\n  epochs: 1\n  lr: 1.0e-4\n  target_token_accuracy: null\n"
    )
    cache = tmp_path / "cache"
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        "--unlearn-config=unlearn.yaml",
        "--unlearn-max-new-tokens=0",
    )
    output = text_of(result)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output
    [entry] = list((cache / "vanilla").glob("*/*"))
    injection = json.loads((entry / "injection.json").read_text())
    assert injection["settings"]["epochs"] == 1 and injection["settings"]["lr"] == 1e-4
    assert injection["train_log"]["epochs_run"] == 1
    assert injection["exact_share"] < 0.9
    assert "inject privacy: done after 1 epoch, token accuracy" in output
    result.stdout.fnmatch_lines(
        [
            "*InjectionWarning: knowledge injection (privacy) left the "
            "vanilla model recalling *% of its * records exactly*"
        ]
    )


def test_update_summary_hook_changes_the_report(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    pytester.makeconftest("""
        def pytest_unlearn_update_summary(summary):
            for row in summary["rows"]:
                row["team"] = "privacy-eng"
            summary["run"]["ticket"] = "REL-42"
    """)
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none", cache_arg, "--unlearn-json=r.json", "--junitxml=out.xml"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text_of(result)
    report = read_json(pytester.path / "r.json")
    assert report["run"]["ticket"] == "REL-42"
    assert row_of(report, "none")["team"] == "privacy-eng"
    assert (
        'name="unlearn.none.privacy.team" value="privacy-eng"'
        in (pytester.path / "out.xml").read_text()
    )
