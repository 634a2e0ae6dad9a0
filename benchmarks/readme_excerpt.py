"""Regenerate README's "What a run prints" excerpt from a real run of the main command.

    python benchmarks/readme_excerpt.py            # rewrite README.md between its markers
    python benchmarks/readme_excerpt.py --check    # exit 1 if README's excerpt differs

It runs ``pytest suites/privacy --unlearn-method=none,gradient_ascent,memflex`` (README's
command 1) in a fresh cache, one torch thread, and copies the end of its terminal output
(from the summary on) between ``<!-- run-excerpt:start -->`` and ``<!-- run-excerpt:end -->``.
The figures depend on the CPU's float rounding (the tiny model sits on a learning-rate
cliff): another machine may print other digits.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- run-excerpt:start -->", "<!-- run-excerpt:end -->"
COMMAND = ["suites/privacy", "--unlearn-method=none,gradient_ascent,memflex"]


def run_excerpt() -> str:
    """The terminal output of the main command, from the summary on."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *COMMAND,
                f"--unlearn-cache-dir={cache}",
                "-p",
                "no:cacheprovider",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    output = completed.stdout
    if completed.returncode not in (0, 1) or "unlearning summary" not in output:
        sys.exit(f"the run failed (exit {completed.returncode}):\n{output[-3000:]}")
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "unlearning summary" in line)
    end = next(
        (i for i in range(start, len(lines)) if "short test summary" in lines[i]), len(lines)
    )
    return "\n".join(lines[start:end]).rstrip() + "\n" + lines[-1] + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    excerpt = run_excerpt()
    block = f"{START}\n```\n$ pytest {' '.join(COMMAND)}\n...\n{excerpt}```\n{END}"
    text = README.read_text()
    new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.DOTALL)
    if args.check:
        sys.exit(0 if new == text else "README's run excerpt differs from this run")
    README.write_text(new)
    print(excerpt)


if __name__ == "__main__":
    main()
