"""The verdicts under both criteria, recomputed from committed reports: for each report
(``--unlearn-json``, as ``benchmarks/fidelity.py`` commits it), every method's successes
under the token share (the reference code's figure, which the paper's tables report) and
under whole-answer (the item tests' pass rates), the paper beside them, and each of the
paper's findings checked under both.

The block is written into the Markdown page of each report, between the markers
``<!-- criteria:start -->`` and ``<!-- criteria:end -->`` (appended the first time), so the
pages never carry a figure typed by hand:

    python benchmarks/criteria.py docs/results-privacy-tiny.json docs/results-privacy-seeds.json \\
        docs/results-privacy-seeds-lr3e-4.json

Each report's page is the file beside it with the suffix .md; ``--also PAGE`` writes the
first report's block into another page too (docs/results.md). A page that
``benchmarks/fidelity.py`` wrote with both criteria already (its reports since the token
share became the paper's criterion) is left as it is: the block would repeat its tables.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fidelity import PAPER_CRITERION, interval_table, side_by_side  # noqa: E402

START, END = "<!-- criteria:start -->", "<!-- criteria:end -->"
BLOCK = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)


def block(report: Path, command: str) -> list[str]:
    """The Markdown block of one report, naming the command that wrote it."""
    summary = json.loads(report.read_text())
    rows = {row["method"]: row for row in summary["rows"]}
    lines = [
        START,
        f"#### Under both criteria (`{report.name}`)",
        "",
        f"Recomputed from the report by `{command}`.",
        "",
        *side_by_side(rows),
    ]
    if any(row.get("intervals") and len(row.get("seeds", [])) > 1 for row in rows.values()):
        lines += ["", *interval_table(rows, PAPER_CRITERION)]
    return [*lines, END]


def write_block(page: Path, lines: list[str]) -> None:
    """Replace the page's block (or append it) with ``lines``."""
    text = page.read_text() if page.exists() else ""
    new = "\n".join(lines)
    if BLOCK.search(text):
        text = BLOCK.sub(lambda _: new, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + new + "\n"
    page.write_text(text)


def written_with_both_criteria(page: Path) -> bool:
    """Whether the page, outside any block of this script, has fidelity.py's side-by-side
    table of both criteria."""
    if not page.exists():
        return False
    outside = BLOCK.sub("", page.read_text())
    return side_by_side({})[0] in outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--also", type=Path, action="append", default=[])
    args = parser.parse_args()
    command = " ".join(["python", "benchmarks/criteria.py", *sys.argv[1:]])
    for index, report in enumerate(args.reports):
        lines = block(report, command)
        page = report.with_suffix(".md")
        if written_with_both_criteria(page):
            print(f"{page}: written by fidelity.py with both criteria; left as it is")
        else:
            write_block(page, lines)
        if index == 0:
            for page in args.also:
                write_block(page, lines)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
