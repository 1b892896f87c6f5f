"""Figures for reports, rendered to PNG without pyplot.

A `Figure` drawn by the Agg canvas and shown as an image looks the same in JupyterLab and
in the HTML report, and spares every run the ~0.3 s pyplot import.
"""

from __future__ import annotations

import io
import os

import pandas as pd
from IPython.display import Image, display
from matplotlib.figure import Figure


def per_hour(table: pd.DataFrame | None, title: str, ylabel: str = "jobs") -> None:
    """A bar per hour of a one-column table indexed by hour (a throughput probe's table)."""
    if table is None or table.empty:
        print(f"{title}: no data")
        return
    column = table.columns[0]
    figure = Figure(figsize=(9, 2.8), layout="constrained")
    axes = figure.subplots()
    axes.bar(table.index, table[column], width=1 / 24 * 0.85, align="edge", color="#1565c0")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    for label in axes.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    _show(figure)


def _show(figure: Figure) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    display(Image(data=buffer.getvalue(), format="png"))


def trends(table: pd.DataFrame | None, x: str, title: str) -> None:
    """One small line chart per numeric column of `table` against its column `x` (a
    weekly summary's fields over the weeks), the last point marked."""
    if table is None or table.empty:
        print(f"{title}: no data")
        return
    columns = [c for c in table.columns if c != x and pd.api.types.is_numeric_dtype(table[c])]
    figure = Figure(figsize=(9, 1.9 * ((len(columns) + 1) // 2)), layout="constrained")
    figure.suptitle(title)
    labels = _shortened(table[x].astype(str).tolist())
    grid = list(figure.subplots((len(columns) + 1) // 2, 2, squeeze=False).flat)
    for axes in grid[len(columns) :]:
        axes.set_visible(False)
    for axes, column in zip(grid, columns, strict=False):
        axes.plot(labels, table[column], marker="o", markersize=3, color="#1565c0")
        axes.plot(labels[-1:], table[column].iloc[-1:], marker="o", color="#c62828")
        axes.set_title(column, fontsize=9)
        axes.tick_params(labelsize=7)
        axes.tick_params(axis="x", labelrotation=45)
        axes.grid(alpha=0.3)
    _show(figure)


def _shortened(labels: list[str]) -> list[str]:
    """Labels without the prefix and suffix they all share (`cycle-2026-W36.json` → `W36`
    among its siblings), so the axis stays readable."""
    if len(labels) < 2:
        return labels
    head = len(os.path.commonprefix(labels))
    tail = len(os.path.commonprefix([label[::-1] for label in labels]))
    shortest = min(len(label) for label in labels)
    if head + tail >= shortest:
        return labels
    return [label[head : len(label) - tail] for label in labels]


def budget_usage(table: pd.DataFrame | None) -> None:
    """Spend as a share of the allocation per category and in total (a budget probe's
    table), with the throttle level it carries and the allocation marked."""
    if table is None or table.empty or "usage_pct" not in table:
        print("budget: no data")
        return
    throttle_at = table.attrs.get("throttle_at", 95.0)
    usage = table["usage_pct"].fillna(0.0)
    figure = Figure(figsize=(9, 0.5 * len(usage) + 1.2), layout="constrained")
    axes = figure.subplots()
    colours = [
        "#c62828" if v >= 100 else "#ef6c00" if v >= throttle_at else "#1565c0" for v in usage
    ]
    axes.barh([str(label) for label in usage.index], usage, color=colours)
    # the two marks are close: one label left of its line, the other right
    for level, name, side in ((throttle_at, "throttle ", "right"), (100.0, " allocated", "left")):
        axes.axvline(level, color="#555", linestyle="--", linewidth=1)
        axes.text(level, len(usage) - 0.4, name, fontsize=8, color="#555", ha=side)
    axes.set_xlabel("% of this period's allocation spent")
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3)
    _show(figure)
