"""The plots of --unlearn-plots, drawn from rows shaped like the report's (``report.py``):
every figure as PNG, PDF and SVG, percent axes from 0 to 100%, the attack and leak bars,
seed bands on the curves, readable log ticks and legends off the data."""

from __future__ import annotations

import copy
import math
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from pytest_unlearn.plots import (  # noqa: E402
    comparison_figure,
    curve_figure,
    plain_number,
    row_curves,
    write_plots,
)

PERCENT_TICKS = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]


def interval(mean: float, lower: float, upper: float, seeds: int = 2) -> dict[str, Any]:
    """An interval as ``stats.Interval.to_dict`` writes it."""
    return {
        "mean": mean,
        "lower": lower,
        "upper": upper,
        "confidence": 0.95,
        "seeds": seeds,
        "items": 28,
        "resamples": 2000,
        "method": "percentile bootstrap over seeds and items (crossed)",
    }


def curve(shift: float = 0.0, ppl_growth: float = 1.03) -> list[dict[str, float]]:
    """A training curve as ``curves.curve_recorder`` records it, every 2 steps."""
    return [
        {
            "step": step,
            "unlearn_success": min(1.0, step / 12 + shift),
            "unlearn_ppl": 1.05 * ppl_growth**step,
            "retention_success": 1.0 - shift,
            "retention_ppl": 1.05,
        }
        for step in range(0, 13, 2)
    ]


def report_row(method: str, attack_and_leak: bool = True, seeds: int = 2) -> dict[str, Any]:
    """A row as ``report.summarize`` and ``build_summary`` make it (the fields the plots
    read, and the others around them)."""
    row: dict[str, Any] = {
        "method": method,
        "domain": "privacy",
        "prompt": "plain",
        "seeds": list(range(seeds)),
        "unlearn_items": 28 * seeds,
        "retention_items": 28 * seeds,
        "errors": 0,
        "unlearn_success": 0.5178571428571428,
        "retention_success": 1.0,
        "avg_success": 0.7589285714285714,
        "unlearn_ppl": 1.21,
        "retention_ppl": 1.05,
        "model_cache_key": "fe06" + "0" * 60,
        "per_seed": {
            "0": {"unlearn_success": 0.5, "retention_success": 1.0, "avg_success": 0.75},
            "1": {"unlearn_success": 0.5357, "retention_success": 1.0, "avg_success": 0.7678},
        },
        "intervals": {
            "unlearn_success": interval(0.5178, 0.3214, 0.7143, seeds),
            "retention_success": interval(1.0, 0.9999999999999997, 0.9999999999999999, seeds),
            "avg_success": interval(0.7589, 0.6607, 0.8571, seeds),
        },
        "tests": {"recall": {"collected": 56, "reported": 56}},
        "method_log": {"train": {"steps": 12}, "curve": curve()},
        "unlearns": True,
    }
    if attack_and_leak:
        row["attack_unlearn_success"] = 0.10714285714285715
        row["attack_items"] = 56
        row["leak_success"] = 0.32142857142857145
        row["leak_items"] = 56
        row["intervals"]["attack_unlearn_success"] = interval(0.1071, 0.0, 0.2857, seeds)
        row["intervals"]["leak_success"] = interval(0.3214, 0.1429, 0.5, seeds)
    return row


def bars(figure: Figure) -> dict[str, BarContainer]:
    [axes] = figure.axes
    return {c.get_label(): c for c in axes.containers if isinstance(c, BarContainer)}


def drawn_labels(axis: Any) -> list[str]:
    """The labels of the major ticks inside the axis's view, as its formatter writes them."""
    low, high = sorted(axis.get_view_interval())
    formatter = axis.get_major_formatter()
    locations = [v for v in axis.get_majorticklocs() if low * 0.999999 <= v <= high * 1.000001]
    return [formatter(location) for location in locations]


def test_every_figure_is_written_as_png_pdf_and_svg(tmp_path: Path) -> None:
    rows = [report_row("gradient_ascent"), report_row("npo", attack_and_leak=False)]
    paths = write_plots(tmp_path / "plots", rows)
    stems = ["curve-gradient_ascent-privacy", "curve-npo-privacy", "comparison"]
    assert paths == [
        tmp_path / "plots" / f"{stem}.{suffix}"
        for stem in stems
        for suffix in ("png", "pdf", "svg")
    ]
    for path in paths:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        elif path.suffix == ".pdf":
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
            # TrueType fonts (Type 42), which venues accept, not Type 3.
            assert b"/FontFile2" in data and b"/Type3" not in data
        else:
            root = ElementTree.fromstring(data)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # No creation date or random ids: the same rows give the same vector files.
    again = write_plots(tmp_path / "again", rows)
    for first, second in zip(paths, again):
        if first.suffix != ".png":
            assert first.read_bytes() == second.read_bytes(), first.name


def test_no_rows_write_nothing(tmp_path: Path) -> None:
    assert write_plots(tmp_path, []) == []


@pytest.mark.parametrize("which", ["curve", "comparison"])
def test_percent_axes_end_at_exactly_100(which: str) -> None:
    row = report_row("gradient_ascent")
    if which == "curve":
        figure = curve_figure(row_curves(row), "gradient_ascent privacy", seeds=2)
    else:
        figure = comparison_figure([row])
    axes = figure.axes[0]
    figure.canvas.draw()
    assert axes.get_ylim() == (0.0, 100.0)
    assert list(axes.get_yticks()) == PERCENT_TICKS
    assert drawn_labels(axes.yaxis) == ["0%", "20%", "40%", "60%", "80%", "100%"]


def test_the_comparison_shows_attack_and_leak_bars_only_where_measured() -> None:
    rows = [report_row("gradient_ascent"), report_row("npo", attack_and_leak=False)]
    figure = comparison_figure(rows)
    containers = bars(figure)
    assert list(containers) == [
        "Unlearn Success",
        "Retention Success",
        "Unlearn Success after attack",
        "Leak Success (nothing leaked)",
    ]
    heights = {label: [p.get_height() for p in c.patches] for label, c in containers.items()}
    assert heights["Unlearn Success"] == pytest.approx([51.78571428571428] * 2)
    assert heights["Retention Success"] == pytest.approx([100.0, 100.0])
    # The npo row ran no attack or leak tests: no bar (not a bar of 0), an 'n/a' instead.
    assert heights["Unlearn Success after attack"] == pytest.approx([10.714285714285715])
    assert heights["Leak Success (nothing leaked)"] == pytest.approx([32.142857142857145])
    [axes] = figure.axes
    attack_x = containers["Unlearn Success after attack"].patches[0].get_center()[0]
    assert attack_x < 0.5  # the bar is the first row's
    na = [text for text in axes.texts if text.get_text() == "n/a"]
    assert len(na) == 2 and all(text.get_position()[0] > 0.5 for text in na)
    assert "n/a: not measured" in axes.get_title()
    assert "95% bootstrap intervals over seeds and items" in axes.get_title()


def test_the_comparison_error_bars_are_the_rows_intervals() -> None:
    figure = comparison_figure([report_row("gradient_ascent")])
    leak = bars(figure)["Leak Success (nothing leaked)"]
    assert leak.errorbar is not None
    [segments] = [lines.get_segments() for lines in leak.errorbar.lines[2]]
    [[(_, low), (_, high)]] = segments
    assert (low, high) == pytest.approx((14.29, 50.0))


def test_metrics_no_row_has_are_left_out_of_the_chart_and_its_legend() -> None:
    figure = comparison_figure([report_row("npo", attack_and_leak=False)])
    assert list(bars(figure)) == ["Unlearn Success", "Retention Success"]
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == list(bars(figure))
    assert "n/a" not in figure.axes[0].get_title()


def test_a_row_without_figures_draws_no_bars() -> None:
    # A row whose tests never reported: its figures are NaN (None in the JSON report).
    empty = report_row("npo", attack_and_leak=False)
    empty["unlearn_success"] = math.nan
    empty["retention_success"] = None
    empty["intervals"] = {}
    figure = comparison_figure([report_row("gradient_ascent"), empty])
    for container in bars(figure).values():
        assert len(container.patches) == 1
    assert sum(text.get_text() == "n/a" for text in figure.axes[0].texts) == 4


def test_several_seeds_curves_draw_the_mean_and_a_min_max_band() -> None:
    curves = {"0": curve(0.0), "1": curve(0.2)}
    figure = curve_figure(curves, "gradient_ascent privacy", seeds=2)
    axes = figure.axes[0]
    bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    unlearn_line = axes.lines[0]
    assert list(unlearn_line.get_ydata()) == pytest.approx(
        [100 * (min(1.0, s / 12) + min(1.0, s / 12 + 0.2)) / 2 for s in range(0, 13, 2)]
    )
    # The unlearn band spans the two seeds' values at every step.
    vertices = bands[0].get_paths()[0].vertices
    for step in range(0, 13, 2):
        at_step = vertices[vertices[:, 0] == step][:, 1]
        expected = [100 * min(1.0, step / 12), 100 * min(1.0, step / 12 + 0.2)]
        assert (at_step.min(), at_step.max()) == pytest.approx(expected)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "Unlearn Success (band: min-max of 2 seeds)" in labels
    assert "mean of 2 seeds" in axes.get_title()


def test_a_row_with_one_curve_of_several_seeds_says_so_and_draws_no_band() -> None:
    row = report_row("gradient_ascent", seeds=3)
    assert list(row_curves(row)) == [""]
    figure = curve_figure(row_curves(row), "gradient_ascent privacy", seeds=3)
    axes = figure.axes[0]
    assert not [c for c in axes.collections if isinstance(c, PolyCollection)]
    assert "one of the 3 seeds' curves" in axes.get_title()


def test_row_curves_prefer_the_curves_of_every_seed() -> None:
    row = report_row("gradient_ascent")
    row["curves"] = {0: curve(0.0), 1: curve(0.1)}
    assert list(row_curves(row)) == ["0", "1"]
    del row["curves"]
    row["method_log"] = {"train": {"steps": 12}}
    assert row_curves(row) == {}


@pytest.mark.parametrize("which", ["curve", "curve with seeds", "comparison"])
def test_legends_sit_outside_the_data_area_and_inside_the_figure(which: str) -> None:
    if which == "comparison":
        figure = comparison_figure([report_row(f"method_{i}") for i in range(3)])
    else:
        seeded = {"0": curve(0.0, 1.5), "1": curve(0.2, 1.6)}
        curves = seeded if which == "curve with seeds" else {"": curve()}
        figure = curve_figure(curves, "a_method_with_a_long_name privacy", seeds=2)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    [legend] = figure.legends
    box = legend.get_window_extent(renderer)
    for axes in figure.axes:
        overlap = Bbox.intersection(box, axes.get_window_extent(renderer))
        assert overlap is None or overlap.width * overlap.height == 0
    # Not cut off by the edge of the figure either.
    assert figure.bbox.x0 <= box.x0 and box.x1 <= figure.bbox.x1
    assert figure.bbox.y0 <= box.y0 and box.y1 <= figure.bbox.y1


@pytest.mark.parametrize("growth", [1.5, 4.0])
def test_perplexities_over_decades_get_a_log_axis_with_plain_tick_labels(growth: float) -> None:
    # 1.5 per step: 1 to about 140 (1-2-5 ticks); 4.0: 1 to about 18 million (decades).
    figure = curve_figure({"": curve(ppl_growth=growth)}, "gradient_ascent privacy")
    perplexities = figure.axes[1]
    figure.canvas.draw()
    assert perplexities.get_yscale() == "log"
    assert "log scale" in perplexities.get_ylabel()
    labels = drawn_labels(perplexities.yaxis)
    assert len(labels) >= 3
    assert all(re.fullmatch(r"\d+(\.\d+)?[kMG]?", label) for label in labels), labels
    # The axis ends on labelled ticks, so both ends of the data can be read off.
    low, high = perplexities.get_ylim()
    assert low <= 1.05 and high >= 1.05 * growth**12
    assert plain_number(low) in labels and plain_number(high) in labels


def test_perplexities_within_a_decade_get_a_linear_axis() -> None:
    figure = curve_figure({"": curve(ppl_growth=1.01)}, "gradient_ascent privacy")
    perplexities = figure.axes[1]
    figure.canvas.draw()
    assert perplexities.get_yscale() == "linear"
    assert "log" not in perplexities.get_ylabel()
    assert all("$" not in label for label in drawn_labels(perplexities.yaxis))


def test_non_finite_perplexities_break_the_line_instead_of_failing() -> None:
    points = curve()
    points[3]["unlearn_ppl"] = math.inf
    figure = curve_figure({"": points}, "gradient_ascent privacy")
    [unlearn_ppl, _] = figure.axes[1].lines
    assert math.isnan(unlearn_ppl.get_ydata()[3])


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (2.0, "2"), (50.0, "50"), (500.0, "500"), (2000.0, "2k"), (1e6, "1M")],
)
def test_plain_numbers(value: float, text: str) -> None:
    assert plain_number(value) == text


def test_plots_do_not_change_their_rows(tmp_path: Path) -> None:
    rows = [report_row("gradient_ascent")]
    before = copy.deepcopy(rows)
    write_plots(tmp_path, rows)
    assert rows == before
