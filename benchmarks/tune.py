"""The fair tuning protocol: every method gets the same grid of learning rates, chosen by
the same rule on a dev set split off the train records; the val items are the test.

1. Split a dev set off the domain's train records, by person, seeded and content-hashed
   (``pytest_unlearn.dev_split``): the dev data's train splits hold the other persons'
   train records, its val splits the dev persons'. The data's own val records are not in
   it, so neither injection nor unlearning nor the choice sees them.
2. For each learning rate of the grid, run every method on the dev data through the
   plugin (``pytest suites/privacy/test_privacy.py --unlearn-data=DEV``), one run per grid
   point with every method in it; ``none`` gives the vanilla figures.
3. The rule, the same for every method (``choose``): among the grid points whose dev
   Retention Success is at least ``--retention-floor`` (default 0.9) times the vanilla
   model's, the one with the best dev Avg Success; on a tie the smaller lr. Why: Avg
   Success alone rewards a collapsed model (100% forgotten, 0% kept averages 50, above
   an honest 40/55); a retention floor relative to the vanilla model says what "kept"
   means on any model, and the paper's finding is that retention is what unlearning
   loses. Where no point keeps the floor, the best Avg Success, marked as such. The
   successes are the token share (the reference code's figure, which the paper's tables
   report, so that a preset tuned here is comparable with the paper's settings); with
   ``--rule-criterion=whole-answer`` the item tests' pass rates. Both are reported.
4. Test: run each method at its chosen point and the grid points either side of it on the
   real data (train on its train splits, test on its val items) and report them, so that
   a reader sees whether a ranking is stable or sits on a cliff. The test figures choose
   nothing.

It writes the choice as an --unlearn-config file (``--out``: one section per method with
its lr, the grid, the rule and every dev and test figure in its comments) and a Markdown
report (``--report``) with the exact command.

    python benchmarks/tune.py --model tiny --data builtin --grid 1e-4,3e-4,1e-3 \
        --methods gradient_ascent,ga_gd_id,npo,memflex \
        --out methods/tuned/tiny-builtin.yaml --report docs/tuning-tiny-builtin.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SUITE = "suites/privacy/test_privacy.py"
# The criteria the rule can read: the reference code's token share (what the paper's
# tables report, the default) or the item tests' whole-answer pass rates.
TOKEN_SHARE, WHOLE_ANSWER = "token-share", "whole-answer"


@dataclass(frozen=True)
class Figures:
    """One method at one grid point, in percent: the success shares the rule reads
    (``unlearn``, ``retention``: the token share by default, ``--rule-criterion``) and the
    other criterion's beside them, for the report."""

    unlearn: float
    retention: float
    other_unlearn: float | None = None
    other_retention: float | None = None

    @property
    def average(self) -> float:
        return (self.unlearn + self.retention) / 2


@dataclass(frozen=True)
class Choice:
    lr: float
    kept_floor: bool  # False: no grid point kept the retention floor


def choose(points: dict[float, Figures], vanilla_retention: float, floor: float) -> Choice:
    """The protocol's rule (module docstring, step 3) on one method's dev figures."""
    if not points:
        raise ValueError("no grid points to choose from")
    needed = floor * vanilla_retention
    kept = {lr: f for lr, f in points.items() if f.retention >= needed}
    pool = kept or points
    best = max(pool.items(), key=lambda item: (item[1].average, -item[0]))
    return Choice(best[0], bool(kept))


def neighbours(grid: Sequence[float], lr: float) -> list[float]:
    """The chosen lr and the grid points either side of it."""
    ordered = sorted(grid)
    index = ordered.index(lr)
    return ordered[max(index - 1, 0) : index + 2]


def points_to_test(grid: Sequence[float], choices: dict[str, Choice]) -> dict[float, list[str]]:
    """The test runs: each lr with the methods whose choice it is or neighbours, the only
    test figures the report shows."""
    wanted = {lr: [m for m, c in choices.items() if lr in neighbours(grid, c.lr)] for lr in grid}
    return {lr: at for lr, at in sorted(wanted.items()) if at}


def run_point(
    args: argparse.Namespace, data: str, lr: float, methods: Sequence[str], work: Path, tag: str
) -> dict[str, Figures]:
    """One plugin run: every method at learning rate ``lr`` on ``data``."""
    config = work / f"{tag}-{lr:g}.yaml"
    sections = yaml.safe_load(args.config.read_text()) if args.config else {}
    for method in methods:
        sections[method] = {**sections.get(method, {}), "lr": lr}
    config.write_text(yaml.safe_dump(sections))
    report = work / f"{tag}-{lr:g}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        args.suite,
        "-q",
        "-p",
        "no:cacheprovider",
        "--tb=no",
        f"--unlearn-method=none,{','.join(methods)}",
        f"--unlearn-config={config}",
        f"--unlearn-json={report}",
        f"--unlearn-data={data}",
        f"--model={args.model}",
        f"--unlearn-seed={args.seed}",
        "--unlearn-max-new-tokens=0",
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        *([f"--unlearn-cache-dir={args.cache_dir}"] if args.cache_dir else []),
        *([f"--unlearn-device={args.device}"] if args.device else []),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if not report.exists():
        raise SystemExit(
            f"tune.py: the run at lr {lr:g} on {data} wrote no report (exit status "
            f"{done.returncode}); its output ends:\n{(done.stdout + done.stderr)[-3000:]}"
        )
    rows = json.loads(report.read_text())["rows"]
    read, other = ("", "_token") if args.rule_criterion == WHOLE_ANSWER else ("_token", "")
    return {  # the report's shares, in percent
        row["method"]: Figures(
            100 * float(row[f"unlearn_success{read}"]),
            100 * float(row[f"retention_success{read}"]),
            100 * float(row[f"unlearn_success{other}"]),
            100 * float(row[f"retention_success{other}"]),
        )
        for row in rows
    }


def table(grid: Sequence[float], figures: dict[float, dict[str, Figures]], method: str) -> str:
    lines = []
    for lr in grid:
        f = figures[lr][method]
        lines.append(
            f"{lr:g}: unlearn {f.unlearn:.2f}, retention {f.retention:.2f}, avg {f.average:.2f}"
        )
    return "; ".join(lines)


def main() -> None:
    from pytest_unlearn.data import load_domain
    from pytest_unlearn.dev_split import dev_split, write_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--domain", default="privacy")
    parser.add_argument("--suite", default=SUITE)
    parser.add_argument("--methods", default="gradient_ascent,ga_gd_id,ga_kl_id,npo,memflex")
    parser.add_argument("--grid", default="1e-4,3e-4,1e-3", help="comma-separated lrs")
    parser.add_argument("--dev-share", type=float, default=0.2)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retention-floor", type=float, default=0.9)
    parser.add_argument(
        "--rule-criterion",
        choices=(TOKEN_SHARE, WHOLE_ANSWER),
        default=TOKEN_SHARE,
        help="the successes the rule reads: the token share (the reference code's figure, "
        "which the paper's tables report) or the whole-answer pass rates; both are reported",
    )
    parser.add_argument(
        "--config", type=Path, help="an --unlearn-config for every run (its lr keys replaced)"
    )
    parser.add_argument("--cache-dir", default="")
    parser.add_argument("--device", default="")
    parser.add_argument("--no-test", action="store_true", help="choose only, run no test")
    parser.add_argument("--out", type=Path, required=True, help="the --unlearn-config to write")
    parser.add_argument("--report", type=Path, help="a Markdown report to write")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m and m != "none"]
    grid = sorted(float(text) for text in args.grid.split(","))
    started = time.perf_counter()

    data = load_domain(args.data, args.domain)
    dev = dev_split(data, args.dev_share, args.split_seed)
    sizes = ", ".join(f"{split} {len(records)}" for split, records in dev.splits.items())
    print(f"dev split of {data.source}: {sizes} (share {args.dev_share}, seed {args.split_seed})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dev_folder = str(write_folder(dev, work / "dev"))
        dev_figures = {}
        for lr in grid:
            dev_figures[lr] = run_point(args, dev_folder, lr, methods, work, "dev")
            print(
                f"dev lr {lr:g}: "
                + ", ".join(
                    f"{m} {f.unlearn:.1f}/{f.retention:.1f}" for m, f in dev_figures[lr].items()
                ),
                flush=True,
            )
        vanilla = dev_figures[grid[0]]["none"].retention
        choices = {
            m: choose({lr: dev_figures[lr][m] for lr in grid}, vanilla, args.retention_floor)
            for m in methods
        }
        test_figures: dict[float, dict[str, Figures]] = {}
        command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])

        def write(done: str) -> None:
            # After the choice and after each test point, so that a run stopped at a time
            # limit leaves its choice and the test points it finished.
            elapsed = time.perf_counter() - started
            write_config(args, command, grid, methods, choices, dev_figures, vanilla, dev, elapsed)
            if args.report:
                write_report(
                    args,
                    command,
                    grid,
                    methods,
                    choices,
                    dev_figures,
                    test_figures,
                    vanilla,
                    dev,
                    elapsed,
                    done,
                )

        write("the dev figures and the choice; no test point yet")
        if not args.no_test:
            wanted = points_to_test(grid, choices)
            for number, (lr, at) in enumerate(wanted.items(), start=1):
                test_figures[lr] = run_point(args, args.data, lr, at, work, "test")
                print(f"test lr {lr:g} done ({', '.join(at)})", flush=True)
                write(f"{number} of {len(wanted)} test points")
    print(f"wrote {args.out}" + (f" and {args.report}" if args.report else ""))


def _rule(args: argparse.Namespace) -> str:
    return (
        f"the best dev Avg Success ({args.rule_criterion}) among the grid points whose dev "
        f"Retention Success ({args.rule_criterion}) is at least {args.retention_floor:g} x "
        "the vanilla model's; on a tie the smaller lr"
    )


def _other(args: argparse.Namespace) -> str:
    return WHOLE_ANSWER if args.rule_criterion == TOKEN_SHARE else TOKEN_SHARE


def write_config(
    args: argparse.Namespace,
    command: str,
    grid: Sequence[float],
    methods: Sequence[str],
    choices: dict[str, Choice],
    dev_figures: dict[float, dict[str, Figures]],
    vanilla: float,
    dev: Any,
    elapsed: float,
) -> None:
    header = [
        f"Learning rates tuned by benchmarks/tune.py for model {args.model} on {args.data} "
        f"({args.domain}), seed {args.seed}, in {elapsed:.0f} s:",
        f"  {command}",
        f"Dev set: {dev.source}; " + ", ".join(f"{s} {len(r)}" for s, r in dev.splits.items()),
        f"Grid (every method): {', '.join(f'{lr:g}' for lr in grid)}",
        f"Rule: {_rule(args)} (vanilla dev retention {vanilla:.2f}).",
        f"Dev figures (Unlearn / Retention / Avg Success, percent, {args.rule_criterion}):",
    ]
    for method in methods:
        note = "" if choices[method].kept_floor else " (no grid point kept the floor)"
        header.append(f"  {method}: chose {choices[method].lr:g}{note}")
        header.append(f"    {table(grid, dev_figures, method)}")
    body = yaml.safe_dump({m: {"lr": choices[m].lr} for m in methods}, sort_keys=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"# {line}\n" for line in header) + body)


def write_report(
    args: argparse.Namespace,
    command: str,
    grid: Sequence[float],
    methods: Sequence[str],
    choices: dict[str, Choice],
    dev_figures: dict[float, dict[str, Figures]],
    test_figures: dict[float, dict[str, Figures]],
    vanilla: float,
    dev: Any,
    elapsed: float,
    done: str,
) -> None:
    lines = [
        f"# Tuning: model {args.model}, data {args.data} ({args.domain})",
        "",
        f"Written by `benchmarks/tune.py` after {elapsed:.0f} s ({done}):",
        "",
        "```",
        command,
        "```",
        "",
        f"- Dev set: {dev.source}: "
        + ", ".join(f"{s} {len(r)}" for s, r in dev.splits.items())
        + " records (val = the dev persons' train records).",
        f"- Grid, the same for every method: lr {', '.join(f'{lr:g}' for lr in grid)}; "
        "every other field at its preset.",
        f"- Rule: {_rule(args)}. Vanilla dev Retention Success: {vanilla:.2f}.",
        "- Chosen: " + ", ".join(f"{m} {choices[m].lr:g}" for m in methods) + f" (`{args.out}`).",
        "",
        "Per method and lr: dev figures (which chose), then test figures (the val items, "
        "which chose nothing) at the chosen lr and its neighbours. Successes in percent, "
        f"{args.rule_criterion} (the rule's criterion), then {_other(args)} in parentheses; "
        "`*` marks the choice.",
        "",
        "| method | lr | dev UL | dev RT | dev Avg | test UL | test RT | test Avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        for lr in grid:
            t = test_figures.get(lr, {}).get(method)
            shown = _cells(t) if t is not None else "- | - | -"  # tested: choice, neighbours
            mark = "*" if lr == choices[method].lr else ""
            lines.append(
                f"| {method} | {lr:g}{mark} | {_cells(dev_figures[lr][method])} | {shown} |"
            )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n")


def _cells(f: Figures) -> str:
    """Unlearn, Retention and Avg Success, each with the other criterion's figure."""
    if f.other_unlearn is None or f.other_retention is None:
        return f"{f.unlearn:.2f} | {f.retention:.2f} | {f.average:.2f}"
    other_average = (f.other_unlearn + f.other_retention) / 2
    return (
        f"{f.unlearn:.2f} ({f.other_unlearn:.2f}) | {f.retention:.2f} "
        f"({f.other_retention:.2f}) | {f.average:.2f} ({other_average:.2f})"
    )


if __name__ == "__main__":
    main()
