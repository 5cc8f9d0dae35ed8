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
import time

import torch

from benchmarks.common import add_common_args, format_table, record, setup, sync


def dtypes_for(device: torch.device) -> list[torch.dtype]:
    """fp32 everywhere; bf16 on GPUs, where tensor cores make it the precision that matters."""
    return [torch.float32, torch.bfloat16] if device.type == "cuda" else [torch.float32]


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
        rows += [[str(dtype).removeprefix("torch."), n, flops / 1e9, "← peak" if flops == best[dtype] else ""]
                 for n, flops in rates.items()]
    table = format_table(["dtype", "n", "GFLOP/s", ""], rows)
    return best, table


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
             "output; FLOPs = 2n³ per call; the best size is the peak MFU is computed against"]
    record(args, device, "Machine peak (square matmul)", [("sustained matmul throughput", table)], notes)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
