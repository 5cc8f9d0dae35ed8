"""How a training step's time grows with context length, width and depth.

Per token, a step costs 6·N_matmul FLOPs in the weights plus 12·n_layer·T·C in attention
(scores QKᵀ and the weighted sum of V, forward and backward). N_matmul ≈ 12·n_layer·C² + V·C
does not depend on T, so as T doubles the attention term doubles and eventually dominates:
it equals the 6·12·n_layer·C² of the blocks' weights at T = 6·C. The table shows that share
next to the measured time. Every row processes the same number of tokens per step (B = tokens/T),
so µs/token is comparable down a column.

    python -m benchmarks.scaling [--quick] [--tokens 4096]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import format_table, record, run_benchmark, setup
from benchmarks.peak import peak_flops_for, refreshed
from benchmarks.workloads import StepOptions, lm_config, measure_lm_training

VOCAB = 4096
BASE = dict(n_layer=4, d_model=128, context_length=256)  # the "small" preset's block, context 256
HEAD_SIZE = 32  # n_head = d_model / 32 keeps the per-head work the same as width grows


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, default=0,
                        help="tokens per training step, B·T (default 4096; --quick 1024; --smoke 32)")
    parser.add_argument("--peak-gflops", type=float, default=0.0,
                        help="matmul peak to compute MFU against; 0 measures it first (benchmarks.peak)")


def sweeps(args: argparse.Namespace) -> list[tuple[str, dict[str, int], str]]:
    """(sweep name, shape, attention impl) for every row."""
    if args.smoke:
        return [("context", dict(n_layer=1, d_model=32, context_length=16), "fused")]
    contexts = [128, 256, 512, 1024] if not args.quick else [128, 512]
    widths = [64, 128, 256, 512] if not args.quick else [64, 256]
    depths = [2, 4, 8] if not args.quick else [2, 8]
    rows = [("context", {**BASE, "context_length": t}, impl) for t in contexts for impl in ("fused", "explicit")]
    rows += [("width", {**BASE, "d_model": c}, "fused") for c in widths]
    rows += [("depth", {**BASE, "n_layer": n}, "fused") for n in depths]
    return rows


def attention_share(n_layer: int, d_model: int, T: int, flops_per_token: float) -> float:
    """12·L·T·C / (6·N_matmul + 12·L·T·C): the fraction of a token's FLOPs spent in attention."""
    return 12 * n_layer * T * d_model / flops_per_token


def run(args: argparse.Namespace, peaks: dict[torch.dtype, float] | None = None) -> None:
    device = setup(args)
    peaks = peaks or peak_flops_for(args, device)
    tokens = args.tokens or (32 if args.smoke else 1024 if args.quick else 4096)
    warmup, iters = (0, 1) if args.smoke else (1, 2) if args.quick else (2, 4)
    measured = []  # (row without MFU, achieved FLOP/s): MFU is computed last, against the refreshed peak
    for sweep, shape, impl in sweeps(args):
        cfg = lm_config({**shape, "n_head": max(1, shape["d_model"] // HEAD_SIZE)}, VOCAB, impl)
        T, batch = cfg.context_length, max(1, tokens // cfg.context_length)
        result = measure_lm_training(cfg, batch, T, device, StepOptions(), warmup, iters)
        flops_per_token = result.achieved_flops * result.ms_per_step / 1e3 / (batch * T)
        row = [sweep, impl, cfg.n_layer, cfg.d_model, T, batch, result.ms_per_step, 1e6 / result.items_per_s,
               f"{attention_share(cfg.n_layer, cfg.d_model, T, flops_per_token):.0%}", result.achieved_flops / 1e9]
        measured.append((row, result.achieved_flops))
        print(row, flush=True)
    peak = refreshed(args, device, peaks)[torch.float32]
    rows = [[*row, f"{flops / peak:.0%}"] for row, flops in measured]
    table = format_table(["sweep", "attention", "layers", "d_model", "T", "B", "ms/step", "µs/token",
                          "attention FLOPs share", "GFLOP/s", "MFU"], rows)
    notes = [f"{tokens} tokens per step (B = {tokens}/T), vocab {VOCAB}, head size {HEAD_SIZE}, fp32, "
             f"fused AdamW; median of {iters} steps after {warmup} warmup; MFU against the highest fp32 "
             f"matmul peak measured in this run, {peak / 1e9:.1f} GFLOP/s",
             "attention FLOPs share = 12·L·T·C / flops_per_token, the formula's count: causal masking "
             "means the kernels need only about half of those FLOPs, which flops_per_token does not discount"]
    record(args, device, "Scaling: context, width, depth", [("training step time as the model grows", table)],
           notes)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
