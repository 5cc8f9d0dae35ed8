"""Machine peak: the matmul FLOP/s this device sustains, the ceiling every MFU is measured against.

A square (n, n) @ (n, n) matmul does n³ multiply-adds = 2n³ FLOPs. Small n is dominated by
call overhead and cache misses, very large n by memory traffic or thermal limits; somewhere in
between the BLAS library runs closest to the hardware's limit. We time each size for a fixed
wall-clock window (sustained, not a single lucky call) and report the best size's rate.

For reference, one Zen 3 core does 2 FMA units × 8 fp32 lanes × 2 FLOPs = 32 FLOPs per cycle,
about 100 GFLOP/s at 3 GHz; a matmul peak well below cores × that means the cores are shared
or throttled.

    python -m benchmarks.peak [--quick]
"""

from __future__ import annotations

import argparse
import re
import time

import torch

from benchmarks.common import add_common_args, format_table, record, setup, sync

# Dense tensor-core peaks from NVIDIA's datasheets, in TFLOP/s (no 2:4 sparsity), as published
# MFU figures use them. fp32 matmuls run as TF32 on a GPU (minilm's jobs and these benchmarks
# enable it), so the fp32 rows are measured against the TF32 peak. GeForce cards are listed at
# the fp32-accumulate rate, which is what torch's matmuls use. First matching pattern wins, so
# specific names come before general ones ("A100" before "A10").
DATASHEET_PEAKS = [  # (regex on torch.cuda.get_device_name, {"bf16", "fp16", "tf32": TFLOP/s})
    (r"H100.*PCIe", {"bf16": 756, "fp16": 756, "tf32": 378}),
    (r"H100.*NVL", {"bf16": 835, "fp16": 835, "tf32": 418}),
    (r"H100|H200|GH200", {"bf16": 989, "fp16": 989, "tf32": 495}),
    (r"A100", {"bf16": 312, "fp16": 312, "tf32": 156}),
    (r"L40S", {"bf16": 362, "fp16": 362, "tf32": 183}),
    (r"\bA10\b", {"bf16": 125, "fp16": 125, "tf32": 62.5}),
    (r"\bL4\b", {"bf16": 121, "fp16": 121, "tf32": 60}),
    (r"RTX 4090", {"bf16": 165, "fp16": 165, "tf32": 82.6}),
    (r"RTX 3090", {"bf16": 71, "fp16": 71, "tf32": 35.6}),
    (r"V100", {"fp16": 125}),  # no bf16 or TF32 tensor cores before Ampere
    (r"\bT4\b", {"fp16": 65}),
]
DATASHEET_KEY = {torch.float32: "tf32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def datasheet_peak(device_name: str, dtype: torch.dtype) -> float | None:
    """The vendor's peak FLOP/s of this GPU for matmuls in dtype, or None if the table lacks it."""
    for pattern, peaks in DATASHEET_PEAKS:
        if re.search(pattern, device_name):
            tflops = peaks.get(DATASHEET_KEY[dtype])
            return tflops * 1e12 if tflops else None
    return None


def dtypes_for(device: torch.device) -> list[torch.dtype]:
    """fp32 everywhere (TF32 on a GPU); bf16 and fp16 on GPUs, where tensor cores make them matter."""
    return [torch.float32, torch.bfloat16, torch.float16] if device.type == "cuda" else [torch.float32]


def sizes_for(args: argparse.Namespace, device: torch.device) -> list[int]:
    if args.smoke:
        return [64]
    if device.type == "cuda":
        return [2048, 4096, 8192] if not args.quick else [4096]
    return [256, 512, 1024, 2048] if not args.quick else [512, 1024]


def sustained_matmul_flops(n: int, dtype: torch.dtype, device: torch.device, seconds: float,
                           windows: int) -> float:
    """FLOP/s of back-to-back (n, n) @ (n, n) matmuls: the best of `windows` windows of `seconds` each.

    Each window is long enough to be sustained (caches, clocks and the BLAS thread pool are in
    steady state); taking the best window discards the ones where another process held a core.
    """
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)  # reused: we time the matmul, not malloc
    torch.mm(a, b, out=out)  # warmup: BLAS picks its kernel and touches the pages
    sync(device)
    best = 0.0
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        while True:
            for _ in range(4):  # a few calls per clock read, so the loop costs nothing measurable
                torch.mm(a, b, out=out)
            calls += 4
            sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, 2 * n**3 * calls / elapsed)
    return best


def windows_per_size(args: argparse.Namespace) -> tuple[float, int]:
    """(seconds per window, windows) for each matrix size."""
    return (0.01, 1) if args.smoke else (0.25, 2) if args.quick else (0.5, 4)


def measure_peak(args: argparse.Namespace, device: torch.device) -> tuple[dict[torch.dtype, float], str]:
    """Best sustained FLOP/s per dtype, and the markdown table of every size tried."""
    seconds, windows = windows_per_size(args)
    best: dict[torch.dtype, float] = {}
    rows = []
    for dtype in dtypes_for(device):
        rates = {n: sustained_matmul_flops(n, dtype, device, seconds, windows) for n in sizes_for(args, device)}
        best[dtype] = max(rates.values())
        rows += [[dtype_label(dtype, device), n, flops / 1e9, "← peak" if flops == best[dtype] else ""]
                 for n, flops in rates.items()]
    table = format_table(["dtype", "n", "GFLOP/s", ""], rows)
    return best, table


def dtype_label(dtype: torch.dtype, device: torch.device) -> str:
    """"float32", or "float32 (TF32)" on a GPU, where the matmuls run on TF32 tensor cores."""
    name = str(dtype).removeprefix("torch.")
    return name + " (TF32)" if dtype == torch.float32 and device.type == "cuda" else name


def datasheet_mfu(flops: float, device: torch.device, dtype: torch.dtype) -> str:
    """Achieved FLOP/s over the datasheet peak, as published MFU figures are; "—" on a CPU or an unlisted GPU."""
    peak = datasheet_peak(torch.cuda.get_device_name(device), dtype) if device.type == "cuda" else None
    return f"{flops / peak:.1%}" if peak else "—"


def datasheet_note(device: torch.device) -> str:
    """The datasheet peaks the GPU MFU columns divide by, or why there are none."""
    if device.type != "cuda":
        return "no datasheet MFU on a CPU: the measured peak is the only ceiling"
    name = torch.cuda.get_device_name(device)
    peaks = {DATASHEET_KEY[d]: datasheet_peak(name, d) for d in dtypes_for(device)}
    known = ", ".join(f"{k} {v / 1e12:g} TFLOP/s" for k, v in peaks.items() if v)
    return (f"datasheet peaks of the {name} (dense): {known}" if known else
            f"the {name} is not in benchmarks/peak.py DATASHEET_PEAKS: add its datasheet numbers")


def peak_flops_for(args: argparse.Namespace, device: torch.device) -> dict[torch.dtype, float]:
    """The peak other benchmarks divide by: --peak-gflops (fp32) if given, else measured now, unrecorded."""
    given = getattr(args, "peak_gflops", 0.0)
    if given and device.type == "cpu":
        return {torch.float32: given * 1e9}
    return measure_peak(args, device)[0]


def refreshed(args: argparse.Namespace, device: torch.device,
              peaks: dict[torch.dtype, float]) -> dict[torch.dtype, float]:
    """peaks, raised to a fresh measurement at the largest size where that is higher.

    On a shared machine a peak measured while another process held a core is too low, and every
    MFU divided by it too high (we saw 135%). Measuring again next to the workload and keeping
    the highest value seen makes MFU conservative: it can be understated by noise, not overstated.
    """
    n = max(sizes_for(args, device))
    return {dtype: max(flops, sustained_matmul_flops(n, dtype, device, *windows_per_size(args)))
            for dtype, flops in peaks.items()}


def run(args: argparse.Namespace) -> dict[torch.dtype, float]:
    device = setup(args)
    best, table = measure_peak(args, device)
    seconds, windows = windows_per_size(args)
    notes = [f"each size: the best of {windows} windows of {seconds} s of back-to-back calls into a reused "
             "output; FLOPs = 2n³ per call; the best size is the peak MFU is computed against",
             datasheet_note(device)]
    record(args, device, "Machine peak (square matmul)", [("sustained matmul throughput", table)], notes)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
