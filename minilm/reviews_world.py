"""The embedded default data: a small world of reviews, generated from a seed in a few seconds.

Five files, written to one folder:

    unlabeled.txt   70,000 reviews, one a line, for pretraining; visible AND transfer sentiment words
    train.tsv       1,600 labeled reviews (labels are scarce); visible words only
    valid.tsv         500 labeled reviews; visible words only
    test.tsv        1,000 labeled reviews; visible words only
    transfer.tsv    1,000 labeled reviews whose sentiment is carried ONLY by transfer words

The labeled splits lean on negation and contrast, so counting words is not enough. The transfer
split can only be solved by a model that learned, from unlabeled text alone, that "superb" behaves
like "great": its reviews come in pairs that differ only in their sentiment words, so every other
word is equally common under both labels and a bag of words scores exactly 50% on it.

    from minilm.reviews_world import ensure_default_data
    paths = ensure_default_data()          # {"unlabeled": Path, "train": Path, ...}
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from minilm.reviews_grammar import ReviewWriter
from minilm.reviews_vocab import DOMAINS, TRANSFER, VISIBLE, Lexicon

SPLITS = ("unlabeled", "train", "valid", "test", "transfer")
LABELS = {True: "positive", False: "negative"}

# 70k reviews of ~40 words: ~2.8M words, ~3.4M tokens with a 4k BPE vocabulary, about one pass
# of an 8-minute pretraining run on a 2-core CPU.
N_UNLABELED = 70_000
N_TRAIN, N_VALID, N_TEST, N_TRANSFER = 1_600, 500, 1_000, 1_000


def unlabeled_review(writer: ReviewWriter, positive: bool) -> str:
    """A full review: opener, two to four opinions about aspects, then verdicts that follow.

    Some sentences after the first open with a link ("sadly, ...", "luckily, ..."), which exists
    only here: see LINKS in reviews_vocab.py for why.
    """
    rng = writer.rng
    writer.new_review()
    parts = [writer.opener()] if rng.random() < 0.6 else []
    if rng.random() < 0.15:
        parts.append(writer.verdict(positive))  # some writers lead with the verdict
    for i in range(rng.randint(2, 4)):
        if i > 0 and rng.random() < 0.3:
            parts.append(writer.linked(positive, p_negated=0.25))
        else:
            parts.append(writer.aspect_sentence(positive, p_contrast=0.2, p_negated=0.25))
        if rng.random() < 0.15:
            parts.append(writer.filler())
    verdicts: list[str] = []
    for _ in range(rng.randint(1, 3)):
        verdict = writer.verdict(positive)
        if verdict not in verdicts and verdict not in parts:
            verdicts.append(verdict)
    return " ".join(parts + verdicts)


def labeled_review(writer: ReviewWriter, positive: bool) -> str:
    """A short review for the labeled splits, where negation and contrast do much of the work."""
    rng = writer.rng
    writer.new_review()
    parts = [writer.opener()] if rng.random() < 0.25 else []
    parts.append(writer.aspect_sentence(positive, p_contrast=0.33, p_negated=0.33))
    if rng.random() < 0.3:
        parts.append(writer.aspect_sentence(positive, p_contrast=0.33, p_negated=0.33))
    if rng.random() < 0.15:
        parts.append(writer.verdict(positive))
    return " ".join(parts)


def transfer_review(writer: ReviewWriter, positive: bool) -> str:
    """A short, plain review: no negation, no contrast, no verdict; sentiment words decide alone."""
    rng = writer.rng
    writer.new_review()
    parts = [writer.opener()] if rng.random() < 0.3 else []
    for _ in range(rng.randint(1, 2)):
        parts.append(writer.aspect_sentence(positive, p_contrast=0.0, p_negated=0.0))
    return " ".join(parts)


def _writers(rng: random.Random, lexicons: tuple[Lexicon, ...]) -> list[ReviewWriter]:
    return [ReviewWriter(rng, domain, lexicons) for domain in DOMAINS]


def unlabeled_corpus(seed: int, n: int) -> list[str]:
    """`n` reviews with a random opinion each; every sentiment slot may hold a transfer word."""
    rng = random.Random(f"{seed}-unlabeled")
    writers = _writers(rng, (VISIBLE, TRANSFER))
    return [unlabeled_review(rng.choice(writers), rng.random() < 0.5) for _ in range(n)]


def labeled_split(seed: int, name: str, n: int, seen: set[str]) -> list[tuple[str, str]]:
    """`n` labeled reviews (exactly half positive) with visible words only, none already in `seen`."""
    rng = random.Random(f"{seed}-{name}")
    writers = _writers(rng, (VISIBLE,))
    rows: list[tuple[str, str]] = []
    while len(rows) < n:
        positive = len(rows) % 2 == 0
        text = labeled_review(rng.choice(writers), positive)
        if text not in seen:
            seen.add(text)
            rows.append((text, LABELS[positive]))
    rng.shuffle(rows)
    return rows


def transfer_split(seed: int, n: int, seen: set[str]) -> list[tuple[str, str]]:
    """`n` reviews with transfer words only, written in pairs from one random state.

    Each pair is rendered twice from the same state, once per polarity. The word lists of each
    polarity have equal lengths, so both renderings make the same choices: the same template,
    aspects, degree words and length, and only the sentiment words differ.
    """
    rng = random.Random(f"{seed}-transfer")
    writers = _writers(rng, (TRANSFER,))
    rows: list[tuple[str, str]] = []
    while len(rows) < n:
        writer = rng.choice(writers)
        state = rng.getstate()
        positive_text = transfer_review(writer, True)
        rng.setstate(state)
        negative_text = transfer_review(writer, False)
        if positive_text not in seen and negative_text not in seen:
            seen.update((positive_text, negative_text))
            rows += [(positive_text, LABELS[True]), (negative_text, LABELS[False])]
    rng.shuffle(rows)
    return rows


def _write_atomic(path: Path, lines: list[str]) -> None:
    """Write to a temporary file, then rename: a crash never leaves a half-written data file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def split_paths(directory: str | Path) -> dict[str, Path]:
    directory = Path(directory)
    return {name: directory / (name + (".txt" if name == "unlabeled" else ".tsv")) for name in SPLITS}


def generate(directory: str | Path = "data/reviews", seed: int = 0, n_unlabeled: int = N_UNLABELED,
             n_train: int = N_TRAIN, n_valid: int = N_VALID, n_test: int = N_TEST,
             n_transfer: int = N_TRANSFER) -> dict[str, Path]:
    """Write all five files (overwriting) and return their paths; same seed, same bytes.

    Each split has its own random stream, so `n_unlabeled` (a size knob for fast tests) leaves the
    labeled splits unchanged. Texts seen in an earlier split are rejected, so no review is in two.
    """
    paths = split_paths(directory)
    paths["train"].parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()  # filled in this order: train, valid, test, transfer
    labeled = {
        "train": labeled_split(seed, "train", n_train, seen),
        "valid": labeled_split(seed, "valid", n_valid, seen),
        "test": labeled_split(seed, "test", n_test, seen),
        "transfer": transfer_split(seed, n_transfer, seen),
    }
    for name, rows in labeled.items():
        _write_atomic(paths[name], ["text\tlabel"] + [f"{text}\t{label}" for text, label in rows])
    _write_atomic(paths["unlabeled"], unlabeled_corpus(seed, n_unlabeled))
    return paths


def ensure_default_data(directory: str | Path = "data/reviews", seed: int = 0) -> dict[str, Path]:
    """Return the paths of the default data, generating the files first if any is missing."""
    paths = split_paths(directory)
    if not all(path.exists() for path in paths.values()):
        print(f"generating the default review corpus in {directory} (first run, a few seconds)...")
        generate(directory, seed)
    return paths
