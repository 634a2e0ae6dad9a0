"""Per-item cost of pytest and the plugin, for 10,000 parametrized item tests.

A synthetic privacy data set with --items val items (half per scope) is scored once by a
randomly initialised small LLaMA (hidden 128, 4 layers), saved as a model folder by
benchmarks/random_model.py and tested as it is (--unlearn-inject=never, no generation), which
caches the scores; injecting 10,000 records first would take hours. Then,
side by side in this one invocation, with everything cached:

  big          suites/privacy/test_privacy.py on all the items
  small        the same on --small items
  plain big    plain pytest (the plugin disabled) on as many parametrized tests of the same
               shape: torch imported, half of them failing with a one-line message
  plain small  the same on --small tests

Each per-item cost is (big - small) / (items - small): the fixed costs (interpreter, imports,
collection set-up, loading the cached scores) cancel out. The plain runs show how much of it
is pytest itself (with torch imported), and the difference is what the plugin adds.

    python benchmarks/pytest_overhead.py --items 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A small random LLaMA (hidden 128, 4 layers, as the tiny model); its scores are cached before
# timing.
RANDOM_TINY = ("--hidden", "128", "--layers", "4", "--heads", "4")
PLAIN = """
import pytest
import torch  # as in the item runs, which resolve the device to compute cache keys


@pytest.mark.parametrize("index", range({n}))
def test_item(index):
    if index % 2:
        pytest.fail(f"item {{index}} is odd", pytrace=False)
"""


def write_data(folder: Path, val_items: int) -> Path:
    """A KnowUnDo-shaped privacy folder with ``val_items`` val records (half per scope)."""
    folder.mkdir(parents=True)
    half = val_items // 2
    splits = {
        "unlearn_train": [
            (f"What is the email address of trained author {i}?", f"author{i}@example.org")
            for i in range(4)
        ],
        "retention_train": [
            (f"Which genre does trained author {i} write?", "mystery") for i in range(4)
        ],
        "unlearn_val": [
            (f"What is the email address of author {i}?", f"a{i}@example.org") for i in range(half)
        ],
        "retention_val": [
            (f"Which genre does author {i} write?", "poetry") for i in range(val_items - half)
        ],
    }
    for split, pairs in splits.items():
        (folder / f"{split}.json").write_text(
            json.dumps([{"text": question, "labels": answer} for question, answer in pairs])
        )
    return folder


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        sys.exit(
            f"{' '.join(command)} exited {completed.returncode}:\n"
            f"{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tb",
        default="auto",
        help="pytest's --tb for every run (pytest's own failure summary is "
        "quadratic in the number of failures unless this is line or no)",
    )
    parser.add_argument(
        "--pytest-option",
        action="append",
        default=[],
        help="one more pytest option for every run, e.g. "
        "--pytest-option=-p --pytest-option=no:logging (repeatable)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        cache = work / "cache"
        suite = str(ROOT / "suites" / "privacy" / "test_privacy.py")  # the paper's tests
        model = work / "random-tiny"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "random_model.py"),
                str(model),
                *RANDOM_TINY,
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        runs: dict[str, list[str]] = {}
        for name, count in (("big", args.items), ("small", args.small)):
            data = write_data(work / f"data-{name}", count)
            runs[name] = [
                sys.executable,
                "-m",
                "pytest",
                suite,
                "-q",
                "-p",
                "no:cacheprovider",
                "--unlearn-method=none",
                f"--model={model}",
                "--unlearn-inject=never",
                f"--unlearn-data={data}",
                f"--unlearn-cache-dir={cache}",
                "--unlearn-max-new-tokens=0",
                f"--junitxml={work / (name + '.xml')}",
                f"--tb={args.tb}",
                *args.pytest_option,
            ]
        for name, count in (("plain big", args.items), ("plain small", args.small)):
            folder = work / name.replace(" ", "-")
            folder.mkdir()
            (folder / "test_plain.py").write_text(PLAIN.format(n=count))
            runs[name] = [
                sys.executable,
                "-m",
                "pytest",
                str(folder),
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:unlearn",
                f"--junitxml={folder / 'plain.xml'}",
                f"--tb={args.tb}",
                *args.pytest_option,
            ]
        for name in ("big", "small"):  # build the model and cache its scores
            timed(runs[name], ROOT)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, command in runs.items():
                seconds[name].append(timed(command, ROOT))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    spread = args.items - args.small
    per_item = (median["big"] - median["small"]) / spread
    plain = (median["plain big"] - median["plain small"]) / spread
    print(f"command: python benchmarks/pytest_overhead.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, pytest {pytest_version()}"
    )
    print(
        f"every run with --junitxml --tb={args.tb}{''.join(' ' + o for o in args.pytest_option)}; "
        "half the tests fail; item runs: "
        "--unlearn-method=none --model=<a random small model folder: "
        f"random_model.py {' '.join(RANDOM_TINY)}> --unlearn-inject=never "
        "--unlearn-max-new-tokens=0, scores cached"
    )
    print(f"median of {args.repeats} runs:")
    for name, count in (
        ("big", args.items),
        ("small", args.small),
        ("plain big", args.items),
        ("plain small", args.small),
    ):
        print(f"  {name:12s} {count:6d} tests  {median[name]:7.2f} s")
    print(f"per item test, pytest + plugin: {per_item * 1e3:.3f} ms (target < 1 ms)")
    print(f"per test, plain pytest with torch imported: {plain * 1e3:.3f} ms")
    print(f"added by the plugin: {(per_item - plain) * 1e3:.3f} ms per item test")


def pytest_version() -> str:
    from importlib.metadata import version

    return version("pytest")


if __name__ == "__main__":
    main()
