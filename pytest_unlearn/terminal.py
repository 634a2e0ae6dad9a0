"""What the plugin prints: progress lines while models build, and the summary at the end
(the numbers come from ``report.py``, the verdicts from ``stats.py``; this module only
formats them)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from .distributed import main_process
from .report import row_name
from .session import UnlearnSession
from .vocabulary import DEFAULT_PROMPT, DOMAINS


class ProgressWriter:
    """Shows long stages (injection, unlearning, scoring) on the terminal even while output
    is captured; quiet with -q, and at most one training-step line every two seconds."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.last = 0.0

    def __call__(self, message: str) -> None:
        if (
            self.config.get_verbosity() < 0
            or hasattr(self.config, "workerinput")
            or not main_process()
        ):
            return
        now = time.monotonic()
        if " step " in message and now - self.last < 2.0:
            return
        self.last = now
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"[unlearn] {message}")
        else:
            reporter.write_line(f"[unlearn] {message}")


def write_summary(
    terminal: Any,
    unlearn: UnlearnSession,
    summary: dict[str, Any] | None,
    error: str,
    plots_error: str,
    saved: str | None,
) -> None:
    """The end of the terminal report: build-only lines, then the summary table, the
    intervals, the general tasks, the baseline comparison, the verdicts and the gate."""
    if unlearn.build_report is not None and main_process():
        terminal.write_sep("=", "unlearn: models built and scored (--unlearn-build-only)")
        for line in unlearn.build_report:
            terminal.write_line(line)
    if error:
        terminal.write_sep("=", "unlearning summary")
        terminal.write_line(f"ERROR: {error}", red=True)
        return
    for line in unlearn.general_deselected:
        terminal.write_line(line)
    if summary is None:
        return
    _write_rows(terminal, unlearn, summary, plots_error)
    _write_general(terminal, unlearn, summary)
    _write_comparison(terminal, summary)
    _write_verdicts(terminal, summary)
    _write_gate(terminal, summary)
    if saved:
        terminal.write_line(f"baseline saved: {saved}")


def _write_rows(
    terminal: Any, unlearn: UnlearnSession, summary: dict[str, Any], plots_error: str
) -> None:
    if not summary["rows"]:
        return
    terminal.write_sep("=", "unlearning summary")
    for line in format_table(summary["rows"]):
        terminal.write_line(line)
    shown = set()
    for row in summary["rows"]:
        region = (row.get("method_log") or {}).get("region")
        if region and (row["method"], row["domain"]) not in shown:
            shown.add((row["method"], row["domain"]))
            how = (
                f"control {region['control']}"
                if region.get("control")
                else f"{region['rule']} rule, mu {region['mu']:.4g}, sigma {region['sigma']:.4g}"
            )
            terminal.write_line(
                f"{row['method']} {row['domain']} region ({how}): {region['n_selected']} of "
                f"{region['n_tensors']} tensors, {region['fraction_parameters']:.1%} of "
                f"trainable parameters: {', '.join(region['selected'])}"
            )
    for line in format_intervals(summary["rows"]):
        terminal.write_line(line)
    settings = unlearn.settings
    terminal.write_line(
        f"Succ: pass rates of the item tests (criterion {settings.criterion}); (tok): the "
        "reference's token-level figures; PPL: paper Eq. 5; RougeL: ROUGE-L F of greedy "
        "generations against the answers"
    )
    for path in summary.get("plots", []):
        terminal.write_line(f"plot: {path}")
    if plots_error:
        terminal.write_line(f"ERROR: {plots_error}", red=True)
    if settings.json_path is not None:
        terminal.write_line(f"JSON report: {settings.json_path}")


def _write_general(terminal: Any, unlearn: UnlearnSession, summary: dict[str, Any]) -> None:
    general = summary.get("general") or []
    if not general:
        return
    terminal.write_sep("-", "general tasks (acc)")
    methods, domains = (
        list(unlearn.methods),
        sorted({result["domain"] for result in general}, key=_domain_order),
    )
    # In the order of --unlearn-method, then of the domains (tests, and xdist workers'
    # reports, arrive in any order); within a pair, as they ran.
    for result in sorted(
        general,
        key=lambda each: (
            methods.index(each["method"]) if each["method"] in methods else len(methods),
            domains.index(each["domain"]),
        ),
    ):
        who = f"{result['method']:16} {result['domain']:9} {result['task']:24}"
        if result["score"] is None:
            terminal.write_line(f"{who} {result['outcome']}")
            continue
        noise = "" if result.get("drop_stderr") is None else f" +- {result['drop_stderr']:.4f}"
        terminal.write_line(
            f"{who} {result['score']:.4f} (reference {result['reference_score']:.4f}, drop "
            f"{result['drop']:+.4f}{noise}, n={result['n']}) {result['outcome']}"
        )


def _domain_order(domain: str) -> tuple[int, str]:
    return (DOMAINS.index(domain) if domain in DOMAINS else len(DOMAINS), domain)


def _write_comparison(terminal: Any, summary: dict[str, Any]) -> None:
    comparison = summary.get("comparison")
    if comparison is None:
        return
    terminal.write_sep("-", f"compared with baseline {comparison['baseline']!r}")
    matched = comparison["matched_items"]
    terminal.write_line(
        f"items in both runs: {matched} of {len(summary['items'])} in this run"
        + (
            ""
            if matched
            else " (the baseline shares no item with this run: another -k "
            "selection, data, method or seed?)"
        )
    )
    for key in ("newly_leaked", "newly_lost"):
        items = comparison[key]
        terminal.write_line(
            f"{key.replace('_', ' ')}: {len(items)}" + (f": {', '.join(items)}" if items else "")
        )


def _write_verdicts(terminal: Any, summary: dict[str, Any]) -> None:
    for where, verdict in summary.get("localization_verdict", {}).items():
        subject = verdict.get("subject") or verdict["method"]
        terminal.write_sep(
            "-",
            f"does {verdict['method']}'s {subject} do the work? ({where})"
            if subject != verdict["method"]
            else f"does {verdict['method']} beat its controls? ({where})",
        )
        for line in verdict["lines"]:
            terminal.write_line(line)


def _write_gate(terminal: Any, summary: dict[str, Any]) -> None:
    gate = summary.get("gate")
    if gate is None:
        return
    verdict = "PASSED" if gate["passed"] else "FAILED"
    terminal.write_sep(
        "=",
        f"unlearn gate {verdict} ({gate['file']})",
        green=gate["passed"],
        red=not gate["passed"],
    )
    for check in gate["checks"]:
        terminal.write_line(f"{'ok  ' if check['passed'] else 'FAIL'} {check['check']}")


def format_intervals(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row: the successes with their intervals, in percent."""
    lines = []
    for row in rows:
        intervals = row.get("intervals") or {}
        parts = []
        for key, title in (
            ("unlearn_success", "unlearn"),
            ("retention_success", "retention"),
            ("avg_success", "avg"),
            ("attack_unlearn_success", "after attack"),
            ("leak_success", "no leak"),
        ):
            if key in intervals:
                each = intervals[key]
                parts.append(
                    f"{title} {row[key] * 100:.1f} [{each['lower'] * 100:.1f}, "
                    f"{each['upper'] * 100:.1f}]"
                )
        if parts:
            any_interval = intervals[next(iter(intervals))]
            lines.append(
                f"{row_name(row)}: {'; '.join(parts)} "
                f"({any_interval['confidence']:.0%} {any_interval['method']}, "
                f"{len(row['seeds'])} seed(s): {', '.join(map(str, row['seeds']))})"
            )
    return lines


COLUMNS = (
    ("method", "method", "{}"),
    ("domain", "domain", "{}"),
    ("unlearn_success", "Unlearn Succ", "{:.2f}"),
    ("retention_success", "Retention Succ", "{:.2f}"),
    ("avg_success", "Avg Succ", "{:.2f}"),
    ("unlearn_success_token", "UL Succ (tok)", "{:.2f}"),
    ("retention_success_token", "RT Succ (tok)", "{:.2f}"),
    ("unlearn_ppl", "UL PPL", "{:.2f}"),
    ("retention_ppl", "RT PPL", "{:.2f}"),
    ("unlearn_rouge_l", "UL RougeL", "{:.3f}"),
    ("retention_rouge_l", "RT RougeL", "{:.3f}"),
    ("unlearn_items", "n UL", "{}"),
    ("retention_items", "n RT", "{}"),
    ("errors", "errors", "{}"),
)
PERCENT = {
    "unlearn_success",
    "retention_success",
    "avg_success",
    "unlearn_success_token",
    "retention_success_token",
    "attack_unlearn_success",
    "leak_success",
}


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """The summary table, successes in percent like the paper's Table 2."""
    columns = list(COLUMNS)
    if any(row.get("prompt", DEFAULT_PROMPT) != DEFAULT_PROMPT for row in rows):
        columns.insert(2, ("prompt", "prompt", "{}"))
    for key, title in (
        ("attack_unlearn_success", "UL Succ (attack)"),
        ("leak_success", "Leak Succ"),
    ):
        if any(key in row for row in rows):
            columns.insert(columns.index(("unlearn_items", "n UL", "{}")), (key, title, "{:.2f}"))
    header = [title for _, title, _ in columns]
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("-")
            else:
                cells.append(fmt.format(value * 100 if key in PERCENT else value))
        body.append(cells)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body)]
    text_columns = 3 if columns[2][0] == "prompt" else 2
    lines = [
        "  ".join(
            cell.rjust(width) if i >= text_columns else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        )
        for cells in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines
