"""One Trainer step timed, in a process of its own, against any commit's minilm.

This file imports nothing from benchmarks/ and minilm only inside `time_steps`, so a parent
process can run it with another checkout first on sys.path (`child_command`): the same timing
code then measures today's Trainer and an older commit's (trainer_step.py --before REV).
Each measurement needs a fresh process anyway: keeping freed memory is process-wide and one-way.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch


def time_steps(shape: dict, vocab: int, batch: int, optimizer: str, keep: bool | None, iters: int,
               device: str) -> float:
    """Median seconds per Trainer step of a MiniLM of `shape` on random tokens, after 3 untimed steps.

    keep: True / False force keeping freed memory / glibc's default; None leaves it to the Trainer
    of the minilm imported (older commits know neither the switch nor Muon: "adamw" passes no
    optimizer, so their default, AdamW, runs).
    """
    from minilm import MiniLM, ModelConfig
    from minilm.train import trainer as trainer_module
    if keep is False:  # the Trainer keeps freed memory on a CPU; this measures glibc's default instead
        trainer_module.keep_freed_memory = lambda: False
    elif keep:
        from minilm.common.runtime import keep_freed_memory
        keep_freed_memory()
    torch.manual_seed(0)
    model = MiniLM(ModelConfig(vocab_size=vocab, **shape)).to(device)
    chosen = {} if optimizer == "adamw" else {"optimizer": optimizer}
    settings = trainer_module.OptimSettings(6e-3, 6e-4, 10, 1000, 0.0, 0.1, 1.0, **chosen)
    trainer = trainer_module.Trainer(model, settings, torch.device(device), torch.float32)
    tokens = torch.randint(0, vocab, (batch, shape["context_length"] + 1), device=device)
    batch_xy = (tokens[:, :-1], tokens[:, 1:])  # (B, T) inputs, (B, T) next-token targets
    times = []
    for i in range(3 + iters):
        started = time.perf_counter()
        trainer.step([batch_xy], lambda m, b: m(*b)[1])
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def child_command(tree: Path, call: str, threads: int) -> list[str]:
    """argv for a fresh Python that puts `tree` (a checkout holding minilm/) first on sys.path,
    loads this file by its path and prints `call`'s result (e.g. "time_steps(...)") as JSON."""
    setup = f"import torch; torch.set_num_threads({threads}); " if threads else ""
    code = (f"import json, runpy, sys; {setup}sys.path.insert(0, {str(tree)!r}); "
            f"time_steps = runpy.run_path({__file__!r})['time_steps']; print(json.dumps({call}))")
    return [sys.executable, "-c", code]
