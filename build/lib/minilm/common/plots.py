"""Figures as PNGs, when matplotlib is installed (pip install "minilm[plot]")."""

from __future__ import annotations

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
