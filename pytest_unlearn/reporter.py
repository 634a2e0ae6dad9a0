"""The controller's reporter: test reports in, the run's summary out.

Registered on the controller only (under xdist the outcomes arrive with the workers'
reports, as their user properties). At the end of the session it builds the summary
(``report.py``), lets ``pytest_unlearn_update_summary`` change it, draws the plots, applies
the gate (which then decides the exit status), and writes the JUnit properties, the JSON
report and the baseline; ``terminal.py`` prints it.
"""

from __future__ import annotations

from typing import Any

import pytest

from .baselines import save_baseline
from .errors import UnlearnError
from .gate import evaluate_gate
from .outcomes import ItemOutcome, is_documented_skip, message_of, outcome_of
from .plots import write_plots
from .report import build_summary, suite_properties, write_json
from .session import UnlearnSession
from .terminal import write_summary


class UnlearnReporter:
    def __init__(self, config: pytest.Config, unlearn: UnlearnSession) -> None:
        self.config = config
        self.unlearn = unlearn
        self.summary: dict[str, Any] | None = None
        self.general: list[dict[str, Any]] = []
        self.general_index: dict[str, int] = {}  # where each general test's result is
        # Failures the gate does not judge (anything but item and general-task tests).
        self.other_failures = 0
        self.error = ""  # why no summary could be built
        self.plots_error = ""
        self.saved: str | None = None  # the baseline file written

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """An xdist worker's collection: what it deselected, and what it collected."""
        output = getattr(node, "workeroutput", {})
        for line in output.get("unlearn_general_deselected", []):
            if line not in self.unlearn.general_deselected:  # every worker collects the same
                self.unlearn.general_deselected.append(line)
        if "unlearn_collected" in output and not self.unlearn.collected:
            self.unlearn.collected = [
                (method, domain, prompt, kind, scope)
                for method, domain, prompt, kind, scope in output["unlearn_collected"]
            ]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        outcome = outcome_of(report)
        if "general_task" in properties:
            if outcome is not None:
                self._record_general(report.nodeid, properties, outcome, message_of(report))
            return
        if "unlearn_item" not in properties:
            if report.failed:
                self.other_failures += 1
            return
        if outcome is None:
            return
        record = ItemOutcome.from_properties(
            properties, outcome, message_of(report), is_documented_skip(outcome, properties)
        )
        index = self.unlearn.outcome_index.get(report.nodeid)
        if index is None:
            self.unlearn.outcome_index[report.nodeid] = len(self.unlearn.outcomes)
            self.unlearn.outcomes.append(record)
        else:  # a teardown error after the test's outcome: the test errored
            self.unlearn.outcomes[index] = record

    def _record_general(
        self, nodeid: str, properties: dict[str, Any], outcome: str, message: str | None
    ) -> None:
        result = {
            "method": properties["unlearn_method"],
            "domain": properties["unlearn_domain"],
            "seed": properties.get("unlearn_seed"),
            "task": properties["general_task"],
            "outcome": outcome,
            "message": message,
            "score": properties.get("general_score"),
            "reference_score": properties.get("general_reference_score"),
            "drop": properties.get("general_drop"),
            "drop_stderr": properties.get("general_drop_stderr"),
            "n": properties.get("general_n"),
        }
        index = self.general_index.get(nodeid)
        if index is None:
            self.general_index[nodeid] = len(self.general)
            self.general.append(result)
        else:
            self.general[index] = result

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # Under --continue-on-collection-errors a broken module is a failure no gate weighs.
        if report.failed:
            self.other_failures += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Runs before junitxml writes its file, so the suite properties make it in.

        With --unlearn-json a report is written even when no item test ran (no rows), so a
        CI step that reads it finds it. With --unlearn-gate, the gate's verdict decides the
        exit status (syrupy-style, here rather than in a reporting hook)."""
        settings = self.unlearn.settings
        if (
            not (self.unlearn.outcomes or self.general)
            and settings.json_path is None
            and settings.gate_path is None
        ):
            return
        try:
            self.summary = build_summary(self.unlearn, self.general)
        except UnlearnError as error:
            self.error = str(error)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        self.config.hook.pytest_unlearn_update_summary(summary=self.summary)
        if settings.plots_dir is not None and self.summary["rows"]:
            self._write_plots()
        if self.unlearn.gate is not None:
            self._apply_gate(session)
        if self.plots_error:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        xml = _junit_xml(self.config)
        if xml is not None:
            for name, value in suite_properties(self.summary):
                xml.add_global_property(name, value)
        if settings.json_path is not None:
            write_json(settings.json_path, self.summary)
        if settings.save_baseline is not None:
            self.saved = str(
                save_baseline(settings.cache_dir, settings.save_baseline, self.summary)
            )

    def _write_plots(self) -> None:
        assert self.summary is not None and self.unlearn.settings.plots_dir is not None
        folder = self.unlearn.settings.plots_dir
        try:
            self.summary["plots"] = [
                str(path) for path in write_plots(folder, self.summary["rows"])
            ]
        except (OSError, ImportError) as error:
            # The gate and the reports still follow; the exit status says it went wrong.
            self.plots_error = (
                f"--unlearn-plots={folder}: could not write the plots "
                f"({error}); choose a writable folder"
            )
            self.summary["plots_error"] = self.plots_error

    def _apply_gate(self, session: pytest.Session) -> None:
        assert self.summary is not None and self.unlearn.gate is not None
        checks = evaluate_gate(self.unlearn.gate, self.summary)
        passed = all(check.passed for check in checks)
        self.summary["gate"] = {
            "passed": passed,
            "file": str(self.unlearn.settings.gate_path),
            "checks": [{"check": c.describe(), "passed": c.passed} for c in checks],
        }
        if not passed:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and not self.other_failures:
            # Item and general-task failures are findings the gate already weighed.
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write_summary(
            terminalreporter, self.unlearn, self.summary, self.error, self.plots_error, self.saved
        )


def _junit_xml(config: pytest.Config) -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest internals moved
        return None
    return config.stash.get(xml_key, None)
