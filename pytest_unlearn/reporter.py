"""The controller's reporter: test reports in, the run's summary out.

Registered on the controller only (under xdist the outcomes arrive with the workers'
reports, as their user properties). At the end of the session it builds the summary
(``report.py``), lets ``pytest_unlearn_update_summary`` change it, draws the plots, applies
the gate (which then decides the exit status), and writes the JUnit properties, the JSON
report and the baseline; ``terminal.py`` prints it.
"""

from __future__ import annotations

import html
import os
import shlex
from collections.abc import Generator
from typing import Any

import pytest

from .baselines import save_baseline
from .ci_reports import add_gate_to_html, add_gate_to_junit, html_summary, write_step_summary
from .collection import MEMBERSHIP_LABEL
from .errors import UnlearnError
from .gate import gate_verdict
from .json_report import report_metadata, write_json
from .membership_report import membership_record
from .outcomes import ItemOutcome, is_documented_skip, message_of, outcome_of
from .plots import write_plots
from .report import build_summary, suite_properties
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
        seconds = output.get("unlearn_build_seconds")
        if seconds is not None:
            self.unlearn.build_seconds = max(seconds, self.unlearn.build_seconds or 0.0)
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
        if MEMBERSHIP_LABEL in properties:
            if outcome is not None:
                self.unlearn.membership[report.nodeid] = membership_record(
                    properties, outcome, message_of(report)
                )
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
            not (self.unlearn.outcomes or self.general or self.unlearn.membership)
            and settings.json_path is None
            and settings.gate_path is None
        ):
            return
        try:
            invocation = self.config.invocation_params
            metadata = report_metadata(
                settings,
                self.unlearn.started,
                [str(arg) for arg in invocation.args],
                invocation.dir,
            )
            self.summary = build_summary(self.unlearn, self.general, metadata)
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
            if "gate" in self.summary:
                add_gate_to_junit(xml, self.summary["gate"])
        if "gate" in self.summary:
            add_gate_to_html(self.config, self.summary["gate"])
        write_step_summary(self.summary)
        if settings.json_path is not None:
            write_json(settings.json_path, self.summary)
        if settings.save_baseline is not None:
            self.saved = str(
                save_baseline(settings.cache_dir, settings.save_baseline, self.summary)
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        """pytest-html (after this reporter's session finish): the unlearning summary, the
        gate and the plots at the top of its report."""
        if self.summary is not None:
            prefix.extend(html_summary(self.summary))
        elif self.error:
            prefix.append(f"<p>pytest-unlearn: no summary: {html.escape(self.error)}</p>")

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
        self.summary["gate"] = gate_verdict(
            self.unlearn.gate, str(self.unlearn.settings.gate_path), self.summary
        )
        if not self.summary["gate"]["passed"]:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif session.exitstatus == pytest.ExitCode.TESTS_FAILED and not self.other_failures:
            # Item and general-task failures are findings the gate already weighed.
            session.exitstatus = pytest.ExitCode.OK

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Generator[None]:
        """Around pytest's own summary, so that the unlearning summary comes last. Failed
        item tests are findings, counted per method in that summary: pytest's FAILURES and
        short summary leave them out unless -v or -r asks for failures (they still count in
        the final line, the exit status and JUnit)."""
        stats = terminalreporter.stats
        failed = list(stats.get("failed", []))
        if failed and not _lists_failures(self.config):
            stats["failed"] = [report for report in failed if not _is_finding(report)]
        try:
            return (yield)
        finally:
            if failed:
                stats["failed"] = failed
            write_summary(
                terminalreporter,
                self.unlearn,
                self.summary,
                self.error,
                self.plots_error,
                self.saved,
                header=self.config.pluginmanager.has_plugin("dsession"),
            )


def _is_finding(report: pytest.TestReport) -> bool:
    """A failed item test: what a method did, reported in the summary, not a fault."""
    return report.when == "call" and any(
        name == "unlearn_item" for name, _ in report.user_properties
    )


def _lists_failures(config: pytest.Config) -> bool:
    """Whether the user asked pytest to list failures: -v, or -r with f, a or A."""
    if config.get_verbosity() > 0:
        return True
    arguments = [
        *map(str, config.invocation_params.args),
        *shlex.split(os.environ.get("PYTEST_ADDOPTS", "")),
        *config.getini("addopts"),
    ]
    for index, argument in enumerate(arguments):
        chars = ""
        if argument.startswith("-r") and argument != "-r":
            chars = argument[2:]
        elif argument in ("-r", "--report-chars") and index + 1 < len(arguments):
            chars = arguments[index + 1]
        elif argument.startswith("--report-chars="):
            chars = argument.split("=", 1)[1]
        if set(chars) & set("faA"):
            return True
    return False


def _junit_xml(config: pytest.Config) -> Any:
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - pytest internals moved
        return None
    return config.stash.get(xml_key, None)
