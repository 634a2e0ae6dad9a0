"""Fidelity to the paper: every method on one data set, the paper's Table 2 beside it, and
the paper's qualitative findings checked against the measured numbers.

Runs the real plugin path (`pytest <suite> --unlearn-method=... --unlearn-json=...`) in a
subprocess, then writes a Markdown report.

    python benchmarks/fidelity.py --data ../shared/knowundo/privacy --out docs/results.md

With ``--prompts plain,helpful`` the items are also asked after the paper's Finding 2
prompt ("You are a helpful assistant."), and the report checks that finding: MemFlex's
successes move less than GA+GD ID's when it is prepended.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = (
    "none",
    "gradient_ascent",
    "random_labels",
    "adversarial",
    "ga_gd_id",
    "ga_gd_ood",
    "ga_kl_id",
    "ga_kl_ood",
    "memflex",
)
# Paper Table 2, LLaMA-2-7B-Chat, privacy: (Unlearn Success, Retention Success) in percent.
PAPER = {
    "none": (0.00, 100.0),
    "gradient_ascent": (96.56, 2.50),
    "random_labels": (99.03, 1.34),
    "adversarial": (46.21, 55.83),
    "ga_gd_id": (90.38, 66.02),
    "ga_gd_ood": (97.67, 2.44),
    "ga_kl_id": (97.74, 2.30),
    "ga_kl_ood": (94.15, 4.25),
    "memflex": (82.95, 81.80),
}
COLLAPSE = 0.5  # Retention Success below this counts as "collapsed"
PLAIN = "plain"  # the prompt variant of the paper's tables: the question alone
# Finding 2: with "You are a helpful assistant..." prepended, GA+GD ID's performance drops
# while MemFlex's stays stable.
STABLE, UNSTABLE = "memflex", "ga_gd_id"
TIE = 1e-9  # shares closer than this are equal


def run_suite(args: argparse.Namespace, report: Path) -> tuple[int, float]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        args.suite,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--unlearn-method={args.methods}",
        f"--model={args.model}",
        f"--unlearn-data={args.data}",
        f"--unlearn-seed={args.seed}",
        f"--unlearn-seeds={args.seeds}",
        f"--unlearn-json={report}",
    ]
    if args.prompts != PLAIN:
        command.append(f"--unlearn-prompts={args.prompts}")
    if args.config:
        command.append(f"--unlearn-config={args.config}")
    if args.cache_dir:
        command.append(f"--unlearn-cache-dir={args.cache_dir}")
    started = time.perf_counter()
    status = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL).returncode
    return status, time.perf_counter() - started


# The two criteria a success can be measured under, and the summary row's keys of each:
# "whole-answer" (the item tests' pass rates: every answer token the argmax, per item) and
# "token-share" (the reference code's figure, which every number of the paper's tables is:
# each item's share of answer tokens that are the argmax, averaged over items).
CRITERIA = {
    "whole-answer": ("unlearn_success", "retention_success", "avg_success"),
    "token-share": ("unlearn_success_token", "retention_success_token", "avg_success_token"),
}
# The criterion of every comparison with the paper, findings check and tuning rule.
PAPER_CRITERION = "token-share"


def successes(row: dict, criterion: str) -> tuple[float, float, float]:
    """(Unlearn, Retention, Avg) success of a summary row under ``criterion``; a report
    written before ``avg_success_token`` existed gets the mean of the two token figures."""
    unlearn_key, retention_key, avg_key = CRITERIA[criterion]
    unlearn, retention = row[unlearn_key], row[retention_key]
    return unlearn, retention, row.get(avg_key, (unlearn + retention) / 2)


def findings(rows: dict[str, dict], criterion: str) -> list[tuple[str, bool, str]]:
    """The paper's qualitative findings, each with whether it holds under ``criterion`` and
    the evidence."""

    def retention(method: str) -> float:
        return successes(rows[method], criterion)[1]

    def average(method: str) -> float:
        return successes(rows[method], criterion)[2]

    checks = []
    collapsing = [
        m
        for m in ("gradient_ascent", "random_labels", "ga_gd_ood", "ga_kl_id", "ga_kl_ood")
        if m in rows
    ]
    for method in collapsing:
        value = retention(method)
        checks.append(
            (
                f"{method} collapses Retention Success (< {COLLAPSE:.0%})",
                value < COLLAPSE,
                f"retention {value:.1%}",
            )
        )
    if "ga_gd_id" in rows and collapsing:
        best_collapsing = max(retention(m) for m in collapsing)
        value = retention("ga_gd_id")
        checks.append(
            (
                "ga_gd_id keeps part of Retention Success (more than every collapsing method)",
                value > best_collapsing,
                f"retention {value:.1%} vs best of the others {best_collapsing:.1%}",
            )
        )
    if "memflex" in rows:
        others = {m: average(m) for m in rows if m not in ("memflex", "none")}
        best_other = max(others, key=others.__getitem__) if others else None
        value = average("memflex")
        if best_other:
            checks.append(
                (
                    "memflex has the best average success",
                    value > others[best_other],
                    f"memflex {value:.1%} vs best other ({best_other}) {others[best_other]:.1%}",
                )
            )
    return checks


def stability(
    plain: dict[str, dict], prompted: dict[str, dict], prompt: str, criterion: str
) -> tuple[str, bool, str] | None:
    """Paper Finding 2 under ``criterion``: MemFlex's Avg Success moves less than GA+GD
    ID's between the plain prompt and ``prompt``. None when either method is missing."""
    if not all(m in rows for m in (STABLE, UNSTABLE) for rows in (plain, prompted)):
        return None
    moved = {
        m: successes(prompted[m], criterion)[2] - successes(plain[m], criterion)[2]
        for m in (STABLE, UNSTABLE)
    }
    evidence = ", ".join(
        f"{m} {successes(plain[m], criterion)[2]:.1%} -> "
        f"{successes(prompted[m], criterion)[2]:.1%} ({100 * moved[m]:+.1f} points)"
        for m in (STABLE, UNSTABLE)
    )
    return (
        f"{STABLE} moves less than {UNSTABLE} under the {prompt} prompt (Finding 2)",
        # Equal moves (whole-answer moves are multiples of one item) are not "less", however
        # the float subtraction rounds them.
        abs(moved[STABLE]) < abs(moved[UNSTABLE]) - TIE,
        evidence,
    )


def verdict_row(claim: str, share: tuple[bool, str], whole: tuple[bool, str]) -> str:
    """Markdown: one finding's verdict and evidence under the token share, then
    whole-answer."""
    cells = [
        f"{'holds' if holds else '**does not hold**'} ({evidence})"
        for holds, evidence in (share, whole)
    ]
    return f"| {claim} | {' | '.join(cells)} |"


def prompt_table(by_prompt: dict[str, dict[str, dict]]) -> list[str]:
    """Markdown: every method under every prompt variant, both criteria, then Finding 2's
    verdict for each variant other than the plain one."""
    lines = [
        "Each prompt variant (`--unlearn-prompts`), successes in percent, token share then "
        "whole-answer (UL / RT / Avg):",
        "",
        "| method | prompt | token share | whole-answer |",
        "|---|---|---|---|",
    ]
    for method in by_prompt[PLAIN]:
        for prompt, rows in by_prompt.items():
            if method in rows:
                cells = [
                    " / ".join(f"{v:.1%}" for v in successes(rows[method], criterion))
                    for criterion in (PAPER_CRITERION, "whole-answer")
                ]
                lines.append(f"| {method} | {prompt} | {' | '.join(cells)} |")
    checks = [
        [stability(by_prompt[PLAIN], rows, prompt, c) for c in (PAPER_CRITERION, "whole-answer")]
        for prompt, rows in by_prompt.items()
        if prompt != PLAIN
    ]
    if any(check is not None for pair in checks for check in pair):
        lines += ["", "| finding | token share (the paper's) | whole-answer |", "|---|---|---|"]
        for share, whole in checks:
            if share is not None and whole is not None:
                lines.append(verdict_row(share[0], share[1:], whole[1:]))
    return lines


def interval_table(rows: dict[str, dict], criterion: str) -> list[str]:
    """Markdown: each method's successes under ``criterion`` with their intervals, and each
    seed's where the report has them."""
    keys = CRITERIA[criterion]
    # A seed's token-share figures are in reports written since they were added.
    with_seeds = all(
        keys[0] in figures for row in rows.values() for figures in row["per_seed"].values()
    )
    lines = [
        f"Means over seeds with 95% intervals (percentile bootstrap over seeds and items, "
        f"`pytest_unlearn/stats.py`), in percent, under the {criterion} criterion:",
        "",
        "| method | Unlearn Succ | Retention Succ | Avg |"
        + (" per seed (UL / RT) |" if with_seeds else ""),
        "|---|---|---|---|" + ("---|" if with_seeds else ""),
    ]
    for method, row in rows.items():
        cells = []
        for key, value in zip(keys, successes(row, criterion)):
            each = row["intervals"].get(key)
            cells.append(
                f"{value:.1%} [{each['lower']:.1%}, {each['upper']:.1%}]"
                if each
                else f"{value:.1%}"
            )
        if with_seeds:
            cells.append(
                "; ".join(
                    f"{seed}: {figures[keys[0]]:.1%} / {figures[keys[1]]:.1%}"
                    for seed, figures in row["per_seed"].items()
                )
            )
        lines.append(f"| {method} | {' | '.join(cells)} |")
    return lines


def side_by_side(rows: dict[str, dict]) -> list[str]:
    """Markdown: every method under both criteria with the paper beside it, then each
    finding's verdict under both (the paper's own criterion, the token share, first)."""
    lines = [
        "Successes under both criteria, in percent: **token share** (the reference code's "
        "figure, which the paper's tables report; the comparison with the paper uses it) and "
        "**whole-answer** (the item tests' pass rates: an item counts only when every answer "
        "token is the argmax).",
        "",
        "| method | UL token share | RT token share | Avg token share | UL whole-answer | "
        "RT whole-answer | Avg whole-answer | paper UL / RT / Avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, row in rows.items():
        share = successes(row, "token-share")
        whole = successes(row, "whole-answer")
        paper = PAPER.get(method)
        lines.append(
            f"| {method} | "
            + " | ".join(f"{value:.1%}" for value in (*share, *whole))
            + " | "
            + (
                f"{paper[0]:.1f} / {paper[1]:.1f} / {(paper[0] + paper[1]) / 2:.1f} |"
                if paper
                else "- |"
            )
        )
    share_checks = findings(rows, "token-share")
    whole_checks = findings(rows, "whole-answer")
    lines += [
        "",
        "Findings of the paper, checked on these numbers under both criteria:",
        "",
        "| finding | token share (the paper's) | whole-answer |",
        "|---|---|---|",
    ]
    for (claim, share_holds, share_evidence), (_, whole_holds, whole_evidence) in zip(
        share_checks, whole_checks, strict=True
    ):
        lines.append(
            verdict_row(claim, (share_holds, share_evidence), (whole_holds, whole_evidence))
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--suite", default="suites/privacy")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", default="0")
    parser.add_argument("--seeds", default="1", help="--unlearn-seeds: seeds per method")
    parser.add_argument("--config", default="")
    parser.add_argument("--cache-dir", default="", help="--unlearn-cache-dir")
    parser.add_argument(
        "--prompts", default=PLAIN, help="--unlearn-prompts; plain must be among them"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if PLAIN not in args.prompts.split(","):
        parser.error(
            f"--prompts {args.prompts!r} lacks {PLAIN}: the tables and the findings are "
            f"on the plain prompt, so add it (for example --prompts {PLAIN},{args.prompts})"
        )
    report = args.out.with_suffix(".json")
    status, seconds = run_suite(args, report)
    if status > 1:
        raise SystemExit(f"the suite run failed with exit status {status}")
    summary = json.loads(report.read_text())
    # The per-item outcomes (megabytes over several seeds) stay out of the repository: the
    # committed report keeps the run, the rows (with intervals) and the verdicts.
    report.write_text(
        json.dumps({key: value for key, value in summary.items() if key != "items"}, indent=1)
        + "\n"
    )
    by_prompt: dict[str, dict[str, dict]] = {}
    for row in summary["rows"]:
        by_prompt.setdefault(row.get("prompt", PLAIN), {})[row["method"]] = row
    rows = by_prompt[PLAIN]
    command = " ".join(["python", "benchmarks/fidelity.py", *sys.argv[1:]])
    seeds = ", ".join(str(seed) for seed in summary["run"]["seeds"])
    plural = "s" if len(summary["run"]["seeds"]) > 1 else ""
    lines = [
        f"### {args.suite} on {args.data}, model {args.model}, seed{plural} {seeds}",
        "",
        f"Command: `{command}` ({seconds:.0f} s on {platform.machine()}, Python "
        f"{platform.python_version()}; what the cache already held was loaded, not "
        "rebuilt). Report (without the per-item outcomes): "
        f"`{report.name}`.",
        "",
        "| method | UL whole-answer | RT whole-answer | Avg whole-answer | UL token share | "
        "RT token share | UL PPL | RT PPL | paper UL / RT |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, row in rows.items():
        paper = PAPER.get(method)
        lines.append(
            f"| {method} | {row['unlearn_success']:.1%} | {row['retention_success']:.1%} | "
            f"{row['avg_success']:.1%} | {row['unlearn_success_token']:.1%} | "
            f"{row['retention_success_token']:.1%} | {row['unlearn_ppl']:.3g} | "
            f"{row['retention_ppl']:.3g} | "
            + (f"{paper[0]:.1f} / {paper[1]:.1f} |" if paper else "- |")
        )
    if any(row.get("intervals") for row in rows.values()):
        for criterion in (PAPER_CRITERION, "whole-answer"):
            lines += ["", *interval_table(rows, criterion)]
    verdicts = [
        (domain, verdict, criterion)
        for key, criterion in (
            ("localization_verdict_token", "the token share"),
            ("localization_verdict", "the item tests' pass rates"),
        )
        for domain, verdict in summary.get(key, {}).items()
    ]
    for domain, verdict, criterion in verdicts:
        lines += [
            "",
            f"Does MemFlex's localization do the work ({domain}, on {criterion})? The "
            "plugin's verdict, as printed at the end of the run:",
            "",
            "```",
            *verdict["lines"],
            "```",
        ]
    lines += ["", *side_by_side(rows)]
    if len(by_prompt) > 1:
        lines += ["", *prompt_table(by_prompt)]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
