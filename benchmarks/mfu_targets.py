"""The CPU MFU targets, what stands between a training step and the matmul peak, and the fixes.

Two configurations with targets (fp32, fused attention, CPU):

    medium-like  6 layers × 384 wide, 6 heads, context 256, batch 8, vocab 8192    MFU ≥ 65%
    small-like   4 layers × 128 wide, 4 heads, context 64,  batch 12, vocab 4096   MFU ≥ 50%

Each is timed under a cumulative ladder of harness-side fixes (nothing in minilm/ changes):

    torch defaults     AdamW's for-loop implementation, glibc's default malloc
    + fused AdamW      one pass over each parameter's memory instead of ~10 small kernels
    + keep freed mem   glibc keeps freed blocks, so big tensors stop costing page faults
    + torch.compile    fuses the elementwise ops between matmuls (GELU, norms, RoPE, residuals)

then profiled with torch.profiler (one step, best eager settings) to show where the time goes.

    python -m benchmarks.mfu_targets [--quick] [--no-compile] [--no-profile]
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import format_table, keep_freed_memory, record, run_benchmark, setup, time_fn
from benchmarks.peak import peak_flops_for, refreshed
from benchmarks.workloads import StepOptions, lm_config, lm_loss_of, make_train_step, random_tokens
from minilm import MiniLM

# name -> (shape, vocab, batch, MFU target)
TARGETS = {
    "6×384, T=256, B=8": (dict(context_length=256, n_layer=6, n_head=6, d_model=384), 8192, 8, 0.65),
    "4×128, T=64, B=12": (dict(context_length=64, n_layer=4, n_head=4, d_model=128), 4096, 12, 0.50),
}
SMOKE_SHAPE = (dict(context_length=16, n_layer=1, n_head=2, d_model=32), 128, 2, 0.5)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rung (minutes)")
    parser.add_argument("--no-profile", action="store_true", help="skip the torch.profiler tables")
    parser.add_argument("--peak-gflops", type=float, default=0.0,
                        help="matmul peak to compute MFU against; 0 measures it first (benchmarks.peak)")


def targets_for(args: argparse.Namespace) -> dict[str, tuple[dict[str, int], int, int, float]]:
    return {"smoke": SMOKE_SHAPE} if args.smoke else TARGETS


def ladder(args: argparse.Namespace) -> list[tuple[str, StepOptions, bool]]:
    """(rung name, step options, keep freed memory?) in the order they are applied."""
    rungs = [("torch defaults", StepOptions(optimizer="for-loop"), False),
             ("+ fused AdamW", StepOptions(optimizer="fused"), False),
             ("+ keep freed memory", StepOptions(optimizer="fused"), True)]
    if not (args.no_compile or args.quick or args.smoke):
        rungs.append(("+ torch.compile", StepOptions(optimizer="fused", compile=True), True))
    return rungs


def build_step(shape: dict[str, int], vocab: int, batch: int, device: torch.device, options: StepOptions):
    """(step function, model FLOPs per step) for one target configuration."""
    cfg = lm_config(shape, vocab, attn_impl="fused")
    model = MiniLM(cfg).to(device).train()
    tokens = random_tokens(vocab, batch, cfg.context_length + 1, device)
    step = make_train_step(model, lm_loss_of(tokens), device, options)
    return step, model.flops_per_token(cfg.context_length) * batch * cfg.context_length


def top_ops_table(step, rows: int) -> str:
    """Profile one step; the ops that took the most self CPU time, as a markdown table."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    table = [[e.key, e.count, e.self_cpu_time_total / 1e3, f"{e.self_cpu_time_total / total:.1%}"]
             for e in events[:rows]]
    return format_table(["op", "calls", "self ms", "share"], table)


def run(args: argparse.Namespace, peaks: dict[torch.dtype, float] | None = None) -> None:
    if args.device != "cpu":  # the targets are CPU targets: run them on the CPU next to any GPU
        args.device, peaks = "cpu", None  # (a GPU's peak would make every CPU MFU meaningless)
    device = setup(args)
    peaks = peaks or peak_flops_for(args, device)
    warmup, iters = (0, 1) if args.smoke else (1, 3) if args.quick else (2, 6)
    targets = targets_for(args)
    timed: dict[str, list[tuple[str, object, float]]] = {name: [] for name in targets}
    for rung, options, keep_memory in ladder(args):
        if keep_memory:
            keep_freed_memory()  # process-wide and one-way: that is why the ladder is cumulative
        for name, (shape, vocab, batch, _) in targets.items():
            peaks = refreshed(args, device, peaks)  # next to every row: MFU is never overstated by a low peak
            step, flops = build_step(shape, vocab, batch, device, options)
            timing = time_fn(step, device, warmup + (2 if options.compile else 0), iters)
            timed[name].append((rung, timing, flops))
            print(name, rung, f"{timing.median * 1e3:.0f} ms", flush=True)
    peak = peaks[torch.float32]
    results = {name: [[rung, t.median * 1e3, t.best * 1e3, flops / t.median / 1e9, f"{flops / t.median / peak:.1%}",
                       f"{flops / t.best / peak:.1%}", f"{targets[name][3]:.0%}",
                       "met" if flops / t.median / peak >= targets[name][3] else "missed"]
                      for rung, t, flops in rows] for name, rows in timed.items()}
    columns = ["harness setting (cumulative)", "median ms/step", "best ms/step", "GFLOP/s", "MFU",
               "MFU of best step", "target", "(median)"]
    tables = [(f"{name} (vocab {targets[name][1]})", format_table(columns, rows)) for name, rows in results.items()]
    if not args.no_profile:
        for name, (shape, vocab, batch, _) in targets.items():
            step, _ = build_step(shape, vocab, batch, device, StepOptions(optimizer="fused"))
            step()  # warm: the profile should show steady state, not first-call setup
            tables.append((f"profile, {name}: top ops by self CPU time (fused AdamW, kept memory, eager)",
                           top_ops_table(step, rows=3 if args.smoke else 15)))
    notes = [f"MFU against the highest fp32 matmul peak measured in this run (re-measured before every row), "
             f"{peak / 1e9:.1f} GFLOP/s; fp32, fused attention, "
             f"RoPE, dropout 0; median of {iters} steps after {warmup} warmup steps (compiled: 2 more)"]
    record(args, device, "CPU MFU targets and fixes", tables, notes)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
