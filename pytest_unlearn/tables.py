"""The summary as plain-text tables of at most 120 columns: the paper's figures, the
figures beyond the paper, and the successes with their intervals. Successes are in
percent, like the paper's Table 2."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .vocabulary import DEFAULT_PROMPT

Column = tuple[str, str, str]  # summary key, title, format

# The paper's Table 2 figures under both criteria: the item tests' pass rates (whole-answer
# by default) and the reference's token share (which the paper's tables report).
PAPER_COLUMNS: tuple[Column, ...] = (
    ("unlearn_success", "Unlearn", "{:.2f}"),
    ("retention_success", "Retention", "{:.2f}"),
    ("avg_success", "Avg", "{:.2f}"),
    ("unlearn_success_token", "UL tok", "{:.2f}"),
    ("retention_success_token", "RT tok", "{:.2f}"),
    ("avg_success_token", "Avg tok", "{:.2f}"),
    ("unlearn_items", "n UL", "{}"),
    ("retention_items", "n RT", "{}"),
    ("errors", "errors", "{}"),
)
# What the paper does not measure: perplexity, generations, the relearning attack, leaks.
BEYOND_COLUMNS: tuple[Column, ...] = (
    ("unlearn_ppl", "UL PPL", "{:.2f}"),
    ("retention_ppl", "RT PPL", "{:.2f}"),
    ("unlearn_rouge_l", "UL RougeL", "{:.3f}"),
    ("retention_rouge_l", "RT RougeL", "{:.3f}"),
    ("attack_unlearn_success", "After attack", "{:.2f}"),
    ("leak_success", "No leak", "{:.2f}"),
)
# The successes whose intervals the table shows (the JSON report has every interval).
INTERVAL_COLUMNS = (
    ("unlearn_success", "Unlearn"),
    ("retention_success", "Retention"),
    ("avg_success", "Avg"),
)


def paper_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Method, domain (and prompt) with the paper's figures."""
    return _table(rows, PAPER_COLUMNS)


def beyond_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The figures beyond the paper, those that the run measured."""
    columns = [column for column in BEYOND_COLUMNS if any(column[0] in row for row in rows)]
    return _table(rows, tuple(columns)) if columns else []


def interval_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The successes with their intervals, ``mean [lower, upper]`` in percent, for the
    rows and successes that have one; the first line says how they were computed."""
    keys = [
        (key, title)
        for key, title in INTERVAL_COLUMNS
        if any(key in (row.get("intervals") or {}) for row in rows)
    ]
    if not keys:
        return []
    cells = [
        [
            f"{row[key] * 100:.1f} [{row['intervals'][key]['lower'] * 100:.1f}, "
            f"{row['intervals'][key]['upper'] * 100:.1f}]"
            if key in (row.get("intervals") or {})
            else "-"
            for key, _ in keys
        ]
        for row in rows
    ]
    any_interval = next(
        iter(next(row for row in rows if row.get("intervals"))["intervals"].values())
    )
    heading = f"{any_interval['confidence']:.0%} intervals: {any_interval['method']}"
    return [heading, *_aligned(rows, [title for _, title in keys], cells)]


def _table(rows: Sequence[dict[str, Any]], columns: tuple[Column, ...]) -> list[str]:
    cells = [[_cell(row.get(key), key, fmt) for key, _, fmt in columns] for row in rows]
    return _aligned(rows, [title for _, title, _ in columns], cells)


def _aligned(
    rows: Sequence[dict[str, Any]], titles: list[str], cells: list[list[str]]
) -> list[str]:
    """Method, domain (and prompt, where a row has another than the plain one) left
    aligned, then the cells right aligned, under a rule."""
    with_prompt = any(row.get("prompt", DEFAULT_PROMPT) != DEFAULT_PROMPT for row in rows)
    names = [["method", "domain", *(["prompt"] if with_prompt else [])]] + [
        [
            row["method"],
            row["domain"],
            *([row.get("prompt", DEFAULT_PROMPT)] if with_prompt else []),
        ]
        for row in rows
    ]
    table = [name + body for name, body in zip(names, [titles, *cells])]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    texts = len(names[0])
    lines = [
        "  ".join(
            cell.ljust(width) if i < texts else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ).rstrip()
        for line in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _cell(value: Any, key: str, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value * 100 if "success" in key else value)  # successes in percent
