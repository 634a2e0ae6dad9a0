"""What the plugin prints: progress lines while models build, and the summary at the end
(the numbers come from ``report.py``, the verdicts from ``stats.py``; this module only
formats them)."""

from __future__ import annotations

import textwrap
import time
from typing import Any

import pytest

from .distributed import main_process
from .membership_report import membership_lines
from .session import UnlearnSession
from .tables import beyond_table, interval_table, paper_table
from .vocabulary import ATTACK, DEFAULT_PROMPT, DOMAINS, LEAK, RECALL

# The summary's lines fit this many columns.
WIDTH = 120


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
    header: bool = False,
) -> None:
    """The end of the terminal report, after pytest's own summary: build-only lines, then
    the tables, the general tasks, the baseline comparison, the verdicts and the gate. Every
    line fits 120 columns; with -q only the paper's table and the gate are printed.
    ``header``: the run's settings first (under xdist, where they were not printed after
    collection)."""
    quiet = terminal.config.get_verbosity() < 0
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
    if summary["rows"]:
        terminal.write_sep("=", "unlearning summary")
        if header:
            for line in unlearn.settings.header_lines():
                terminal.write_line(line)
        for line in paper_table(summary["rows"]):
            terminal.write_line(line)
        if not quiet:
            _write_details(terminal, unlearn, summary, plots_error)
    if not quiet:
        _write_general(terminal, unlearn, summary)
        if summary.get("membership"):
            terminal.write_sep("=", "membership inference against the oracle (retrain)")
            for line in membership_lines(summary["membership"]):
                terminal.write_line(line)
        _write_comparison(terminal, summary)
        _write_verdicts(terminal, summary)
    _write_gate(terminal, summary)
    if saved:
        terminal.write_line(f"baseline saved: {saved}")


def _write_details(
    terminal: Any, unlearn: UnlearnSession, summary: dict[str, Any], plots_error: str
) -> None:
    """The figures beyond the paper, the intervals, the methods' regions, the findings, a
    legend and where the reports went."""
    rows = summary["rows"]
    for block in (beyond_table(rows), interval_table(rows)):
        if block:
            terminal.write_line("")
            for line in block:
                terminal.write_line(line)
    verbose = terminal.config.get_verbosity() > 0
    terminal.write_line("")
    for line in _regions(rows, verbose) + _findings(summary["items"]):
        _write_wrapped(terminal, line)
    settings = unlearn.settings
    _write_wrapped(
        terminal,
        f"Unlearn, Retention, Avg: pass rates of the item tests (criterion "
        f"{settings.criterion}, paper Eq. 3-4); UL tok, RT tok, Avg tok: the token "
        "share (each item's share of answer tokens that are the argmax, averaged over items: "
        "the reference's figure, which the paper's tables report); PPL: paper Eq. 5; RougeL: "
        "ROUGE-L F of "
        "greedy generations; After attack: forgotten after the relearning attack; No leak: "
        "no sensitive string in the generations.",
    )
    run = summary["run"]
    if run.get("build_seconds") is not None:
        terminal.write_line(
            f"models built or loaded before the first test: {run['build_seconds']:.0f} s of "
            f"the run's {run['seconds']:.0f} s (the tests' own times leave it out)"
        )
    for path in summary.get("plots", []):
        terminal.write_line(f"plot: {path}")
    if plots_error:
        terminal.write_line(f"ERROR: {plots_error}", red=True)
    if settings.json_path is not None:
        terminal.write_line(f"JSON report: {settings.json_path}")


def _regions(rows: list[dict[str, Any]], verbose: bool) -> list[str]:
    """The tensors each localizing method trained (their names with -v)."""
    lines, shown = [], set()
    for row in rows:
        region = (row.get("method_log") or {}).get("region")
        if not region or (row["method"], row["domain"]) in shown:
            continue
        shown.add((row["method"], row["domain"]))
        how = (
            f"control {region['control']}"
            if region.get("control")
            else f"{region['rule']} rule, mu {region['mu']:.4g}, sigma {region['sigma']:.4g}"
        )
        names = f": {', '.join(region['selected'])}" if verbose else " (-v lists them)"
        lines.append(
            f"{row['method']} {row['domain']} region ({how}): {region['n_selected']} of "
            f"{region['n_tensors']} tensors, {region['fraction_parameters']:.1%} of the "
            f"trainable parameters{names}"
        )
    return lines


# What a failed item test found, by test kind and scope, in the order the summary says it.
FINDINGS = {
    (RECALL, "unlearn"): "still recalled",
    (RECALL, "retention"): "no longer recalled",
    (ATTACK, "unlearn"): "recalled again after the attack",
    (LEAK, "unlearn"): "written in a generation",
}


def _findings(items: list[dict[str, Any]]) -> list[str]:
    """One line per method and domain: how many item tests failed, by what they found
    (pytest lists each one with -rf or -v); errored tests are counted in the table's errors
    column, not here."""
    counts: dict[tuple[str, str, str], dict[str, list[int] | None]] = {}
    for item in items:
        what = FINDINGS.get((item["test"], item["scope"]))
        if what is None or item["outcome"] == "skipped" and item.get("documented_skip"):
            continue
        tally = counts.setdefault(
            (item["method"], item["domain"], item["prompt"]), dict.fromkeys(FINDINGS.values())
        )
        failed, total = tally[what] or [0, 0]
        ran = item["outcome"] in ("passed", "failed")  # errors and skips apart
        tally[what] = [failed + (item["outcome"] == "failed"), total + ran]
    lines = []
    for (method, domain, prompt), tally in counts.items():
        parts = [
            f"{counted[0]} of {counted[1]} {what}"
            for what, counted in tally.items()
            if counted and counted[1]
        ]
        if not parts:
            continue
        where = domain if prompt == DEFAULT_PROMPT else f"{domain}, prompt {prompt}"
        lines.append(f"findings of {method} ({where}): {'; '.join(parts)}")
    return lines


def _write_wrapped(terminal: Any, text: str) -> None:
    for line in textwrap.wrap(text, width=WIDTH, subsequent_indent="  "):
        terminal.write_line(line)


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
    for change in comparison.get("privleak", []):
        terminal.write_line(
            f"PrivLeak {change['method']} {change['domain']}: {change['before']:+.3f} -> "
            f"{change['now']:+.3f} ({change['change']:+.3f})"
        )


def _write_verdicts(terminal: Any, summary: dict[str, Any]) -> None:
    for key, criterion in (
        ("localization_verdict", "item tests"),
        ("localization_verdict_token", "token share"),
    ):
        for where, verdict in summary.get(key, {}).items():
            subject = verdict.get("subject") or verdict["method"]
            terminal.write_sep(
                "-",
                f"does {verdict['method']}'s {subject} do the work? ({where}, {criterion})"
                if subject != verdict["method"]
                else f"does {verdict['method']} beat its controls? ({where}, {criterion})",
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
        line = f"{'ok  ' if check['passed'] else 'FAIL'} {check['check']}"
        for part in textwrap.wrap(line, width=WIDTH, subsequent_indent="     "):
            terminal.write_line(part)
