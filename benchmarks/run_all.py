"""Run every benchmark, or the ones named by --only, and append their sections to RESULTS.md.

    python -m benchmarks.run_all            # the full set: ~10 minutes on a quiet 2-core CPU
    python -m benchmarks.run_all --quick    # a fast, noisier pass
    python -m benchmarks.run_all --only peak,targets

The matmul peak is measured once, first, and every MFU below it is computed against it. Each
benchmark also runs alone (python -m benchmarks.<name> --help) with its own extra flags; here
they keep their defaults.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks import finetune, generation, mfu_targets, peak, scaling, train, trainer_step
from benchmarks.common import add_common_args

# name -> module, in running order; each has run(args[, peaks]) and (except peak) add_args(parser)
BENCHMARKS = {"peak": peak, "train": train, "targets": mfu_targets, "trainer_step": trainer_step,
              "generation": generation, "scaling": scaling, "finetune": finetune}
USES_PEAK = {"train", "targets", "scaling"}


def module_args(name: str, common_argv: list[str]) -> argparse.Namespace:
    """The namespace the benchmark would get from its own command line with only the common flags."""
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    if hasattr(BENCHMARKS[name], "add_args"):
        BENCHMARKS[name].add_args(parser)
    return parser.parse_args(common_argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    common_argv = strip_only(argv)
    peaks = None
    if "peak" in chosen or USES_PEAK & set(chosen):
        peak_args = module_args("peak", common_argv)
        peak_args.no_record = args.no_record or "peak" not in chosen  # measured for MFU, not reported
        peaks = peak.run(peak_args)
    for name in chosen:
        if name == "peak":
            continue
        module_ns = module_args(name, common_argv)
        if name in USES_PEAK:
            BENCHMARKS[name].run(module_ns, peaks)
        else:
            BENCHMARKS[name].run(module_ns)


def strip_only(argv: list[str] | None) -> list[str]:
    """argv without --only and its value: the flags every benchmark understands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--only":
            skip = True
        elif not arg.startswith("--only="):
            out.append(arg)
    return out


if __name__ == "__main__":
    main()
