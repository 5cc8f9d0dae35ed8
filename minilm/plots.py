"""Loss curves as a PNG, when matplotlib is installed (pip install "minilm[plot]")."""

from __future__ import annotations

from pathlib import Path


def plot_curves(rows: list[dict], x: str, series: list[str], path: Path, title: str) -> bool:
    """Plot the columns `series` of metric rows against column `x`; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in series:
        points = [(r[x], r[name]) for r in rows if r.get(name) not in (None, "")]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=name)
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return True
