"""Training throughput of the presets: tokens/s, ms/step, MFU and peak memory.

Sweeps preset × attention implementation (× bf16 autocast on a GPU), plus the fused path under
torch.compile. Every step is forward + backward + AdamW (fused implementation, see
mfu_targets.py for why) after warmup steps; the median step is reported. gpt2-small only runs
on a GPU: one step of 8×1024 tokens is ~7 TFLOP, most of a minute on a 2-core CPU.

    python -m benchmarks.train [--quick] [--presets tiny,small] [--compile off|on|both]
"""

from __future__ import annotations

import argparse
import itertools

import torch

from benchmarks.common import MEMORY_NOTE, format_table, record, run_benchmark, setup
from benchmarks.peak import datasheet_mfu, datasheet_note, dtype_label, peak_flops_for, refreshed
from benchmarks.workloads import (
    PRESET_BATCH,
    PRESET_VOCAB,
    StepOptions,
    measure_lm_training,
    preset_config,
    warm_up_process,
)

COLUMNS = ["preset", "attention", "compile", "dtype", "B×T", "ms/step", "tokens/s", "GFLOP/s", "MFU",
           "MFU (datasheet)", "memory MiB"]


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default="",
                        help="comma-separated presets to run (default: tiny,small,medium, "
                             "plus gpt2-small on a GPU; --smoke: tiny)")
    parser.add_argument("--compile", choices=("off", "on", "both"), default="",
                        help="torch.compile the model: off, on, or both side by side; compiled rows use "
                             "fused attention only, each compilation takes minutes on a CPU "
                             "(default: both; off with --quick or --smoke)")
    parser.add_argument("--peak-gflops", type=float, default=0.0,
                        help="matmul peak to compute MFU against; 0 measures it first (benchmarks.peak)")


def presets_for(args: argparse.Namespace, device: torch.device) -> list[str]:
    if args.presets:
        return args.presets.split(",")
    if args.smoke:
        return ["tiny"]
    return ["tiny", "small", "medium"] + (["gpt2-small"] if device.type == "cuda" else [])


def compile_modes(args: argparse.Namespace) -> list[bool]:
    choice = args.compile or ("off" if args.quick or args.smoke else "both")
    return {"off": [False], "on": [True], "both": [False, True]}[choice]


def iterations(args: argparse.Namespace) -> tuple[int, int]:
    """(warmup, timed) steps: compiled graphs and the allocator settle during warmup."""
    return (0, 1) if args.smoke else (1, 3) if args.quick else (3, 8)


def run(args: argparse.Namespace, peaks: dict[torch.dtype, float] | None = None) -> None:
    device = setup(args)
    peaks = peaks or peak_flops_for(args, device)
    warmup, iters = iterations(args)
    dtypes = [None, torch.bfloat16] if device.type == "cuda" else [None]
    warm_up_process(device)
    measured = []  # (row without MFU, achieved FLOP/s, dtype of the matmuls): MFU is computed last
    for preset, attn, compiled, amp in itertools.product(presets_for(args, device), ("explicit", "fused"),
                                                         compile_modes(args), dtypes):
        if compiled and attn == "explicit":
            continue  # one compiled path is enough to show what compiling buys; each costs minutes
        cfg = preset_config(preset, attn)
        batch = 2 if args.smoke else PRESET_BATCH[preset]
        result = measure_lm_training(cfg, batch, cfg.context_length, device,
                                     StepOptions(compile=compiled, autocast=amp), warmup, iters)
        row = [preset, attn, "on" if compiled else "off", "bf16" if amp else dtype_label(torch.float32, device),
               f"{batch}×{cfg.context_length}", result.ms_per_step, result.items_per_s,
               result.achieved_flops / 1e9, result.memory_mib]
        measured.append((row, result.achieved_flops, amp or torch.float32))
        print(row, flush=True)
    peaks = refreshed(args, device, peaks)
    # MFU against the peak of the precision the matmuls run in: measured here, and the vendor's
    rows = [[*row[:-1], f"{flops / peaks[dtype]:.1%}", datasheet_mfu(flops, device, dtype), row[-1]]
            for row, flops, dtype in measured]
    vocab = ", ".join(f"{p} {PRESET_VOCAB[p]}" for p in presets_for(args, device))
    notes = [f"vocab sizes: {vocab}; RoPE, dropout 0, AdamW (fused implementation), "
             f"median of {iters} steps after {warmup} warmup steps; compiled rows use fused attention",
             "MFU = flops_per_token × tokens/s ÷ the highest matmul peak of the same dtype measured in this "
             "run (before and after the sweep: "
             + ", ".join(f"{str(d).removeprefix('torch.')} {f / 1e9:.1f} GFLOP/s" for d, f in peaks.items())
             + ")", datasheet_note(device), MEMORY_NOTE[device.type]]
    record(args, device, "Training throughput by preset", [("training step = forward + backward + AdamW",
                                                            format_table(COLUMNS, rows))], notes)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
