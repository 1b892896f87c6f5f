"""Figures for reports: matplotlib, shown inline by the kernel's default backend."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def per_hour(table: pd.DataFrame | None, title: str, ylabel: str = "jobs") -> None:
    """A bar per hour of a one-column table indexed by hour (a throughput probe's table)."""
    if table is None or table.empty:
        print(f"{title}: no data")
        return
    column = table.columns[0]
    figure, axes = plt.subplots(figsize=(9, 2.8))
    axes.bar(table.index, table[column], width=1 / 24 * 0.85, align="edge", color="#1565c0")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    figure.autofmt_xdate()
    plt.show()
