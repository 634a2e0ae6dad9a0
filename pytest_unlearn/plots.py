"""PNG plots of a run (``--unlearn-plots DIR``): each method's training curve (paper Figure 4)
and a bar chart of the final successes.

matplotlib draws on its Agg canvas directly (no pyplot), so nothing global changes in the
test process.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .report import row_name


def write_plots(folder: Path, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """One curve plot per row whose method log holds a curve, and the comparison chart."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        curve = (row.get("method_log") or {}).get("curve")
        if curve:
            name = _file_name(row_name(row, "-"))
            paths.append(plot_curve(curve, row_name(row), folder / f"curve-{name}.png"))
    if rows:
        paths.append(plot_comparison(rows, folder / "comparison.png"))
    return paths


def plot_curve(curve: Sequence[dict[str, float]], title: str, path: Path) -> Path:
    """Unlearn and Retention Success (left axis, percent) and both perplexities (right
    axis, log scale) against the optimizer step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [point["step"] for point in curve]
    figure = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(
        steps,
        [100 * p["unlearn_success"] for p in curve],
        "o-",
        color="tab:red",
        label="Unlearn Success",
    )
    axes.plot(
        steps,
        [100 * p["retention_success"] for p in curve],
        "o-",
        color="tab:blue",
        label="Retention Success",
    )
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("success (%)")
    axes.set_ylim(-5, 105)
    perplexities = figure.add_subplot(sharex=axes, frame_on=False)
    perplexities.yaxis.tick_right()
    perplexities.yaxis.set_label_position("right")
    perplexities.xaxis.set_visible(False)
    for key, color, label in (
        ("unlearn_ppl", "tab:red", "Unlearn PPL"),
        ("retention_ppl", "tab:blue", "Retention PPL"),
    ):
        values = [p[key] for p in curve]
        if all(math.isfinite(v) and v > 0 for v in values):
            perplexities.plot(steps, values, "--", color=color, alpha=0.6, label=label)
    perplexities.set_yscale("log")
    perplexities.set_ylabel("perplexity (dashed, log scale)")
    handles = axes.get_legend_handles_labels()
    more = perplexities.get_legend_handles_labels()
    axes.legend(handles[0] + more[0], handles[1] + more[1], loc="center right", fontsize=8)
    axes.set_title(f"{title}: training curve")
    figure.tight_layout()
    figure.savefig(path)
    return path


def plot_comparison(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Unlearn, Retention and Average Success per row, with the rows' 95% intervals as
    error bars where the summary has them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = (
        ("unlearn_success", "Unlearn Success", "tab:red"),
        ("retention_success", "Retention Success", "tab:blue"),
        ("avg_success", "Avg Success", "tab:gray"),
    )
    figure = Figure(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.27
    for offset, (key, label, color) in enumerate(metrics):
        positions = [index + (offset - 1) * width for index in range(len(rows))]
        values = [100 * _number(row.get(key)) for row in rows]
        errors: list[list[float]] = [[], []]
        for row, value in zip(rows, values):
            interval = (row.get("intervals") or {}).get(key)
            errors[0].append(value - 100 * interval["lower"] if interval else 0.0)
            errors[1].append(100 * interval["upper"] - value if interval else 0.0)
        axes.bar(positions, values, width, label=label, color=color, yerr=errors, capsize=2)
    axes.set_xticks(range(len(rows)), [row_name(row, "\n") for row in rows], fontsize=7)
    axes.set_ylabel("success (%)")
    axes.set_ylim(0, 122)
    axes.legend(fontsize=8, loc="upper center", ncols=3)
    axes.set_title("final comparison (error bars: 95% intervals)")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _number(value: Any) -> float:
    """A metric's value; a missing one (no items) draws no bar."""
    return math.nan if value is None else float(value)


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
