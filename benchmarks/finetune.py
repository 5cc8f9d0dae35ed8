"""Fine-tuning throughput of the classifier, and the latency of classifying one sentence.

Training: MiniLMForSequenceClassification steps (forward, cross-entropy on labels, backward,
AdamW) on right-padded batches whose real lengths vary, as a review data set's would. Padding
positions are computed like any other (the attention mask hides them, it does not skip them),
so throughput depends on the padded length, not the real one.

Latency: one ~20-token sentence, batch 1, a single forward in inference mode: what a user of a
deployed classifier waits for. Many repeats, median and 90th percentile (the tail shows noise).

    python -m benchmarks.finetune [--quick] [--preset small]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import format_table, record, run_benchmark, setup
from benchmarks.workloads import PRESET_VOCAB, StepOptions, lm_config, measure_training
from minilm import MiniLMForSequenceClassification
from minilm.model.config import PRESETS

BATCH = 16
SENTENCE_TOKENS = 20


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS), help="body shape of the classifier")


def padded_batch(vocab: int, batch: int, seq_len: int, device: torch.device):
    """Right-padded ids (B, T), attention mask (B, T), labels (B,); real lengths uniform in [T/4, T]."""
    g = torch.Generator().manual_seed(1234)
    lengths = torch.randint(max(1, seq_len // 4), seq_len + 1, (batch,), generator=g)
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()  # (B, T): 1 = real token
    ids = torch.randint(1, vocab, (batch, seq_len), generator=g) * mask  # padding id 0
    labels = torch.randint(2, (batch,), generator=g)
    return ids.to(device), mask.to(device), labels.to(device)


def training_row(cfg, batch: int, device: torch.device, warmup: int, iters: int) -> list[object]:
    ids, mask, labels = padded_batch(cfg.vocab_size, batch, cfg.context_length, device)
    result = measure_training(lambda: (MiniLMForSequenceClassification(cfg, num_labels=2),
                                       lambda model: model(ids, mask, labels)[1]),
                              batch, lambda model: 0.0, device, StepOptions(), warmup, iters)
    real = mask.float().mean().item()
    return [f"{batch}×{cfg.context_length}", f"{real:.0%}", result.ms_per_step, result.items_per_s,
            result.items_per_s * cfg.context_length * real]


@torch.inference_mode()
def latency_row(cfg, device: torch.device, repeats: int) -> list[object]:
    model = MiniLMForSequenceClassification(cfg, num_labels=2).to(device).eval()
    ids = torch.randint(1, cfg.vocab_size, (1, SENTENCE_TOKENS), device=device)
    mask = torch.ones_like(ids)
    model(ids, mask)  # first call: lazy initialisation, not latency
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(ids, mask)[0].argmax(-1).tolist()  # .tolist(): the answer has reached Python (syncs a GPU)
        times.append(time.perf_counter() - start)
    times.sort()
    return [SENTENCE_TOKENS, repeats, statistics.median(times) * 1e3, times[int(0.9 * (repeats - 1))] * 1e3]


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    preset = "tiny" if args.smoke else args.preset
    cfg = lm_config(PRESETS[preset], PRESET_VOCAB[preset])
    warmup, iters = (0, 1) if args.smoke else (1, 3) if args.quick else (2, 8)
    batch = 2 if args.smoke else BATCH
    train = format_table(["B×T (padded)", "real tokens", "ms/step", "examples/s", "real tokens/s"],
                         [training_row(cfg, batch, device, warmup, iters)])
    repeats = 3 if args.smoke else 50 if args.quick else 300
    latency = format_table(["sentence tokens", "repeats", "median ms", "p90 ms"],
                           [latency_row(cfg, device, repeats)])
    notes = [f"preset {preset} body (vocab {cfg.vocab_size}), 2 labels, last-token pooling, fp32, "
             f"fused AdamW; training: median of {iters} steps after {warmup} warmup"]
    record(args, device, "Fine-tuning and single-sentence latency",
           [("classifier training step on padded batches", train),
            ("predict one sentence: batch 1, one forward, inference mode", latency)], notes)


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
