"""Running the arms of an ablation: each arm a command a user could type, several seeds, a table.

recipe.py (pretraining) and finetune_recipe.py (fine-tuning) both describe their arms as flag
lists, run each one as its own process (so every arm pays what a user would pay: start-up,
tokenizing, evaluating), and summarise every arm over its seeds as mean ± half the spread.
"""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_logged(commands: list[list[str]], log: Path, threads: int) -> None:
    """Run the commands one after another from the repo root, their output into `log`; with
    threads > 0, each process gets that many CPU threads (OMP_NUM_THREADS)."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        for command in commands:
            subprocess.run(command, check=True, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def run_jobs(jobs: list[tuple[str, Callable[[], dict]]], parallel: int) -> dict[str, list[dict]]:
    """Run (row label, job) pairs, `parallel` at a time; each label's results in job order.
    With 2 at a time on a 2-core machine, give each process one thread (run_logged's threads=1):
    the arms then share the machine alike, and each gets the same CPU-minutes."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [(label, pool.submit(job)) for label, job in jobs]
        results: dict[str, list[dict]] = {}
        for label, future in futures:
            results.setdefault(label, []).append(future.result())
    return results


def mean_and_spread(values: list[float], digits: int = 4) -> tuple[float, str]:
    """(mean, "mean ± half the spread") over seeds; a single seed shows no spread."""
    mean = statistics.fmean(values)
    spread = f" ± {(max(values) - min(values)) / 2:.{digits}f}" if len(values) > 1 else ""
    return mean, f"{mean:.{digits}f}{spread}"
