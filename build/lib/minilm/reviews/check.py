"""Check that the generated review world teaches what it should, before any model is trained.

Two kinds of check, both numpy only and a few seconds:

- `lesson_problems`: hard rules. Transfer words never occur in train/valid/test but often in the
  unlabeled corpus; no visible sentiment word occurs in transfer.tsv; links ("sadly, ...") occur
  only in the unlabeled corpus; labels are balanced; texts are short and hold no tab.
- `bag_of_words_baseline`: a logistic regression on word counts, trained on train.tsv. It must do
  well below 100% on test (negation and contrast defeat counting) and 50% on transfer (it has
  never seen a transfer word, and nothing else in transfer.tsv hints at the label).
- `careful_reader`: the world's rule written as a few lines of code. It scores 100% on every
  labeled split, which is the proof that the labels carry no noise.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from minilm.reviews.vocab import LINKS, TRANSFER, VISIBLE

_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    """Lowercase letter runs: "wasn't great." -> ["wasn", "t", "great"]."""
    return _WORD.findall(text.lower())


def careful_reader(text: str) -> bool:
    """True if `text` is positive: the LAST sentiment word decides, flipped if its clause negates it.

    "Last" covers contrast (the deciding clause comes last) and verdicts that hold a sentiment word;
    verdicts without one ("one star") just agree with what came before.
    """
    positive, negative = _sentiment_words()
    tokens = re.findall(r"[a-z]+|[.,!:]", text.lower())  # words and the punctuation between clauses
    last = max(i for i, token in enumerate(tokens) if token in positive or token in negative)
    clause_start = max((i + 1 for i, token in enumerate(tokens[:last]) if token in _CLAUSE_BREAKS), default=0)
    negated = any(token in _NEGATIONS for token in tokens[clause_start:last])
    return (tokens[last] in positive) != negated


_CLAUSE_BREAKS = {".", ",", "!", ":", "and", "but", "yet", "however", "although", "though"}
_NEGATIONS = {"not", "never", "far", "nothing"}  # "not", "never", "far from", "nothing ... about"


def _sentiment_words() -> tuple[set[str], set[str]]:
    """(positive words, negative words) of both sets, visible and transfer."""
    return (VISIBLE.words(True) | TRANSFER.words(True), VISIBLE.words(False) | TRANSFER.words(False))


def read_labeled(path: Path) -> list[tuple[str, str]]:
    """(text, label) rows of a `text<TAB>label` file with a header line."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.split("\t")) for line in lines]  # type: ignore[misc]


def corpus_stats(paths: dict[str, Path]) -> dict[str, dict[str, int]]:
    """Per file: number of reviews, whitespace words, longest review in words, and bytes."""
    stats = {}
    for name, path in paths.items():
        texts = (path.read_text(encoding="utf-8").splitlines() if name == "unlabeled"
                 else [text for text, _ in read_labeled(path)])
        lengths = [len(text.split()) for text in texts]
        stats[name] = {"reviews": len(texts), "words": sum(lengths), "max_words": max(lengths),
                       "bytes": path.stat().st_size}
    return stats


def lesson_problems(paths: dict[str, Path], min_unlabeled_count: int = 20,
                    max_labeled_words: int = 80) -> list[str]:
    """Every broken rule of the lesson, as one message each; an empty list means all is well."""
    transfer_words = TRANSFER.words(True) | TRANSFER.words(False)
    visible_words = VISIBLE.words(True) | VISIBLE.words(False)
    counts = {name: Counter(words(path.read_text(encoding="utf-8"))) for name, path in paths.items()}
    problems = []
    for word in sorted(transfer_words):
        for name in ("train", "valid", "test"):
            if counts[name][word]:
                problems.append(f"transfer word {word!r} occurs {counts[name][word]} times in {name}")
        if counts["unlabeled"][word] < min_unlabeled_count:
            problems.append(f"transfer word {word!r} occurs only {counts['unlabeled'][word]} times "
                            f"in unlabeled (want >= {min_unlabeled_count})")
    for word in sorted(visible_words):
        if counts["transfer"][word]:
            problems.append(f"visible word {word!r} occurs {counts['transfer'][word]} times in transfer")
        if not counts["unlabeled"][word] or not counts["train"][word]:
            problems.append(f"visible word {word!r} is missing from unlabeled or train")
    for name in ("train", "valid", "test", "transfer"):
        text = paths[name].read_text(encoding="utf-8")
        problems += [f"link {link!r} occurs in {name}" for link in LINKS.positive + LINKS.negative
                     if f"{link}," in text]
        rows = read_labeled(paths[name])
        labels = Counter(label for _, label in rows)
        if set(labels) != {"positive", "negative"} or abs(labels["positive"] - labels["negative"]) > 1:
            problems.append(f"{name} labels are not balanced: {dict(labels)}")
        if any(len(row) != 2 or len(row[0].split()) > max_labeled_words for row in rows):
            problems.append(f"{name} has a malformed row or a text over {max_labeled_words} words")
    return problems


def careful_reader_accuracy(paths: dict[str, Path]) -> dict[str, float]:
    """Accuracy of `careful_reader` on every labeled split: 1.0 everywhere means no label noise."""
    accuracy = {}
    for name in ("train", "valid", "test", "transfer"):
        rows = read_labeled(paths[name])
        right = sum(careful_reader(text) == (label == "positive") for text, label in rows)
        accuracy[name] = right / len(rows)
    return accuracy


def _features(texts: list[str], vocab: dict[str, int], bigrams: bool) -> np.ndarray:
    """(N, V) 0/1 matrix: does review i contain word (or word pair) j of the training vocabulary?"""
    x = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for i, text in enumerate(texts):
        for gram in _grams(text, bigrams):
            if gram in vocab:
                x[i, vocab[gram]] = 1.0
    return x


def _grams(text: str, bigrams: bool) -> list[str]:
    tokens = words(text)
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)] if bigrams else tokens


def bag_of_words_baseline(paths: dict[str, Path], bigrams: bool = False, steps: int = 500,
                          lr: float = 1.0, l2: float = 1e-3) -> dict[str, float]:
    """Accuracy on every labeled split of a logistic regression trained on train.tsv.

    Plain full-batch gradient descent on the mean log-loss plus a small L2 penalty; words never
    seen in training have no feature, which is exactly why the transfer split defeats it.
    """
    train = read_labeled(paths["train"])
    vocab: dict[str, int] = {}
    for text, _ in train:
        for gram in _grams(text, bigrams):
            vocab.setdefault(gram, len(vocab))
    x = _features([text for text, _ in train], vocab, bigrams)
    y = np.array([label == "positive" for _, label in train], dtype=np.float32)
    w, b = np.zeros(len(vocab), dtype=np.float32), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))  # (N,) predicted P(positive)
        grad = p - y  # d(log-loss)/d(logit)
        w -= lr * (x.T @ grad / len(y) + l2 * w)
        b -= lr * float(grad.mean())
    accuracy = {}
    for name in ("train", "valid", "test", "transfer"):
        rows = read_labeled(paths[name])
        logits = _features([text for text, _ in rows], vocab, bigrams) @ w + b
        truth = np.array([label == "positive" for _, label in rows])
        accuracy[name] = float(((logits > 0) == truth).mean())
    return accuracy
