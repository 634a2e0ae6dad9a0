"""Forgotten compared with never learned: the retrained oracle, membership inference and
PrivLeak, forget quality and quantized unlearn success, per method, over seeds.

Runs the real plugin path in a subprocess (``pytest suites/privacy/test_privacy.py
test_membership.py test_quantized.py --unlearn-method=retrain,... --unlearn-json=...``),
then writes a Markdown report and the JSON report (without the per-item outcomes).
Resumable: every model and score is cached, so a rerun loads what an interrupted one built.

    python benchmarks/membership.py --data ../shared/knowundo/privacy --seeds 3 \\
        --out docs/results-membership.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
METHODS = "retrain,none,gradient_ascent,ga_gd_id,npo,memflex"
SUITES = (
    "suites/privacy/test_privacy.py",
    "suites/privacy/test_membership.py",
    "suites/privacy/test_quantized.py",
)
ATTACKS = {"loss": "loss", "zlib": "zlib", "min_k": "min-k%", "min_k_plus_plus": "min-k%++"}


def cache_folder(args: argparse.Namespace) -> Path:
    """The run's cache folder: --cache-dir (relative to the working directory, as given),
    or the plugin's default in the repository. Absolute, because the plugin runs from the
    repository root."""
    return Path(args.cache_dir).resolve() if args.cache_dir else ROOT / ".unlearn_cache"


def run_suite(args: argparse.Namespace, report: Path) -> tuple[int, float, list[str]]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        *SUITES,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--unlearn-method={args.methods}",
        f"--model={args.model}",
        f"--unlearn-data={args.data}",
        f"--unlearn-seeds={args.seeds}",
        f"--unlearn-json={report}",
    ]
    if args.cache_dir:
        command.append(f"--unlearn-cache-dir={cache_folder(args)}")
    if args.config:
        command.append(f"--unlearn-config={args.config}")
    if args.max_new_tokens is not None:
        command.append(f"--unlearn-max-new-tokens={args.max_new_tokens}")
    # The run's terminal output (progress, findings, the summary) goes to a log in the
    # cache folder, to follow a long run with ``tail -f``.
    log = cache_folder(args) / "membership-run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {' '.join(command)} (output: {log})", flush=True)
    started = time.perf_counter()
    with log.open("w") as output:
        status = subprocess.run(command, cwd=ROOT, stdout=output).returncode
    return status, time.perf_counter() - started, command


def write_subset(data: str, sizes: str, folder: Path) -> Path:
    """The first records of each split of the privacy data ('builtin' or a folder)."""
    from pytest_unlearn.data import load_domain

    counts = [int(each) for each in sizes.split(",")]
    domain = load_domain(data, "privacy")
    folder.mkdir(parents=True, exist_ok=True)
    splits = ("unlearn_train", "unlearn_val", "retention_train", "retention_val")
    for split, count in zip(splits, counts, strict=True):
        records = [{"text": r.question, "labels": r.answer} for r in domain.splits[split]]
        (folder / f"{split}.json").write_text(json.dumps(records[:count], indent=1))
    return folder


def pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def interval(row: dict[str, Any], key: str, percent: bool = False) -> str:
    found = (row.get("intervals") or {}).get(key)
    if not found or found.get("lower") is None:
        return ""
    if percent:
        return f" [{found['lower']:.1%}, {found['upper']:.1%}]"
    return f" [{found['lower']:+.3f}, {found['upper']:+.3f}]"


def tables(summary: dict[str, Any]) -> list[str]:
    rows = summary["rows"]
    lines = [
        "| method | Unlearn Succ | Retention Succ | quant8 unlearn succ | quant4 unlearn succ |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {pct(row.get('unlearn_success'))}"
            f"{interval(row, 'unlearn_success', True)} | {pct(row.get('retention_success'))}"
            f"{interval(row, 'retention_success', True)} | "
            f"{pct(row.get('quant8_unlearn_success'))}"
            f"{interval(row, 'quant8_unlearn_success', True)} | "
            f"{pct(row.get('quant4_unlearn_success'))}"
            f"{interval(row, 'quant4_unlearn_success', True)} |"
        )
    membership = summary.get("membership") or []
    lines += [
        "",
        "AUC of forget set against holdout, per attack (mean over seeds, 95% interval):",
        "",
        "| method | " + " | ".join(f"AUC {name}" for name in ATTACKS.values()) + " |",
        "|---|" + "---|" * len(ATTACKS),
    ]
    first = next((m for m in membership if "privleak" in m), None)
    if first is not None:
        lines.append(
            "| retrain (oracle) | "
            + " | ".join(f"{first[f'oracle_auc_{a}']:.3f}" for a in ATTACKS)
            + " |"
        )
        lines.append(
            "| vanilla (none's model) | "
            + " | ".join(f"{first[f'vanilla_auc_{a}']:.3f}" for a in ATTACKS)
            + " |"
        )
    for entry in membership:
        if "privleak" not in entry:
            continue
        cells = []
        for attack in ATTACKS:
            found = entry["intervals"].get(f"auc_{attack}")
            extra = f" [{found['lower']:.3f}, {found['upper']:.3f}]" if found else ""
            cells.append(f"{entry[f'auc_{attack}']:.3f}{extra}")
        lines.append(f"| {entry['method']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "PrivLeak = (AUC_method - AUC_oracle) / AUC_oracle (min-k%, as MUSE), forget quality "
        "(KS test of the unlearn val items' answer log-likelihoods, method vs oracle), verdict:",
        "",
        "| method | PrivLeak (min-k%) | PrivLeak (min-k%++) | KS D | KS p (mean over seeds) | "
        "privacy_leak tests | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in membership:
        if "privleak" not in entry:
            tests = entry["tests"]
            lines.append(
                f"| {entry['method']} | - | - | - | - | {tests['skipped']} skipped | "
                f"{(entry.get('first_message') or '')[:100]} |"
            )
            continue
        tests = entry["tests"]
        lines.append(
            f"| {entry['method']} | {num(entry['privleak'])}"
            f"{interval(entry, 'privleak')} | {num(entry['privleak_min_k_plus_plus'])}"
            f"{interval(entry, 'privleak_min_k_plus_plus')} | "
            f"{entry['forget_quality_ks']:.3f} | {entry['forget_quality_p']:.3g} | "
            f"{tests['passed']} passed, {tests['failed']} failed | {entry['verdict']}; "
            f"forget quality {entry['forget_quality_verdict']} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--seeds", default="3")
    parser.add_argument("--cache-dir", default="")
    parser.add_argument("--config", default="", help="--unlearn-config (e.g. injection epochs)")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument(
        "--subset",
        default="",
        help="UT,UV,RT,RV: the first records of each split of --data (unlearn_train, "
        "unlearn_val, retention_train, retention_val), written to a folder in the cache",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    source = args.data
    if args.subset:
        source = f"{args.data} privacy, the first {args.subset} records of each split"
        folder = cache_folder(args) / "subset-data"
        args.data = str(write_subset(args.data, args.subset, folder))
    report = args.out.with_suffix(".json")
    status, seconds, _ = run_suite(args, report)
    if status > 1:
        raise SystemExit(f"the suite run failed with exit status {status}")
    summary = json.loads(report.read_text())
    report.write_text(
        json.dumps({key: value for key, value in summary.items() if key != "items"}, indent=1)
        + "\n"
    )
    command = " ".join(["python", "benchmarks/membership.py", *sys.argv[1:]])
    seeds = ", ".join(str(seed) for seed in summary["run"]["seeds"])
    membership = summary.get("membership") or []
    holdout = next((m for m in membership if "holdout_records" in m), {})
    lines = [
        f"### Forgotten vs never learned: {source}, model {args.model}, seeds {seeds}",
        "",
        f"Command: `{command}` ({seconds:.0f} s on {platform.machine()}, Python "
        f"{platform.python_version()}; what the cache already held was loaded, not rebuilt). "
        f"Report (without the per-item outcomes): `{report.name}`. Forget set: "
        f"{holdout.get('forget_records', '-')} records, holdout: "
        f"{holdout.get('holdout_records', '-')} records (`pytest_unlearn/holdout.py`). Means "
        "over seeds; intervals are 95% percentile bootstraps (successes: over seeds and "
        "items, `stats.py`; AUC and PrivLeak: over forget and holdout records, paired across "
        "seeds and the oracle, `membership_report.py`).",
        "",
        *tables(summary),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
