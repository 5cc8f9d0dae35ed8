"""Generation speed with and without the KV cache, greedy decoding, batch 1.

Without the cache every new token re-runs the whole sequence so far: token t costs a forward
over t tokens, so n new tokens cost O(n²) token-forwards. With the cache each step feeds one
token and reads the stored keys/values: O(n) token-forwards plus one attention row per step.

The model's context_length is prompt + the longest run (16 + 1024), so the sequence never
outgrows the window: past the window generate() rebuilds the cache from the cropped sequence at
every step, and the comparison would be of two uncached loops.

    python -m benchmarks.generation [--quick] [--preset small]
"""

from __future__ import annotations

import argparse

from benchmarks.common import format_table, record, run_benchmark, setup, time_fn
from benchmarks.workloads import PRESET_VOCAB, lm_config, random_tokens
from minilm import MiniLM
from minilm.model.config import PRESETS

PROMPT_TOKENS = 16


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS),
                        help="model shape (its context_length is replaced by prompt + longest run)")


def lengths_for(args: argparse.Namespace) -> list[int]:
    return [4] if args.smoke else [16, 64] if args.quick else [64, 256, 1024]


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    lengths = lengths_for(args)
    preset = "tiny" if args.smoke else args.preset
    shape = {**PRESETS[preset], "context_length": PROMPT_TOKENS + max(lengths)}
    model = MiniLM(lm_config(shape, PRESET_VOCAB[preset])).to(device).eval()
    prompt = random_tokens(model.cfg.vocab_size, 1, PROMPT_TOKENS, device)
    rows = []
    for n_new in lengths:
        seconds = {}
        for use_cache in (True, False):
            def generate(use_cache=use_cache, n_new=n_new):
                return model.generate(prompt, n_new, temperature=0, use_cache=use_cache)

            # One warmup call, then the median of a few: a 1024-token uncached run is many seconds.
            repeats = 1 if args.smoke or n_new >= 1024 else 3
            seconds[use_cache] = time_fn(generate, device, warmup=0 if args.smoke else 1, iters=repeats).median
        rows.append([n_new, n_new / seconds[True], n_new / seconds[False], seconds[False] / seconds[True]])
        print(rows[-1], flush=True)
    table = format_table(["new tokens", "cached tokens/s", "uncached tokens/s", "cache speedup"], rows)
    notes = [f"preset {preset} shape ({model.num_parameters():,} parameters, vocab {model.cfg.vocab_size}), "
             f"context_length {model.cfg.context_length} = {PROMPT_TOKENS}-token prompt + {max(lengths)}: "
             "no run outgrows the window, so the cache is never rebuilt",
             "batch 1, greedy (temperature 0), eval mode; tokens/s counts new tokens over the whole call, "
             "prompt processing included"]
    record(args, device, "Generation: KV cache vs none", [("greedy generation, batch 1", table)], notes)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
