"""How good is a model? Language-model and classification metrics, written out.

Language modelling (loss in nats per token, the mean of -ln P(x_{t+1} | x≤t)):
    perplexity      = exp(loss): "as unsure as a uniform choice among this many tokens"
    bits per byte   = loss · tokens / (ln 2 · bytes): total information per byte of raw text,
                      comparable across tokenizers (a BPE token is several bytes; a char is one)

Classification, from the confusion matrix M (M[i, j] = examples of true class i predicted j):
    accuracy        = Σ_i M[i, i] / Σ M
    precision_c     = M[c, c] / Σ_i M[i, c]      of the examples predicted c, how many are c
    recall_c        = M[c, c] / Σ_j M[c, j]      of the examples that are c, how many were found
    F1_c            = 2 · precision_c · recall_c / (precision_c + recall_c)
    macro-F1        = mean over classes of F1_c  (every class counts the same, however rare)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # exp overflows a float above ~709


def bits_per_byte(total_nll_nats: float, n_bytes: int) -> float:
    """Total negative log-likelihood (nats, summed over tokens) -> bits per UTF-8 byte of text."""
    return total_nll_nats / math.log(2) / n_bytes


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int], num_labels: int) -> np.ndarray:
    """(num_labels, num_labels) int array: rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def classification_report(gold: Sequence[int], predicted: Sequence[int], label_names: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro averages and the confusion matrix.

    A class never predicted has precision 0 (no correct predictions out of none), not NaN,
    so macro averages stay defined; this is the usual convention (scikit-learn's zero_division=0).
    """
    matrix = confusion_matrix(gold, predicted, len(label_names))
    correct = np.diag(matrix).astype(np.float64)
    predicted_count = matrix.sum(axis=0)
    true_count = matrix.sum(axis=1)
    precision = np.divide(correct, predicted_count, out=np.zeros_like(correct), where=predicted_count > 0)
    recall = np.divide(correct, true_count, out=np.zeros_like(correct), where=true_count > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(correct), where=denom > 0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(true_count[i])}
        for i, name in enumerate(label_names)
    }
    return {
        "accuracy": float(correct.sum() / max(1, matrix.sum())),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(label_names),
    }


def format_report(report: dict, title: str) -> str:
    """The report as two plain-text tables: per-class scores, then the confusion matrix."""
    names = report["labels"]
    width = max(9, *(len(n) for n in names))
    lines = [f"{title}: accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}",
             f"  {'class':<{width}}  precision  recall     f1  support"]
    for name in names:
        c = report["per_class"][name]
        lines.append(f"  {name:<{width}}  {c['precision']:9.4f}  {c['recall']:6.4f}  {c['f1']:.4f}  {c['support']:7d}")
    lines.append("  confusion matrix (rows: true, columns: predicted)")
    lines.append("  " + " " * width + "  " + " ".join(f"{n[:width]:>{width}}" for n in names))
    for name, row in zip(names, report["confusion_matrix"], strict=True):
        lines.append(f"  {name:<{width}}  " + " ".join(f"{v:>{width}d}" for v in row))
    return "\n".join(lines)
