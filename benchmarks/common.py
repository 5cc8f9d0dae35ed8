"""What every benchmark shares: command-line flags, machine description, timing, tables, RESULTS.md.

A benchmark module builds rows (lists of cells), turns them into a markdown table with
`format_table`, and hands the tables to `record`, which prints them and appends a section to
benchmarks/RESULTS.md headed by the machine, the torch version, the date and the exact command.
A number without the machine it was measured on cannot be compared with anything.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from minilm.common.runtime import enable_tf32, keep_freed_memory  # noqa: F401 (benchmarks import it from here)

DEFAULT_RESULTS = Path(__file__).with_name("RESULTS.md")


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags every benchmark accepts (run_all passes them on to each benchmark)."""
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes and iterations: a pass in a few minutes, noisier numbers")
    parser.add_argument("--smoke", action="store_true",
                        help="one iteration on the tiny preset, no warmup: proves the code runs (tests)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="markdown file the results section is appended to")
    parser.add_argument("--no-record", action="store_true", help="print the tables, write nothing")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads for CPU runs; 0 keeps torch's default (one per core)")


def run_benchmark(doc: str, add_args, run, argv: list[str] | None = None) -> None:
    """The command line of one benchmark: the common flags, its own flags (add_args), then run(args)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    add_args(parser)
    run(parser.parse_args(argv))


def setup(args: argparse.Namespace) -> torch.device:
    """Apply the flags that change global state; return the device to run on.

    On a GPU, fp32 matmuls use TF32 tensor cores, as in minilm's jobs (enable_tf32): fp32 rows
    then measure what a training run gets.
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        enable_tf32()
    return device


def sync(device: torch.device) -> None:
    """Wait for queued GPU work; without it a CUDA timer measures only the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Seconds per call over the timed iterations."""

    median: float
    best: float
    iters: int


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> Timing:
    """Run fn warmup times untimed (allocator, caches, lazy init, compilation), then time each call."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), iters)


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh high-water mark (see peak_memory_mib)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        Path("/proc/self/clear_refs").write_text("5")  # Linux: "5" resets VmHWM, the peak RSS


def peak_memory_mib(device: torch.device, baseline_rss_mib: float) -> float:
    """Peak memory since reset_peak_memory, MiB.

    CUDA: torch.cuda.max_memory_allocated (tensors only, not the allocator's cache).
    CPU: the process's peak resident set (VmHWM, after resetting it) minus the resident set
    before the model was built; this counts everything the process touched, tensors and
    allocator slack alike, which is what a machine's RAM has to hold.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return rss_mib("VmHWM") - baseline_rss_mib


def rss_mib(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident set of this process from /proc, MiB; 0 elsewhere."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # reported in kB
    return 0.0


MEMORY_NOTE = {
    "cuda": "memory = torch.cuda.max_memory_allocated during the timed steps",
    "cpu": "memory = peak RSS (VmHWM, reset before each config via /proc/self/clear_refs) minus RSS "
           "before the model was built: weights, grads, optimizer state, activations, allocator slack",
}


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_lines(device: torch.device, processes: int = 1) -> list[str]:
    """The facts a reader needs before trusting any number below them; `processes`: how many of this
    benchmark's processes ran at once, each with torch's thread count (the ablations' --parallel)."""
    load1, load5, _ = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    # The load average counts this benchmark's own busy threads too: above that, someone else is busy.
    others_busy = load1 > processes * torch.get_num_threads() + 0.5
    lines = [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch threads: {torch.get_num_threads()}",
        f"- GPU: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'none (run on CPU)'}",
        f"- torch {torch.__version__}, Python {platform.python_version()}, {platform.system()}",
        f"- load average when recorded (1 min, 5 min): {load1:.2f}, {load5:.2f}, this run's own threads "
        "included" + (" — more than they account for: other processes were competing, expect noise"
                      if others_busy else ""),
    ]
    return lines


def command_line() -> str:
    """The exact command that produced a section, as it could be pasted into a shell."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None else ["python", sys.argv[0]]
    if "pytest" in sys.argv[0]:
        head = ["pytest"]  # called from the smoke test: the arguments are not the benchmark's
    return shlex.join(head + sys.argv[1:])


def format_table(columns: list[str], rows: list[list[object]]) -> str:
    """A markdown table; floats get 3 significant digits (measurement noise is a few %)."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record(args: argparse.Namespace, device: torch.device, title: str,
           tables: list[tuple[str, str]], notes: list[str]) -> None:
    """Print the tables; append them with the machine, date and command to args.results."""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    own = machine_lines(device, getattr(args, "parallel", 1))  # the ablations run --parallel arms at once
    parts = [f"## {title} — {stamp}", "", *own, f"- command: `{command_line()}`", ""]
    for caption, table in tables:
        parts += [f"**{caption}**", "", table, ""]
    parts += [f"- {note}" for note in notes]
    section = "\n".join(parts).rstrip() + "\n\n"
    print(section)
    if args.no_record:
        return
    args.results.parent.mkdir(parents=True, exist_ok=True)
    is_new = not args.results.exists()
    with args.results.open("a") as f:
        if is_new:
            f.write("# Benchmark results\n\nAppended by `python -m benchmarks.run_all` "
                    "(see benchmarks/README.md). Newest sections last.\n\n")
        f.write(section)
