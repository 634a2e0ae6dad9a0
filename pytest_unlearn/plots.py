"""Plots of a run (``--unlearn-plots DIR``) for a paper: each method's training curve (paper
Figure 4) and a bar chart of the final successes, each written as PNG, PDF and SVG.

``curve_figure`` and ``comparison_figure`` return the matplotlib Figure; ``write_plots``
saves them. matplotlib (the ``plots`` extra) is imported inside the functions and draws on
its Agg canvas directly (no pyplot), so nothing global changes in the test process.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .membership_plots import auc_figure, membership_rows
from .report import row_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Curve = Sequence[Mapping[str, float]]

# Every figure is saved in each of these formats: PNG to look at, PDF and SVG for a paper.
FORMATS = ("png", "pdf", "svg")
PNG_DPI = 200

# The bars of the comparison chart: the paper's two successes, then the attack and leak
# tests' pass rates (figures of the Unlearn Scope) where the row has them.
BARS = (
    ("unlearn_success", "Unlearn Success", "tab:red"),
    ("retention_success", "Retention Success", "tab:blue"),
    ("attack_unlearn_success", "Unlearn Success after attack", "tab:purple"),
    ("leak_success", "Leak Success (nothing leaked)", "tab:orange"),
    ("quant8_unlearn_success", "Unlearn Success, 8-bit", "tab:olive"),
    ("quant4_unlearn_success", "Unlearn Success, 4-bit", "tab:brown"),
)
SCOPES = (("unlearn", "Unlearn", "tab:red"), ("retention", "Retention", "tab:blue"))


def write_plots(folder: Path, rows: Sequence[dict[str, Any]]) -> list[Path]:
    """One curve plot per row that holds a curve, and the comparison chart: every path
    written, each figure in every format of ``FORMATS``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        curves = row_curves(row)
        if curves:
            figure = curve_figure(curves, row_name(row), seeds=len(row.get("seeds") or ()))
            paths += save_figure(figure, folder / f"curve-{_file_name(row_name(row, '-'))}")
    if rows:
        paths += save_figure(comparison_figure(rows), folder / "comparison")
    if membership_rows(rows):
        paths += save_figure(auc_figure(membership_rows(rows)), folder / "membership")
    return paths


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """``stem.png``, ``stem.pdf`` and ``stem.svg``. Fonts go into the PDF as TrueType
    (Type 42; some venues reject Type 3), and no creation date, so a rerun gives the
    same PDF and SVG."""
    from matplotlib import rc_context

    paths = []
    with rc_context({"pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "pytest-unlearn"}):
        for suffix in FORMATS:
            path = stem.with_name(f"{stem.name}.{suffix}")
            metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(suffix)
            figure.savefig(path, dpi=PNG_DPI, metadata=metadata)
            paths.append(path)
    return paths


def row_curves(row: Mapping[str, Any]) -> dict[str, Curve]:
    """The row's training curves by seed: ``row["curves"]`` (``{seed: curve}``) where the
    report holds every seed's curve, else the one curve of the row's method log (one
    seed's, under the key ``""``: that log does not say which seed)."""
    curves = row.get("curves")
    if isinstance(curves, Mapping) and any(curves.values()):
        return {str(seed): curve for seed, curve in curves.items() if curve}
    curve = (row.get("method_log") or {}).get("curve")
    return {"": curve} if curve else {}


def curve_figure(curves: Mapping[str, Curve], title: str, seeds: int = 1) -> Figure:
    """Unlearn and Retention Success (left axis, percent) and both perplexities (right
    axis, dashed) against the optimizer step. Over several seeds' curves: their mean, with
    the min-max range over the seeds as a band. ``seeds`` is how many seeds the row ran,
    to say so when the curve is only one of them."""
    figure, axes = _figure((6.4, 4.6))
    steps = sorted({point["step"] for curve in curves.values() for point in curve})
    several = len(curves) > 1
    legend: list[tuple[Any, str]] = []
    for scope, label, color in SCOPES:
        mean, low, high = _over_seeds(curves, steps, f"{scope}_success", scale=100)
        [line] = axes.plot(steps, mean, "o-", color=color, markersize=4, clip_on=False)
        if several:
            band = axes.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
            legend.append(((line, band), f"{label} Success (band: min-max of {len(curves)} seeds)"))
        else:
            legend.append((line, f"{label} Success"))
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("success")
    _percent_axis(axes)
    if len(steps) > 1:
        axes.set_xlim(min(steps), max(steps))
    perplexities = axes.twinx()
    values = []
    for scope, label, color in SCOPES:
        mean, _, _ = _over_seeds(curves, steps, f"{scope}_ppl")
        if any(math.isfinite(value) for value in mean):
            [line] = perplexities.plot(steps, mean, "--", color=color, alpha=0.7)
            legend.append((line, f"{label} PPL" + (" (mean)" if several else "")))
            values += mean
    log = _perplexity_axis(perplexities, values)
    perplexities.set_ylabel(f"perplexity (dashed{', log scale' if log else ''})")
    if several:
        note = f"mean of {len(curves)} seeds; bands: min-max over the seeds"
    elif seeds > 1:
        note = f"one of the {seeds} seeds' curves (the report holds one)"
    else:
        note = "one seed"
    axes.set_title(f"{title}: training curve\n({note})", fontsize=10)
    _legend_below(figure, legend)
    return figure


def comparison_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Per row, grouped bars of Unlearn and Retention Success and, where the row measured
    them, the attack and leak tests' successes, with the rows' bootstrap intervals as
    error bars. A figure a row does not have draws no bar: 'n/a' stands in its place."""
    figure, axes = _figure((max(6.4, 1.5 * len(rows) + 2.5), 4.8))
    shown = [bar for bar in BARS if any(_has(row, bar[0]) for row in rows)]
    width = 0.8 / len(shown) if shown else 0.8
    confidences: set[float] = set()
    over_seeds = False
    missing = False
    for slot, (key, label, color) in enumerate(shown):
        offset = (slot - (len(shown) - 1) / 2) * width
        positions: list[float] = []
        values: list[float] = []
        errors: tuple[list[float], list[float]] = ([], [])
        for index, row in enumerate(rows):
            if not _has(row, key):
                missing = True
                axes.text(
                    index + offset,
                    1,
                    "n/a",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=color,
                )
                continue
            value = 100 * float(row[key])
            positions.append(index + offset)
            values.append(value)
            interval = (row.get("intervals") or {}).get(key)
            low, high = (value, value) if not interval else _bounds(interval)
            errors[0].append(max(0.0, value - low))
            errors[1].append(max(0.0, high - value))
            if interval:
                confidences.add(float(interval.get("confidence", 0.95)))
                over_seeds |= int(interval.get("seeds", 1)) > 1
        axes.bar(
            positions,
            values,
            width,
            label=label,
            color=color,
            yerr=errors,
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
    axes.set_xticks(range(len(rows)), [row_name(dict(row), "\n") for row in rows], fontsize=8)
    axes.set_xlim(-0.5, len(rows) - 0.5)
    axes.set_ylabel("success")
    _percent_axis(axes)
    notes = []
    if confidences:
        level = ", ".join(f"{c:.0%}" for c in sorted(confidences))
        notes.append(
            f"error bars: {level} bootstrap intervals over {'seeds and ' if over_seeds else ''}"
            "items"
        )
    if missing:
        notes.append("n/a: not measured for that row")
    axes.set_title("\n".join(["final comparison", *notes]), fontsize=10)
    _legend_below(figure, list(zip(*axes.get_legend_handles_labels())))
    return figure


# --- axes ----------------------------------------------------------------------------------


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Constrained layout keeps the legend below the axes ("outside") and off the data.
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _percent_axis(axes: Axes) -> None:
    """0 to exactly 100%, a tick every 20."""
    from matplotlib.ticker import FixedLocator, PercentFormatter

    axes.set_ylim(0, 100)
    axes.yaxis.set_major_locator(FixedLocator(range(0, 101, 20)))
    axes.yaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
    axes.grid(axis="y", alpha=0.3)


def _perplexity_axis(axes: Axes, values: Sequence[float]) -> bool:
    """A log scale where the perplexities span a decade or more (ticks at 1, 2, 5 times a
    power of ten, or at powers of ten over many decades, labelled as plain numbers), else
    a linear one. Whether it is a log scale."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    finite = [value for value in values if math.isfinite(value) and value > 0]
    if not finite or max(finite) / min(finite) < 10:
        axes.yaxis.set_major_locator(MaxNLocator(6))
        return False
    decades = math.log10(max(finite) / min(finite))
    steps = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    axes.set_yscale("log")
    axes.set_ylim(_nice(min(finite), steps, down=True), _nice(max(finite), steps, down=False))
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=steps, numticks=16))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: plain_number(value)))
    axes.yaxis.set_minor_formatter(NullFormatter())
    return True


def _nice(value: float, steps: Sequence[float], down: bool) -> float:
    """The nearest tick value (a step times a power of ten) below or above ``value``."""
    power = 10.0 ** math.floor(math.log10(value))
    candidates = [step * power * scale for scale in (0.1, 1, 10) for step in steps]
    if down:
        return max(c for c in candidates if c <= value * (1 + 1e-9))
    return min(c for c in candidates if c >= value * (1 - 1e-9))


def plain_number(value: float) -> str:
    """A tick label such as 0.5, 2, 50, 200, 5k or 1M (no powers of ten)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}" if value >= 1e-3 else f"{value:.6f}".rstrip("0").rstrip(".")


def _legend_below(figure: Figure, entries: Sequence[tuple[Any, str]]) -> None:
    """One legend of (handle, label) entries, below the axes, outside the data area."""
    if entries:
        handles, labels = zip(*entries)
        figure.legend(
            handles, labels, loc="outside lower center", ncols=2, fontsize=8, frameon=False
        )


# --- data ----------------------------------------------------------------------------------


def _over_seeds(
    curves: Mapping[str, Curve], steps: Sequence[float], key: str, scale: float = 1.0
) -> tuple[list[float], list[float], list[float]]:
    """At each step: the mean, the lowest and the highest value over the seeds' curves that
    scored that step (NaN where none has a finite value)."""
    by_step = [
        [
            scale * float(point[key])
            for curve in curves.values()
            for point in curve
            if point["step"] == step and _finite(point.get(key))
        ]
        for step in steps
    ]
    nan = math.nan
    return (
        [sum(each) / len(each) if each else nan for each in by_step],
        [min(each) if each else nan for each in by_step],
        [max(each) if each else nan for each in by_step],
    )


def _bounds(interval: Mapping[str, Any]) -> tuple[float, float]:
    return 100 * float(interval["lower"]), 100 * float(interval["upper"])


def _has(row: Mapping[str, Any], key: str) -> bool:
    """Whether the row measured the figure (a figure with no items is None or NaN)."""
    return _finite(row.get(key))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
