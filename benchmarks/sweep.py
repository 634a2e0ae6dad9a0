"""Sweep one config field of one method through the real plugin path, and print a table.

Each point is a full `pytest <suite> --unlearn-method=METHOD --unlearn-config=...` run in a
subprocess (the vanilla model comes from the cache after the first), so the figures are
those users see: the token share (the reference's figure, which the paper's tables report and
the tuning rule of methods/presets.py reads) and the item tests' whole-answer pass rates.

    python benchmarks/sweep.py --method gradient_ascent --field lr --values 1e-4,3e-4,1e-3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run_point(args: argparse.Namespace, value: float | int, workdir: Path) -> dict:
    config = workdir / f"config-{value}.yaml"
    config.write_text(yaml.safe_dump({args.method: {args.field: value}}))
    report = workdir / f"report-{value}.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        args.suite,
        "-q",
        "-p",
        "no:cacheprovider",
        f"--unlearn-method={args.method}",
        f"--unlearn-config={config}",
        f"--unlearn-json={report}",
        f"--unlearn-data={args.data}",
        f"--model={args.model}",
        f"--unlearn-seed={args.seed}",
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
    ]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if not report.exists():
        return {"error": "no report"}
    return json.loads(report.read_text())["rows"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--field", default="lr")
    parser.add_argument("--values", required=True, help="comma-separated numbers")
    parser.add_argument("--suite", default="suites/privacy")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--seed", default="0")
    args = parser.parse_args()
    print(
        f"sweep of {args.method}.{args.field} on {args.suite} (model {args.model}, data "
        f"{args.data}, seed {args.seed})"
    )
    print(
        f"{args.field:>10}  UL token share  RT token share  UL whole-answer  RT whole-answer"
        "  unlearn_ppl  retention_ppl"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.values.split(","):
            value = int(text) if text.isdigit() else float(text)
            row = run_point(args, value, Path(tmp))
            if "error" in row:
                print(f"{text:>10}  {row['error']}")
                continue
            print(
                f"{text:>10}  {row['unlearn_success_token']:14.3f}  "
                f"{row['retention_success_token']:14.3f}  {row['unlearn_success']:15.3f}  "
                f"{row['retention_success']:15.3f}  {row['unlearn_ppl']:11.3g}  "
                f"{row['retention_ppl']:13.3g}",
                flush=True,
            )


if __name__ == "__main__":
    main()
