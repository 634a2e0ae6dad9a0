"""What CI systems and people read besides the exit status: the release gate as a JUnit
(and pytest-html) test case of its own (Jenkins, GitLab and GitHub test views show test
cases, not suite properties), a Markdown summary of the run for GitHub Actions
(``$GITHUB_STEP_SUMMARY``), and the summary, gate and plots in pytest-html's report.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any

import pytest

from .tables import beyond_table, paper_table

GATE_NODE_ID = "pytest_unlearn::release_gate"


def gate_test_reports(gate: dict[str, Any]) -> list[pytest.TestReport]:
    """The gate as a test's setup, call and teardown reports: the call passes or fails with
    the failing checks as its message and every check in its text; every check is also a
    property of the test case (``check_0``, ...: JUnit shows those of a passing one too)."""
    failing = [check["check"] for check in gate["checks"] if not check["passed"]]
    text = "\n".join(
        f"{'ok  ' if check['passed'] else 'FAIL'} {check['check']}" for check in gate["checks"]
    )
    location = (gate["file"], None, "release gate")

    def report(when: str, outcome: str, longrepr: str | None) -> pytest.TestReport:
        return pytest.TestReport(
            GATE_NODE_ID,
            location,
            {"release_gate": 1},
            outcome,  # type: ignore[arg-type]
            longrepr,
            when,  # type: ignore[arg-type]
            user_properties=[("unlearn_gate_file", gate["file"])]
            + [
                (f"check_{index}", f"{'ok' if check['passed'] else 'FAIL'}: {check['check']}")
                for index, check in enumerate(gate["checks"])
            ],
        )

    if gate["passed"]:
        call = report("call", "passed", None)
    else:
        message = f"{len(failing)} of {len(gate['checks'])} checks failed: {'; '.join(failing)}"
        call = report("call", "failed", f"{message}\n\n{text}")
    return [report("setup", "passed", None), call, report("teardown", "passed", None)]


def add_gate_to_junit(xml: Any, gate: dict[str, Any]) -> None:
    """Write the gate's test case into the JUnit XML that pytest's junitxml plugin writes
    (``xml`` is its LogXML; called before it writes the file)."""
    for report in gate_test_reports(gate):
        xml.pytest_runtest_logreport(report)


def add_gate_to_html(config: pytest.Config, gate: dict[str, Any]) -> None:
    """Give pytest-html's report, when it writes one, the gate's test case (called before its
    session finish, where it writes the file)."""
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__module__.startswith("pytest_html.") and hasattr(
            plugin, "pytest_runtest_logreport"
        ):
            for report in gate_test_reports(gate):
                plugin.pytest_runtest_logreport(report)


def html_summary(summary: dict[str, Any]) -> list[str]:
    """HTML fragments for pytest-html's summary: both tables, the gate and its checks, the
    comparison with a baseline, and the PNG plots embedded (the report stays one file)."""
    parts = ["<h2>pytest-unlearn</h2>"]
    if summary["rows"]:
        tables = [*paper_table(summary["rows"]), "", *beyond_table(summary["rows"])]
        parts.append("<pre>" + html.escape("\n".join(tables)) + "</pre>")
    gate = summary.get("gate")
    if gate is not None:
        verdict = "passed" if gate["passed"] else "FAILED"
        checks = "".join(
            f"<li>{'ok' if check['passed'] else '<b>FAIL</b>'} {html.escape(check['check'])}</li>"
            for check in gate["checks"]
        )
        parts.append(
            f"<p>Release gate <code>{html.escape(gate['file'])}</code> {verdict}</p>"
            f"<ul>{checks}</ul>"
        )
    comparison = summary.get("comparison")
    if comparison is not None:
        parts.append("<pre>" + html.escape("\n".join(_comparison_lines(comparison))) + "</pre>")
    for plot in summary.get("plots", []):
        path = Path(plot)
        if path.suffix == ".png" and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            name = html.escape(path.name)
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{name}" '
                f'style="max-width: 100%"><figcaption>{name}</figcaption></figure>'
            )
    return parts


def write_step_summary(
    summary: dict[str, Any], environ: dict[str, str] | None = None
) -> Path | None:
    """Append the run's Markdown summary to ``$GITHUB_STEP_SUMMARY`` when it is set: the
    paper's table, the gate's verdict and checks, and the items newly leaked or lost since
    the baseline. Returns the file written, or None."""
    environ = dict(os.environ) if environ is None else environ
    target = environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(markdown_summary(summary))
    return path


def markdown_summary(summary: dict[str, Any]) -> str:
    lines = ["## pytest-unlearn", ""]
    if summary["rows"]:
        lines += ["```", *paper_table(summary["rows"]), "```", ""]
    gate = summary.get("gate")
    if gate is not None:
        verdict = "passed" if gate["passed"] else "**failed**"
        lines += [f"Release gate `{gate['file']}` {verdict}:", ""]
        lines += [
            f"- {'ok' if check['passed'] else '**FAIL**'} {check['check']}"
            for check in gate["checks"]
        ]
        lines.append("")
    comparison = summary.get("comparison")
    if comparison is not None:
        lines += [*_comparison_lines(comparison), ""]
    return "\n".join(lines) + "\n"


def _comparison_lines(comparison: dict[str, Any]) -> list[str]:
    lines = [
        f"Compared with baseline {comparison['baseline']}: "
        f"{comparison['matched_items']} tests in both runs."
    ]
    for key, title in (("newly_leaked", "Newly leaked"), ("newly_lost", "Newly lost")):
        items = comparison[key]
        lines.append(f"- {title}: {len(items)}" + (f": {', '.join(items)}" if items else ""))
    return lines
