"""Figures for reports, rendered to PNG without pyplot.

A `Figure` drawn by the Agg canvas and shown as an image looks the same in JupyterLab and
in the HTML report, and spares every run the ~0.3 s pyplot import.
"""

from __future__ import annotations

import io

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
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    display(Image(data=buffer.getvalue(), format="png"))
