"""The baseline a text classifier has to beat: logistic regression on which words a text contains.

    python -m benchmarks.bag_of_words --data data/imdb                    all labels
    python -m benchmarks.bag_of_words --data data/imdb --labels 2000      as few as the fine-tuning runs

A text becomes x ∈ {0, 1}^V: x_j = 1 if the j-th word (or pair of neighbouring words, with --ngrams 2)
of the training vocabulary occurs in it. The model is P(y | x) = softmax(x W + b), trained on the
whole training set at once with L-BFGS on the mean cross-entropy + (λ/2)·||W||². λ is chosen on
valid.tsv from a small grid; test.tsv is scored once, with the chosen λ. No order, no context
beyond a word pair: what a transformer adds to this is what it reads between the words.

--data is a folder with train.tsv, valid.tsv, test.tsv (what data/prepare_imdb.py writes); --labels N
draws the training examples the same way benchmarks/finetune_recipe.py does.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import format_table, record, run_benchmark, setup
from benchmarks.finetune_recipe import subset
from minilm.text.labeled import LabelMap, read_labeled

WORD = re.compile(r"[a-z0-9']+")
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def grams(text: str, ngrams: int) -> set[str]:
    """The distinct lowercase words of a text (and, with ngrams=2, its pairs of neighbouring words)."""
    words = WORD.findall(text.lower())
    found = set(words)
    if ngrams == 2:
        found.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return found


def build_vocab(texts: list[str], ngrams: int, min_count: int) -> dict[str, int]:
    """Every gram found in at least min_count training texts -> its column."""
    counts = Counter(g for text in texts for g in grams(text, ngrams))
    return {g: i for i, g in enumerate(sorted(g for g, n in counts.items() if n >= min_count))}


def features(texts: list[str], vocab: dict[str, int], ngrams: int) -> torch.Tensor:
    """texts -> sparse (N, V) matrix of 0/1: which vocabulary grams each text holds."""
    rows, cols = [], []
    for i, text in enumerate(texts):
        found = [vocab[g] for g in grams(text, ngrams) if g in vocab]
        rows += [i] * len(found)
        cols += found
    index = torch.tensor([rows, cols], dtype=torch.long)
    return torch.sparse_coo_tensor(index, torch.ones(len(rows)), (len(texts), len(vocab)),
                                   check_invariants=True).coalesce()


def fit(x: torch.Tensor, y: torch.Tensor, num_labels: int, l2: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean CE(softmax(xW + b), y) + (l2/2)·||W||² with L-BFGS; returns (W (V, K), b (K,))."""
    W = torch.zeros(x.size(1), num_labels, requires_grad=True)
    b = torch.zeros(num_labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([W, b], max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ W + b, y) + 0.5 * l2 * W.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return W.detach(), b.detach()


def accuracy(x: torch.Tensor, y: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> float:
    return float(((x @ W + b).argmax(dim=1) == y).float().mean())


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    train_path = subset(args.data / "train.tsv", args.labels, 0, args.out / f"train_{args.labels}.tsv")
    splits = {name: read_labeled(path, None, "label") for name, path in
              (("train", train_path), ("valid", args.data / "valid.tsv"), ("test", args.data / "test.tsv"))}
    labels = LabelMap.from_labels(splits["train"][1])
    vocab = build_vocab(splits["train"][0], args.ngrams, args.min_count)
    x = {name: features(texts, vocab, args.ngrams) for name, (texts, _) in splits.items()}
    y = {name: torch.tensor(labels.encode(names, name)) for name, (_, names) in splits.items()}
    rows, best = [], None
    for l2 in L2_GRID[:1] if args.smoke else L2_GRID:
        W, b = fit(x["train"], y["train"], len(labels), l2, 5 if args.smoke else args.steps)
        valid = accuracy(x["valid"], y["valid"], W, b)
        rows.append([f"{l2:g}", f"{accuracy(x['train'], y['train'], W, b):.4f}", f"{valid:.4f}"])
        if best is None or valid > best[0]:
            best = (valid, l2, W, b)
    valid, l2, W, b = best
    test = accuracy(x["test"], y["test"], W, b)
    n_train = len(splits["train"][0])
    grams_name = "words and word pairs" if args.ngrams == 2 else "words"
    record(args, device, "Bag-of-words baseline: logistic regression",
           [(f"{n_train:,} training texts, {len(vocab):,} {grams_name} (in ≥ {args.min_count} texts): "
             f"accuracy per L2 weight λ", format_table(["λ", "train", "valid"], rows)),
            ("chosen on valid", format_table(["λ", "valid", "test"], [[f"{l2:g}", f"{valid:.4f}", f"{test:.4f}"]]))],
           [f"data: {args.data}; test: {len(splits['test'][0]):,} texts; L-BFGS, {args.steps} iterations"])


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder with train.tsv, valid.tsv, test.tsv")
    parser.add_argument("--labels", type=int, default=0, help="labeled training examples (0 = all)")
    parser.add_argument("--ngrams", type=int, choices=(1, 2), default=1, help="1: words; 2: words and word pairs")
    parser.add_argument("--min-count", type=int, default=2, help="keep grams found in at least this many texts")
    parser.add_argument("--steps", type=int, default=200, help="L-BFGS iterations per λ")
    parser.add_argument("--out", type=Path, default=Path("out/bag_of_words"), help="where a --labels subset is written")


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
