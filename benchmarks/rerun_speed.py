"""Time the privacy suite twice in a row with an empty cache: the first run injects,
unlearns and scores; the second must load everything from the cache.

    python benchmarks/rerun_speed.py [--method gradient_ascent] [--suite suites/privacy]

Prints both wall times and their ratio, measured side by side in one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_run(command: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    status = subprocess.run(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode
    return time.perf_counter() - started, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradient_ascent")
    parser.add_argument("--suite", default="suites/privacy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        report = Path(cache) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            args.suite,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--unlearn-method={args.method}",
            "--model=tiny",
            "--unlearn-data=builtin",
            f"--unlearn-json={report}",
            f"--unlearn-cache-dir={cache}",
        ]
        first, first_status = timed_run(command)
        first_rows = json.loads(report.read_text())["rows"]
        second, second_status = timed_run(command)
        second_rows = json.loads(report.read_text())["rows"]
    print(
        f"command: {' '.join(command[1:-2])} --unlearn-json=<report> "
        "--unlearn-cache-dir=<fresh temporary dir>"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"first run (build and score everything): {first:6.1f} s (exit status {first_status})")
    print(f"second run (all from cache):            {second:6.1f} s (exit status {second_status})")
    print(f"second / first: {second / first:.3f} (target < 0.10)")
    print("same metrics in both runs:", first_rows == second_rows)
    for row in second_rows:
        print(
            f"  {row['method']:16} unlearn_success {row['unlearn_success']:.3f} "
            f"retention_success {row['retention_success']:.3f}"
        )


if __name__ == "__main__":
    main()
