"""The learning-rate range test: which --lr to use, measured instead of guessed (--find-lr).

Leslie Smith (2015, "Cyclical Learning Rates for Training Neural Networks") and fast.ai's
lr_find: train a fresh model for a short while, raising the learning rate exponentially at
every step, and watch the loss.

    lr_i = lr_start · (lr_end / lr_start)^(i / (steps - 1))      i = 0 .. steps-1, 1e-6 -> 1

    too small   the loss barely moves: the steps are too short to matter
    good        the loss falls, and falls fastest somewhere here
    too large   the loss stops falling, then shoots up: the steps overshoot the valley

One step's loss is noisy (each step sees a different batch), so the curve we read is an
exponential moving average with bias correction, as Adam corrects its moments:

    avg_i = β · avg_{i-1} + (1 - β) · loss_i          smoothed_i = avg_i / (1 - β^(i+1))

β = 0.9 averages over about 1 / (1 - β) = 10 steps: with 100 steps across 6 decades of lr that
is 0.6 of a decade, enough to calm the noise without dragging the curve far to the right.
The run stops early once smoothed_i > 4 · min_j smoothed_j: the model has diverged, and larger
rates have nothing left to say.

Two readings of the curve, both printed:
  - steepest descent: the lr where the smoothed loss falls fastest per decade of lr (the most
    negative d smoothed / d log lr, looked for before the minimum);
  - minimum / 10: the lr where the smoothed loss is lowest is already at the edge of
    divergence; about one tenth of it trains fast and safely (fast.ai's long-time advice).
The suggestion is the smaller of the two: too small a rate costs some speed, too large a rate
costs the run. The range test uses the job's real optimizer (AdamW, the same parameter groups,
weight decay and clipping), only the learning rate is swept; the model it trains is thrown away.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from minilm.common.files import save_csv
from minilm.common.plots import plot_curves
from minilm.train.trainer import Trainer

CSV_COLUMNS = ["step", "lr", "loss", "smoothed_loss"]


@dataclass
class LRFinding:
    """What a range test measured: one row per step, and the two readings of the curve."""

    rows: list[dict]  # {"step", "lr", "loss", "smoothed_loss"}
    steepest_lr: float
    min_loss_lr: float
    stopped_early: bool

    @property
    def suggested_lr(self) -> float:
        """The smaller of the two readings, rounded to one significant digit (e.g. 3e-03)."""
        return float(f"{min(self.steepest_lr, self.min_loss_lr / 10):.0e}")


def exponential_lrs(steps: int, start_lr: float, end_lr: float) -> list[float]:
    """steps rates from start_lr to end_lr, evenly spaced on a log scale."""
    ratio = end_lr / start_lr
    return [start_lr * ratio ** (i / max(steps - 1, 1)) for i in range(steps)]


def lr_range_test(trainer: Trainer, batches: Iterator, loss_fn: Callable[[nn.Module, object], torch.Tensor],
                  steps: int = 100, start_lr: float = 1e-6, end_lr: float = 1.0, beta: float = 0.9,
                  diverge_factor: float = 4.0) -> LRFinding:
    """Train trainer.model for up to `steps` steps at exponentially rising rates; read the curve.

    trainer: a fresh Trainer over a fresh model (it is trained, so throw it away afterwards).
    batches: yields one step's micro-batches (what trainer.step takes) per step.
    """
    rows: list[dict] = []
    avg, best, stopped_early = 0.0, math.inf, False
    for i, lr in enumerate(exponential_lrs(steps, start_lr, end_lr)):
        try:
            loss = trainer.step(next(batches), loss_fn, lr=lr)
        except FloatingPointError:  # the loss overflowed: the clearest sign of divergence
            stopped_early = True
            break
        avg = beta * avg + (1 - beta) * loss
        smoothed = avg / (1 - beta ** (i + 1))
        rows.append({"step": i + 1, "lr": lr, "loss": loss, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if smoothed > diverge_factor * best:
            stopped_early = True
            break
    if len(rows) < 2:
        raise FloatingPointError(f"the loss diverged at the first steps of the range test (lr {start_lr:g})")
    lowest = min(range(len(rows)), key=lambda j: rows[j]["smoothed_loss"])
    # The lr grows by the same factor every step, so a difference of consecutive smoothed losses
    # is the slope per step of log lr. Steepest = most negative, up to the minimum.
    slopes = [rows[j + 1]["smoothed_loss"] - rows[j]["smoothed_loss"] for j in range(max(lowest, 1))]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    return LRFinding(rows, rows[steepest]["lr"], rows[lowest]["lr"], stopped_early)


def explain(finding: LRFinding) -> str:
    """The suggestion, with how it was read off the curve."""
    last = finding.rows[-1]
    lines = [f"lr range test: {len(finding.rows)} steps from lr {finding.rows[0]['lr']:.1e} to {last['lr']:.1e}"
             + (" (stopped early: the loss diverged)" if finding.stopped_early else "")]
    lines.append(f"  steepest descent of the smoothed loss at lr = {finding.steepest_lr:.1e}")
    lines.append(f"  lowest smoothed loss at lr = {finding.min_loss_lr:.1e}; a common choice is about one tenth "
                 f"of it, {finding.min_loss_lr / 10:.1e}")
    if finding.min_loss_lr == finding.rows[0]["lr"]:
        lines.append("  the loss never went below its first value: check the data, or start from a smaller lr")
    elif finding.steepest_lr < finding.min_loss_lr / 100:
        lines.append("  the two readings are far apart, so the curve is noisy: try more --find-lr-steps or a "
                     "larger --batch-size")
    lines.append(f"suggested --lr {finding.suggested_lr:g} (the smaller of the two: too small costs speed, too "
                 "large costs the run)")
    return "\n".join(lines)


def save_finding(finding: LRFinding, out: Path) -> list[Path]:
    """Write out/lr_find.csv (and out/lr_find.png with matplotlib); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    save_csv(finding.rows, CSV_COLUMNS, out / "lr_find.csv")
    written = [out / "lr_find.csv"]
    if plot_curves(finding.rows, "lr", ["loss", "smoothed_loss"], out / "lr_find.png", "learning-rate range test",
                   log_x=True, marks={"suggested --lr": finding.suggested_lr}):
        written.append(out / "lr_find.png")
    return written


def find_lr(trainer: Trainer, batches: Iterator, loss_fn: Callable[[nn.Module, object], torch.Tensor],
            steps: int, out: Path) -> LRFinding:
    """--find-lr: run the range test, save lr_find.* into out, print the suggestion; return the finding."""
    finding = lr_range_test(trainer, batches, loss_fn, steps)
    written = save_finding(finding, out)
    print(explain(finding))
    print(f"saved {', '.join(str(p) for p in written)}; nothing else in {out} was touched")
    return finding
