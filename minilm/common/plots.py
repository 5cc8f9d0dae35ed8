"""Figures as PNGs, when matplotlib is installed (pip install "minilm[plot]").

Without matplotlib a run still finishes; its figures are skipped, and one line says so.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from minilm.common.files import atomic_write


def pyplot() -> Any:
    """matplotlib.pyplot drawing off-screen, or None if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


@functools.cache
def note_skipped_plots() -> None:
    """Say once per process that figures are skipped, and how to get them."""
    print('note: plots (loss.png, ...) are skipped: matplotlib is not installed; pip install "minilm[plot]"',
          file=sys.stderr)


def save_figure(fig: Any, path: Path, dpi: int = 100) -> None:
    """Write fig to path via a temporary file (a crash never leaves half a PNG), then close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(fig)


def plot_curves(rows: list[dict], x: str, series: list[str], path: Path, title: str, log_x: bool = False,
                marks: dict[str, float] | None = None) -> bool:
    """Plot the columns `series` of metric rows against column `x`; False if matplotlib is missing.

    log_x: a logarithmic x axis (for learning rates). marks: a dashed vertical line at each
    named x value, e.g. {"suggested lr": 3e-3}.
    """
    plt = pyplot()
    if plt is None:
        note_skipped_plots()
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in series:
        points = [(r[x], r[name]) for r in rows if r.get(name) not in (None, "")]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=name)
    for i, (label, value) in enumerate((marks or {}).items()):
        ax.axvline(value, linestyle="--", color=f"C{len(series) + i}", label=f"{label} {value:.2g}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return True


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> bool:
    """The confusion matrix as a heat-map, rows true classes, columns predicted, each row scaled
    to its class's size (so a rare class's mistakes show as clearly as a common one's)."""
    plt = pyplot()
    if plt is None:
        note_skipped_plots()
        return False
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(30.0, max(5.0, 0.18 * len(labels)))  # inches: room for one label per row
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
    ax.set_yticks(ticks, labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.6, label="share of the true class")
    fig.tight_layout()
    save_figure(fig, path)
    return True
