"""The labeled splits a fine-tuning job reads: files -> label map -> token ids per split.

train, valid and test (+ transfer) come from the user's files, or are carved out of --train by
--valid-fraction / --test-fraction, or are the embedded review data; every text is tokenized
once, cut to what the classifier can read (its context, or its windows).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from minilm.common.errors import UserError
from minilm.model.classifier import window_starts
from minilm.reviews.world import ensure_default_data
from minilm.text.augment import augment_texts
from minilm.text.labeled import LabelMap, classification_batches, encode_texts, read_labeled, stratified_holdout
from minilm.text.tokenizer import Tokenizer
from minilm.train.config import FinetuneConfig


@dataclass
class Split:
    """One labeled file, tokenized: texts, label ids, token id sequences."""

    name: str
    texts: list[str]
    label_ids: list[int]
    seqs: list[list[int]]


def load_splits(cfg: FinetuneConfig, tokenizer: Tokenizer, max_length: int,
                head_and_tail: bool = False) -> tuple[dict[str, Split], LabelMap]:
    """Read train/valid/test (+ transfer), build the label map from train, tokenize everything
    (texts over max_length tokens cut: to their start, or with head_and_tail to start and end)."""
    paths = {"train": cfg.train, "valid": cfg.valid, "test": cfg.test, "transfer": cfg.transfer}
    if not cfg.train and any(paths.values()):
        given = [f"--{name}" for name, path in paths.items() if path]
        raise UserError(f"{' and '.join(given)} given without --train: pass --train too, or none of them "
                        f"to use the embedded review data")
    fractions = {"valid": cfg.valid_fraction, "test": cfg.test_fraction}
    if not cfg.train:
        if any(fractions.values()):
            raise UserError("--valid-fraction and --test-fraction split your own --train file; the embedded "
                            "data has its own valid and test files")
        default = ensure_default_data()
        paths = {name: str(default[name]) for name in paths}
    for name in ("valid", "test"):
        if paths[name] and fractions[name]:
            raise UserError(f"--{name} and --{name}-fraction both given: use the file, or carve the split "
                            f"out of --train, not both")
    missing = [name for name in ("valid", "test") if not paths[name] and not fractions[name]]
    if missing:
        raise UserError(f"--train was given without --{' and --'.join(missing)}: pass the labeled file(s), or "
                        f"hold out part of --train with --{'-fraction 0.1 and --'.join(missing)}-fraction 0.1")
    raw = {name: read_labeled(path, cfg.text_column or None, cfg.label_column)
           for name, path in paths.items() if path}
    raw.update(carve_holdouts(raw, fractions, cfg.seed))
    labels = LabelMap.from_labels(raw["train"][1])
    if len(labels) < 2:
        raise UserError(f"{paths['train']} has only one label ({labels.names[0]!r}); a classifier needs at least "
                        f"two (is --label-column {cfg.label_column!r} the right column?)")
    splits, truncated = {}, 0
    for name, (texts, label_strings) in raw.items():
        seqs, n_cut = encode_texts(tokenizer, texts, max_length, f"encoding {name}", head_and_tail)
        truncated += n_cut
        splits[name] = Split(name, texts, labels.encode(label_strings, name), seqs)
    if truncated:
        kept = "their first quarter and their end were" if head_and_tail else "their start was"
        print(f"note: {truncated} texts were longer than {max_length} tokens; {kept} kept "
              f"({'--max-windows, ' if head_and_tail else ''}--max-length)")
    return splits, labels


def carve_holdouts(raw: dict[str, tuple[list[str], list[str]]], fractions: dict[str, float],
                   seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """--valid-fraction / --test-fraction: hold those shares of train out, label by label (test first,
    then valid from what is left). Changes raw["train"]; returns the carved splits."""
    carved = {}
    for offset, name in enumerate(("test", "valid")):
        if not fractions[name]:
            continue
        texts, labels = raw["train"]
        kept, held = stratified_holdout(labels, fractions[name], seed + offset)
        if not held:  # every label has a single example left: nothing can be held out
            raise UserError(f"--{name}-fraction {fractions[name]}: the training file has too few examples per label "
                            f"({len(labels)} in all) to hold any out; pass a --{name} file or more labeled data")
        carved[name] = ([texts[i] for i in held], [labels[i] for i in held])
        raw["train"] = ([texts[i] for i in kept], [labels[i] for i in kept])
        print(f"{name}: {len(held)} examples held out of the training file (--{name}-fraction {fractions[name]})")
    return carved


def class_weight_tensor(split: Split, num_labels: int, device: torch.device) -> torch.Tensor:
    """w_c = N / (num_labels · N_c): every class contributes equally to the loss on average."""
    counts = torch.bincount(torch.tensor(split.label_ids), minlength=num_labels).float().clamp(min=1)
    return (counts.sum() / (num_labels * counts)).to(device)


def epoch_sequences(cfg: FinetuneConfig, train: Split, tokenizer: Tokenizer, epoch: int,
                    context_length: int) -> list[list[int]]:
    """The training token ids of one epoch: with --augment, this epoch's variants re-tokenized;
    with --long-texts windows --train-windows one, one window of each long text, drawn anew each
    epoch (seeded), so an epoch costs what truncation costs and over the epochs every part of a
    text is read."""
    seqs = train.seqs
    stride, _ = cfg.windows_for(context_length)
    if cfg.augment:
        texts = augment_texts(train.texts, cfg.augment, cfg.seed, epoch)
        # Edits only drop or reorder words, so the originals' longest length (already within
        # --max-length and the windows) also bounds the variants.
        longest = max(len(seq) for seq in train.seqs)
        seqs = encode_texts(tokenizer, texts, max(longest, 3), head_and_tail=bool(stride))[0]
    if stride and cfg.train_windows == "one" and any(len(seq) > context_length for seq in seqs):
        rng = random.Random(f"windows-{cfg.seed}-{epoch}")  # a str seed hashes the same in every process
        seqs = [one_window(seq, context_length, stride, rng) for seq in seqs]
    return seqs


def one_window(seq: list[int], T: int, stride: int, rng: random.Random) -> list[int]:
    """A text that fits the context as it is; a longer one, one of the windows the classifier reads, at random."""
    if len(seq) <= T:
        return seq
    start = rng.choice(window_starts(len(seq), T, stride))
    return seq[start:start + T]


def endless_batches(seqs_of_epoch: Callable[[int], list[list[int]]], label_ids: list[int], batch_size: int,
                    seed: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Shuffled batches, epoch after epoch, for runs counted in steps rather than epochs (the
    linear probe, the learning-rate range test); seqs_of_epoch(epoch) gives that epoch's token ids."""
    for epoch in itertools.count(1):
        yield from classification_batches(seqs_of_epoch(epoch), label_ids, batch_size, Tokenizer.pad_id,
                                          shuffle=True, seed=seed, epoch=epoch)
