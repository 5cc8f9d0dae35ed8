"""What one training step costs as the jobs run it: the Trainer (fused AdamW or Muon, clipping,
the schedule), with glibc's default allocator and with freed memory kept (what the Trainer sets);
with --before REV, today's Trainer step against the one of an older commit instead.

Each configuration runs in a fresh process (benchmarks/step_timer.py), because keeping freed
memory is process-wide and one-way: a process that kept memory once cannot show the default again.
With --before, the two commits take turns, --rounds times, so a machine whose speed drifts
(this project's 2-core VM drifts by 20-35% over a day) slows both alike; the ratio is the result.

    python -m benchmarks.trainer_step [--quick]
    python -m benchmarks.trainer_step --before f54ebf7 --rounds 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.arms import REPO
from benchmarks.common import format_table, record, run_benchmark, setup
from benchmarks.step_timer import child_command

# name -> (shape, vocab, batch): the small preset as pretraining runs it, and the MFU target's shape
SHAPES = {
    "small preset, T=128, B=32 (the pretraining default)": (dict(context_length=128, n_layer=4, n_head=4,
                                                                 d_model=128), 4096, 32),
    "4×128, T=64, B=12": (dict(context_length=64, n_layer=4, n_head=4, d_model=128), 4096, 12),
}
# --before: the two shapes of the model-level speed target (the CPU MFU targets' shapes)
BEFORE_SHAPES = {
    "4×128, T=64, B=12": SHAPES["4×128, T=64, B=12"],
    "6×384, T=256, B=8, vocab 8192": (dict(context_length=256, n_layer=6, n_head=6, d_model=384), 8192, 8),
}
SMOKE = {"smoke": (dict(context_length=16, n_layer=1, n_head=2, d_model=32), 128, 2)}


def measure(tree: Path, name: str, optimizer: str, keep: bool | None, args: argparse.Namespace) -> float:
    """Median seconds per step of the minilm in `tree`, timed in a fresh Python process."""
    shapes = SMOKE if args.smoke else {**SHAPES, **BEFORE_SHAPES}
    shape, vocab, batch = shapes[name]
    iters = 1 if args.smoke else (5 if args.quick else 15)
    call = f"time_steps({shape!r}, {vocab}, {batch}, {optimizer!r}, {keep}, {iters}, {args.device!r})"
    out = subprocess.run(child_command(tree, call, args.threads), cwd=tree, check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def allocator_rows(args: argparse.Namespace) -> list[list[str]]:
    """Each shape and optimizer with glibc's default allocator and with freed memory kept."""
    rows = []
    for name in (SMOKE if args.smoke else SHAPES):
        for optimizer in ("adamw",) if args.smoke else ("adamw", "muon"):
            default, kept = measure(REPO, name, optimizer, False, args), measure(REPO, name, optimizer, True, args)
            rows.append([name, optimizer, f"{1e3 * default:,.1f}", f"{1e3 * kept:,.1f}", f"{default / kept:.2f}x"])
    return rows


def check_commit(rev: str) -> None:
    """--before must name a commit of this repository: say so in one line, before any timing."""
    try:
        found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO,
                               capture_output=True, text=True)
    except FileNotFoundError:
        raise SystemExit("--before needs git, which is not installed") from None
    if found.returncode:
        raise SystemExit(f"--before {rev}: not a commit of {REPO} (`git log --oneline` lists them)")


def export_commit(rev: str, into: Path) -> Path:
    """The files of commit `rev` of this repository, written into `into` (git archive | tar -x)."""
    archive = subprocess.Popen(["git", "archive", rev], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    archive.wait()
    return into


def before_rows(args: argparse.Namespace) -> list[list[str]]:
    """Each target shape with AdamW: --before's Trainer and today's, in turns, median over the rounds."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = export_commit(args.before, Path(tmp))
        for name in (SMOKE if args.smoke else BEFORE_SHAPES):
            times = {"before": [], "now": []}
            for _ in range(args.rounds):
                times["before"].append(measure(old_tree, name, "adamw", None, args))
                times["now"].append(measure(REPO, name, "adamw", None, args))
            before, now = statistics.median(times["before"]), statistics.median(times["now"])
            pairs = zip(times["before"], times["now"], strict=True)
            spread = ", ".join(f"{1e3 * b:.1f}/{1e3 * n:.1f}" for b, n in pairs)
            rows.append([name, f"{1e3 * before:,.1f}", f"{1e3 * now:,.1f}", f"{before / now:.2f}x", spread])
    return rows


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    if args.before:
        check_commit(args.before)
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.strip()
        table = format_table(["shape", f"ms/step at {args.before}", f"ms/step now ({head} + working tree)", "speed-up",
                              "each round, before/now"], before_rows(args))
        record(args, device, f"Trainer step: now against {args.before}",
               [(f"median of a Trainer step, fp32, AdamW, {args.rounds} rounds", table)],
               ["each cell of a round a fresh process: 3 untimed steps, then the median of the timed ones; "
                "the table shows the median over the rounds",
                "each commit's own Trainer and model as a job runs them (its allocator setting, its defaults)"])
        return
    table = format_table(["shape", "optimizer", "ms/step, glibc default", "ms/step, freed memory kept",
                          "speed-up"], allocator_rows(args))
    record(args, device, "Trainer step: freed memory kept", [("median of a Trainer step, fp32, CPU", table)],
           ["each cell a fresh process: 3 untimed steps, then the median of the timed ones",
            "the Trainer keeps freed memory on a CPU (minilm/common/runtime.py: keep_freed_memory)"])


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--before", default="",
                        help="a commit (hash, tag, HEAD~3) to time against today's code instead; needs git")
    parser.add_argument("--rounds", type=int, default=6, help="with --before: turns each commit takes")


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
