"""Tiny pretraining and fine-tuning runs for the job tests: seconds on a CPU, no network.

MINILM_TEST_DEVICE=cuda runs them on a GPU (what `python -m benchmarks.gpu_check` does).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from minilm.text.labeled import write_labeled_tsv
from minilm.train.config import FinetuneConfig, PretrainConfig

CORPUS = Path(__file__).parent / "fixtures" / "tiny_corpus.txt"
TINY_MODEL = dict(context_length=32, n_layer=2, n_head=2, d_model=32)
DEVICE = os.environ.get("MINILM_TEST_DEVICE", "cpu")


def tiny_pretrain_config(out: Path, **overrides) -> PretrainConfig:
    values = dict(data=str(CORPUS), out=str(out), preset="tiny", vocab_size=300, batch_size=4, max_steps=12,
                  warmup_steps=2, max_time=0.0, eval_every=4, eval_batches=2, save_every=4, num_samples=1,
                  device=DEVICE, model=dict(TINY_MODEL))
    values.update(overrides)
    return PretrainConfig(**values)


POSITIVE = ["great", "lovely", "wonderful", "excellent"]
NEGATIVE = ["awful", "terrible", "dreadful", "boring"]
THINGS = ["soup", "waiter", "harbour", "sandwich", "room", "film"]


def write_labeled_splits(folder: Path, seed: int = 0, sizes=(128, 40, 40)) -> dict[str, Path]:
    """Short sentences whose label is given by their adjective: learnable in a few steps."""
    rng = random.Random(seed)
    paths = {}
    for name, size in zip(("train", "valid", "test"), sizes, strict=True):
        texts, labels = [], []
        for i in range(size):
            positive = i % 2 == 0
            word = rng.choice(POSITIVE if positive else NEGATIVE)
            texts.append(f"{rng.choice(THINGS)} {word}")
            labels.append("positive" if positive else "negative")
        paths[name] = folder / f"{name}.tsv"
        write_labeled_tsv(paths[name], texts, labels)
    return paths


def tiny_finetune_config(init: Path, out: Path, splits: dict[str, Path], **overrides) -> FinetuneConfig:
    values = dict(init=str(init), shape_from=str(init), train=str(splits["train"]), valid=str(splits["valid"]),
                  test=str(splits["test"]), out=str(out), epochs=3, batch_size=16, lr=3e-3, warmup_steps=2,
                  dropout=0.0, device=DEVICE)
    values.update(overrides)
    return FinetuneConfig(**values)
