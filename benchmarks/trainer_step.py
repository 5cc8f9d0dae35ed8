"""What one training step costs as the jobs run it: the Trainer (fused AdamW or Muon, clipping,
the schedule), with glibc's default allocator and with freed memory kept (what the Trainer sets).

Each configuration runs in a fresh process, because keeping freed memory is process-wide and
one-way: a process that kept memory once cannot show the default again.

    python -m benchmarks.trainer_step [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.arms import REPO
from benchmarks.common import format_table, record, run_benchmark, setup

# name -> (shape, vocab, batch): the small preset as pretraining runs it, and the MFU target's shape
SHAPES = {
    "small preset, T=128, B=32 (the pretraining default)": (dict(context_length=128, n_layer=4, n_head=4,
                                                                 d_model=128), 4096, 32),
    "4×128, T=64, B=12": (dict(context_length=64, n_layer=4, n_head=4, d_model=128), 4096, 12),
}
SMOKE = {"smoke": (dict(context_length=16, n_layer=1, n_head=2, d_model=32), 128, 2)}


def time_steps(shape: dict, vocab: int, batch: int, optimizer: str, keep: bool, iters: int, device: str) -> float:
    """Median seconds per Trainer step, measured in this process (the child of `measure`)."""
    from minilm import MiniLM, ModelConfig
    from minilm.common import runtime
    from minilm.train import trainer as trainer_module
    if not keep:  # the Trainer keeps freed memory on a CPU; this row measures glibc's default instead
        trainer_module.keep_freed_memory = lambda: False
    else:
        runtime.keep_freed_memory()
    torch.manual_seed(0)
    model = MiniLM(ModelConfig(vocab_size=vocab, **shape)).to(device)
    settings = trainer_module.OptimSettings(6e-3, 6e-4, 10, 1000, 0.0, 0.1, 1.0, optimizer=optimizer)
    trainer = trainer_module.Trainer(model, settings, torch.device(device), torch.float32)
    tokens = torch.randint(0, vocab, (batch, shape["context_length"] + 1), device=device)
    batch_xy = (tokens[:, :-1], tokens[:, 1:])
    times = []
    for i in range(3 + iters):
        started = time.perf_counter()
        trainer.step([batch_xy], lambda m, b: m(*b)[1])
        if i >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(name: str, optimizer: str, keep: bool, args: argparse.Namespace) -> float:
    """time_steps in a fresh Python process (the allocator setting cannot be undone in this one)."""
    shape, vocab, batch = (SMOKE if args.smoke else SHAPES)[name]
    iters = 1 if args.smoke else (5 if args.quick else 15)
    code = (f"import json; from benchmarks.trainer_step import time_steps; "
            f"print(json.dumps(time_steps({shape!r}, {vocab}, {batch}, {optimizer!r}, {keep}, {iters}, "
            f"{args.device!r})))")
    env_threads = ["-c", f"import torch; torch.set_num_threads({args.threads}); exec({code!r})"] if args.threads \
        else ["-c", code]
    out = subprocess.run([sys.executable, *env_threads], cwd=REPO, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    rows = []
    for name in (SMOKE if args.smoke else SHAPES):
        for optimizer in ("adamw",) if args.smoke else ("adamw", "muon"):
            default, kept = measure(name, optimizer, False, args), measure(name, optimizer, True, args)
            rows.append([name, optimizer, f"{1e3 * default:,.1f}", f"{1e3 * kept:,.1f}", f"{default / kept:.2f}x"])
    table = format_table(["shape", "optimizer", "ms/step, glibc default", "ms/step, freed memory kept",
                          "speed-up"], rows)
    record(args, device, "Trainer step: freed memory kept", [("median of a Trainer step, fp32, CPU", table)],
           ["each cell a fresh process: 3 untimed steps, then the median of the timed ones",
            "the Trainer keeps freed memory on a CPU (minilm/common/runtime.py: keep_freed_memory)"])


def add_args(parser: argparse.ArgumentParser) -> None:
    pass


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
