"""The one training loop both jobs share: the optimizer, the schedule, accumulation, clipping, AMP.

A job (pretrain.py, finetune.py) owns its data and its evaluation; it hands the Trainer a
function that computes the loss of one micro-batch, and calls `trainer.step(...)` once per
optimizer step. The Trainer does the rest:

    for each of grad_accum micro-batches:   loss_i / grad_accum  -> backward   (grads add up)
    clip ‖g‖ to grad_clip                   a rare huge gradient can't throw the weights far
    lr = schedule(progress)                 linear warmup, then cosine (or stable + linear) decay
    optimizer update                        AdamW, or Muon + AdamW (minilm/train/optim.py)
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from minilm.common.distributed import mean_across_processes
from minilm.common.errors import UserError
from minilm.common.runtime import autocast, keep_freed_memory
from minilm.train.optim import build_optimizer

SCHEDULES = ("cosine", "wsd")


@dataclass
class OptimSettings:
    """The optimizer and schedule knobs of a job (copied from its config)."""

    lr: float
    min_lr: float
    warmup_steps: int
    max_steps: int
    max_time: float  # minutes; 0 = no time limit
    weight_decay: float
    grad_clip: float
    grad_accum: int = 1
    beta1: float = 0.9
    beta2: float = 0.95
    optimizer: str = "adamw"  # or "muon" (minilm/train/optim.py)
    schedule: str = "cosine"  # or "wsd": warmup, stable, decay
    decay_fraction: float = 0.2  # wsd: the share of the run spent decaying to min_lr


def lr_at(step: int, progress: float, s: OptimSettings) -> float:
    """Learning rate for optimizer step `step` (0-based), `progress` in [0, 1] through the run.

    Warmup: the first warmup_steps steps ramp linearly up to lr. Adam's second-moment
    estimates start at zero, so its first updates are badly scaled; small steps while they
    settle avoid an early blow-up.
    Then cosine: lr_t = min_lr + ½(lr - min_lr)(1 + cos(π · progress)). Large steps early make
    fast progress; small steps late settle into a minimum. Progress is by steps, or by time when
    --max-time runs out first, so a time-boxed run still ends at min_lr.
    Or warmup-stable-decay (wsd): lr until the last decay_fraction of the run, then a straight
    line down to min_lr. The long stable phase keeps learning fast; the short decay at the end
    buys most of what a cosine's slow decline buys, and the run's length need not be fixed early.
    """
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "wsd":
        decay_start = 1.0 - s.decay_fraction
        if progress <= decay_start:
            return s.lr
        return s.lr + (s.min_lr - s.lr) * (progress - decay_start) / s.decay_fraction
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Owns the optimizer, the schedule, the loss scaler and the clock of one training run."""

    def __init__(self, model: nn.Module, settings: OptimSettings, device: torch.device, dtype: torch.dtype,
                 lr_scale: dict[str, float] | None = None, distributed: bool = False, compile: bool = False):
        self.model, self.settings, self.device, self.dtype = model, settings, device, dtype
        if device.type == "cpu":
            keep_freed_memory()  # big per-step tensors reuse their pages instead of faulting them in anew
        # Under torchrun, the DistributedDataParallel wrapper averages gradients across processes.
        self.ddp_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None) if distributed else None
        # What a training step calls: the DDP wrapper or the model itself, compiled if asked. The
        # weights are shared either way; self.model stays the plain module to save and evaluate.
        self.forward_model = self.ddp_model or model
        if compile:
            self.forward_model = torch.compile(self.forward_model)
        # The first step of a compiled model spends most of its time compiling (a minute or more):
        # it is left off the clock, so --max-time and tokens/s measure training.
        self.compiling = compile
        self.optimizer = build_optimizer(model, settings.optimizer, settings.lr, settings.weight_decay,
                                         (settings.beta1, settings.beta2), lr_scale, device)
        # fp16 overflows above 65504: scale the loss up for backward, and the grads back down.
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.step_count = 0  # optimizer updates applied: the schedule's position
        self.elapsed = 0.0  # seconds spent inside step() so far (not evaluating), kept across resumes
        self.lr = 0.0
        self.last_step_skipped = False  # the GradScaler found inf/NaN gradients and skipped the update

    @property
    def progress(self) -> float:
        """How far through the run we are, in [0, 1]: by steps, or by time when that runs out first."""
        s = self.settings
        by_steps = self.step_count / s.max_steps if s.max_steps else 0.0
        by_time = self.elapsed / (60 * s.max_time) if s.max_time else 0.0
        return min(1.0, max(by_steps, by_time))

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    def step(self, micro_batches: Iterable, loss_fn: Callable[[nn.Module, object], torch.Tensor],
             lr: float | None = None) -> float:
        """One optimizer step over grad_accum micro-batches; returns the mean loss.

        loss_fn(model, batch) -> scalar loss, called under autocast. Raises FloatingPointError
        if the loss is NaN or infinite (the job decides what to tell the user). lr, when given,
        replaces the schedule's rate for this step (the learning-rate range test sweeps it).
        """
        s = self.settings
        started = time.perf_counter()
        self.lr = lr_at(self.step_count, self.progress, s) if lr is None else lr
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * group["lr_scale"]
        model = self.forward_model
        model.train()
        losses = []
        batches = list(micro_batches)
        for i, batch in enumerate(batches):
            # DDP averages gradients across processes after every backward; with accumulation
            # only the last micro-batch needs that, so the others skip the communication.
            last = i == len(batches) - 1
            sync = contextlib.nullcontext() if last or self.ddp_model is None else self.ddp_model.no_sync()
            with sync:
                with autocast(self.device, self.dtype):
                    loss = loss_fn(model, batch)
                # n micro-batches each add 1/n of the mean gradient (no division when n = 1: one op less)
                self.scaler.scale(loss / len(batches) if len(batches) > 1 else loss).backward()
            losses.append(loss.detach())
        mean_loss = torch.stack(losses).mean() if len(losses) > 1 else losses[0]
        if self.ddp_model is not None:
            mean_loss = mean_across_processes(mean_loss)  # every rank logs, and checks, the same number
        mean_loss = mean_loss.item()
        if not math.isfinite(mean_loss):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(f"loss became {mean_loss} at step {self.step_count + 1}")
        if s.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.last_step_skipped = not self._optimizer_step()
        self.optimizer.zero_grad(set_to_none=True)
        if not self.last_step_skipped:
            self.step_count += 1
        if self.compiling:
            self.compiling = False
        else:
            self.elapsed += time.perf_counter() - started
        if self.ddp_model is not None:
            self._agree_on_elapsed()
        return mean_loss

    def _optimizer_step(self) -> bool:
        """Update the weights; False when the fp16 GradScaler skipped the update.

        With fp16 the scaler skips a step whose scaled gradients overflowed, and halves its scale.
        A skipped step must not advance the schedule (nothing was learned), and a lowered scale is
        the one sign of it the scaler gives.
        """
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return scale is None or self.scaler.get_scale() >= scale

    def _agree_on_elapsed(self) -> None:
        """Every process takes the slowest one's clock, so with --max-time they all compute the
        same learning rate and stop at the same step (one stopping early would hang the others)."""
        elapsed = torch.tensor([self.elapsed], device=self.device, dtype=torch.float64)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
        self.elapsed = float(elapsed.item())

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step_count, "elapsed": self.elapsed}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step_count, self.elapsed = state["step"], state["elapsed"]


def check_settings(settings: OptimSettings) -> None:
    """Refuse settings that cannot train, with the flag to change."""
    s = settings
    if s.lr <= 0:
        raise UserError(f"--lr must be positive, got {s.lr}")
    if s.min_lr < 0 or s.min_lr > s.lr:
        raise UserError(f"--min-lr must be between 0 and --lr ({s.lr}), got {s.min_lr}")
    if s.max_steps <= 0 and s.max_time <= 0:
        raise UserError("set --max-steps or --max-time (minutes) to a positive number, or the run never ends")
    if s.max_steps < 0 or s.max_time < 0:
        raise UserError("--max-steps and --max-time cannot be negative")
    if s.warmup_steps < 0 or (s.max_steps and s.warmup_steps >= s.max_steps):
        raise UserError(f"--warmup-steps must be in [0, --max-steps); got {s.warmup_steps} with "
                        f"--max-steps {s.max_steps}")
    if s.weight_decay < 0:
        raise UserError(f"--weight-decay must be >= 0, got {s.weight_decay}")
    if not 0.0 < s.decay_fraction <= 1.0:
        raise UserError(f"--decay-fraction must be in (0, 1], got {s.decay_fraction}")
    if s.grad_accum < 1:
        raise UserError(f"--grad-accum must be >= 1, got {s.grad_accum}")


def planned_steps(trainer: Trainer) -> int | None:
    """The run's length in steps for the progress bar: --max-steps, or, when --max-time will run out
    first, the steps the clock allows at the pace so far; at the end exactly the steps taken, so a
    finished run's bar reads 100% whichever budget ended it."""
    s = trainer.settings
    if trainer.done:
        return trainer.step_count
    if not s.max_time or not trainer.progress:
        return s.max_steps or None
    return max(trainer.step_count, round(trainer.step_count / trainer.progress))


class StepClock:
    """Measures the time per step over the first steps of this session, then says once how long
    the rest of the run will take (evaluations add a little)."""

    WARM_STEPS = 2  # the first steps are slow (allocations, kernel choices): not timed
    TIMED_STEPS = 8

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.first_step = trainer.step_count
        self.started_at: float | None = None  # trainer.elapsed once warm

    def announce_eta(self, bar) -> None:
        t = self.trainer
        taken = t.step_count - self.first_step
        if taken == self.WARM_STEPS:
            self.started_at = t.elapsed
        if taken != self.WARM_STEPS + self.TIMED_STEPS or t.done:
            return
        per_step = (t.elapsed - self.started_at) / self.TIMED_STEPS
        remaining = (planned_steps(t) or t.step_count) - t.step_count
        seconds = remaining * per_step
        left = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
        bar.write(f"eta: {per_step:.2f} s/step measured, so the remaining {remaining:,} steps take about "
                  f"{left} of training (plus evaluations)")
