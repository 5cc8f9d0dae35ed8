"""What a fine-tuning run measures and reports: a split's loss, accuracy, per-class precision,
recall and F1 and its confusion matrix; the printed tables; predictions.tsv; report.json; and
--compare-scratch's side-by-side table. The training loop is in minilm/train/finetune.py.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import torch

from minilm.common.files import atomic_write
from minilm.common.plots import plot_confusion
from minilm.text.labeled import LabelMap
from minilm.tools.metrics import COMPACT_ABOVE, classification_report, format_report
from minilm.tools.predict import classify
from minilm.train.labeled_splits import Split


def evaluate_split(model, split: Split, labels: LabelMap, device, dtype, batch_size: int
                   ) -> tuple[dict, torch.Tensor]:
    """Loss, accuracy, per-class P/R/F1 and confusion matrix on a split; plus probabilities (N, K)."""
    probs, loss = classify(model, split.seqs, device, dtype, batch_size, label_ids=split.label_ids,
                           desc=f"evaluating {split.name}")
    report = classification_report(split.label_ids, probs.argmax(dim=-1).tolist(), labels.names)
    report["loss"] = loss
    return report, probs


def write_predictions(split: Split, probs: torch.Tensor, labels: LabelMap, out: Path) -> None:
    """predictions.tsv: each text with its gold label, the predicted one and that prediction's probability."""
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            writer.writerow(["text", "gold", "predicted", "probability"])
            for text, gold, p in zip(split.texts, split.label_ids, probs, strict=True):
                best = int(p.argmax())
                writer.writerow([text, labels.names[gold], labels.names[best], f"{float(p[best]):.4f}"])

    atomic_write(out / "predictions.tsv", write)


def report_splits(model, splits: dict[str, Split], labels: LabelMap, device, dtype, batch_size: int, out: Path,
                  title: str, best_valid: dict | None = None) -> dict[str, dict]:
    """Evaluate every held-out split, print the tables, write predictions.tsv for test.

    best_valid: valid's report from the epoch that chose the saved weights; those are the weights
    evaluated here, so valid is not read again (on IMDB that saves half a minute).
    """
    reports = {}
    for name in ("valid", "test", "transfer"):
        if name not in splits:
            continue
        if name == "valid" and best_valid is not None:
            reports[name] = best_valid
            continue
        reports[name], probs = evaluate_split(model, splits[name], labels, device, dtype, batch_size)
        if name == "test":
            write_predictions(splits[name], probs, labels, out)
    if len(labels) > COMPACT_ABOVE:  # too many classes to read as text: the matrix as a picture
        for name, report in reports.items():
            plot_confusion(report["confusion_matrix"], labels.names, out / f"confusion_{name}.png", f"{title}: {name}")
    for name in ("test", "transfer"):
        if name in reports:
            print(format_report(reports[name], f"{title}: {name}"))
    return reports


@dataclass
class FinetuneReport:
    """Per held-out split (valid, test, transfer): loss, accuracy, P/R/F1, confusion matrix; with
    --compare-scratch the same for the classifier trained from random weights."""

    splits: dict[str, dict]
    scratch: dict[str, dict] | None = None

    def to_json(self) -> dict:
        """report.json: the split reports at the top level, the scratch ones under "scratch"."""
        return {**self.splits, **({"scratch": self.scratch} if self.scratch else {})}


def format_comparison(pretrained: dict, scratch: dict) -> str:
    """--compare-scratch's closing table: accuracy and macro-F1 per split, pretrained beside scratch."""
    lines = ["", "what pretraining bought (same classifier, same labels):",
             f"  {'split':<10} {'pretrained acc':>15} {'scratch acc':>12} {'pretrained F1':>14} {'scratch F1':>11}"]
    for name in pretrained:
        p, s = pretrained[name], scratch[name]
        lines.append(f"  {name:<10} {p['accuracy']:>15.4f} {s['accuracy']:>12.4f} "
                     f"{p['macro_f1']:>14.4f} {s['macro_f1']:>11.4f}")
    return "\n".join(lines)
