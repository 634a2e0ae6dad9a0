"""The membership figure of ``--unlearn-plots``: per attack, a bar of each method's AUC of
forget set against holdout (with its bootstrap interval), the oracle's AUC as a line across
the attack's bars, and chance (0.5) dashed. A bar above the oracle's line leaks membership;
far below it, over-unlearning (``membership.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .membership import ATTACKS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ATTACK_NAMES = {"loss": "loss", "zlib": "zlib", "min_k": "min-k%", "min_k_plus_plus": "min-k%++"}


def membership_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that carry the membership figures."""
    return [row for row in rows if row.get("auc_min_k") is not None]


def auc_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Grouped bars: one group per attack, one bar per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.4, 1.2 * len(rows) + 4), 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(rows))
    colors = [f"C{index % 10}" for index in range(len(rows))]
    for slot, row in enumerate(rows):
        offset = (slot - (len(rows) - 1) / 2) * width
        values, low, high = [], [], []
        for attack in ATTACKS:
            value = float(row[f"auc_{attack}"])
            interval = (row.get("intervals") or {}).get(f"auc_{attack}") or {}
            values.append(value)
            low.append(max(0.0, value - float(interval.get("lower", value))))
            high.append(max(0.0, float(interval.get("upper", value)) - value))
        axes.bar(
            [index + offset for index in range(len(ATTACKS))],
            values,
            width,
            label=row["method"],
            color=colors[slot],
            yerr=(low, high),
            capsize=2,
            error_kw={"elinewidth": 0.8},
        )
    for index, attack in enumerate(ATTACKS):
        oracle = rows[0].get(f"oracle_auc_{attack}")
        if oracle is not None:
            axes.hlines(
                float(oracle),
                index - 0.45,
                index + 0.45,
                colors="black",
                linewidth=1.6,
                label="oracle (retrain)" if index == 0 else "_nolegend_",
            )
    axes.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="chance (0.5)")
    axes.set_xticks(range(len(ATTACKS)), [ATTACK_NAMES[a] for a in ATTACKS])
    axes.set_ylim(0, 1)
    axes.set_ylabel("AUC, forget set vs holdout")
    axes.set_title(
        "membership inference: above the oracle's line leaks, far below over-unlearns\n"
        "error bars: 95% bootstrap intervals over records",
        fontsize=10,
    )
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return figure
