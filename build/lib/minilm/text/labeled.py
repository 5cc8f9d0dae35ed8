"""Labeled data for fine-tuning: files of (text, label) -> token ids -> padded batches.

    train.tsv ----read_labeled----> texts, labels ("pos", "neg", "0", "3", ...)
    labels -------LabelMap--------> class ids 0..K-1 (the order is saved as labels.json)
    texts --------encode_texts----> [bos] ids [eos], cut to max_length
    batches ------pad_batch-------> input_ids (B, T) and attention_mask (B, T), padded on the right

Files: .csv (standard quoting), .tsv (tab-separated, no quoting: a '"' is just a character, so
texts must not contain tabs or newlines) and .jsonl (one object a line). All need a label column
and a text column; the first line of .csv/.tsv is the header.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from minilm.common.errors import UserError
from minilm.common.files import atomic_write_text

if TYPE_CHECKING:
    from minilm.text.tokenizer import Tokenizer

TEXT_COLUMN_DEFAULTS = ("text", "sentence")  # tried in this order when no text column is given


# -- reading files ------------------------------------------------------------------------------


def read_labeled(
    path: str | os.PathLike, text_column: str | None = None, label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """Read a .csv, .tsv or .jsonl file into (texts, labels); labels stay strings ("1", "pos").

    The text column is `text_column` if given, else "text", else "sentence".
    Every problem a user can fix raises UserError naming the file and, where it helps, the line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labeled file {path} not found: check the path")
    readers = {".csv": _read_delimited, ".tsv": _read_delimited, ".jsonl": _read_jsonl}
    if path.suffix not in readers:
        raise UserError(f"{path}: unknown file type {path.suffix!r}: use .csv, .tsv or .jsonl")
    try:
        rows = list(readers[path.suffix](path))  # (line number, {column: value}) per record
    except UnicodeDecodeError:
        raise UserError(f"{path} is not valid UTF-8 text: save it as UTF-8") from None
    if not rows:
        raise UserError(f"{path} has no data rows: it needs a header line and one row per example")

    columns = list(rows[0][1])
    if label_column not in columns:
        raise UserError(
            f"{path}: no label column {label_column!r}; columns are {columns}: pass --label-column"
        )
    candidates = (text_column,) if text_column else TEXT_COLUMN_DEFAULTS
    found = [name for name in candidates if name in columns]
    if not found:
        wanted = " or ".join(repr(name) for name in candidates)
        raise UserError(f"{path}: no text column {wanted}; columns are {columns}: pass --text-column")
    text_column = found[0]

    texts, labels = [], []
    for lineno, record in rows:
        text, label = record.get(text_column), record.get(label_column)
        for name, value in ((text_column, text), (label_column, label)):
            if value is None or (isinstance(value, str) and not value.strip()):
                raise UserError(f"{path}:{lineno}: empty or missing {name!r}: every row needs both fields")
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise UserError(f"{path}:{lineno}: label {label!r} must be a string or an integer")
        texts.append(str(text))
        labels.append(str(label).strip())
    return texts, labels


def _read_delimited(path: Path) -> Iterator[tuple[int, dict]]:
    """CSV (quoted fields allowed) or TSV (no quoting): header line, then one row a line."""
    # utf-8-sig drops the byte-order mark that spreadsheet programs put before the header.
    with open(path, encoding="utf-8-sig", newline="") as f:
        if path.suffix == ".tsv":
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        for row in reader:
            if not row:  # a blank line
                continue
            if len(row) != len(header):
                raise UserError(
                    f"{path}:{reader.line_num}: {len(row)} fields, but the header has {len(header)} "
                    f"({', '.join(header)}): fix the row (a stray tab or an unclosed quote?)"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}:{lineno}: not valid JSON; each line must be one object") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{lineno}: a JSON {type(record).__name__}, expected an object")
            yield lineno, record


def write_labeled_tsv(path: str | os.PathLike, texts: Sequence[str], labels: Sequence[str]) -> None:
    """Write a text<TAB>label file that read_labeled reads back; tabs and newlines in a text
    become spaces (the format has no quoting). Written to a temporary file, then renamed."""
    rows = [f"{' '.join(text.split())}\t{label}\n" for text, label in zip(texts, labels, strict=True)]
    atomic_write_text(path, "text\tlabel\n" + "".join(rows))


def holdout_split(n: int, n_holdout: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split indices 0..n-1 into (kept, held out), the held-out ones drawn with a fixed seed.

    Both lists keep the original order. Used to carve a validation set out of a training file.
    """
    held = set(random.Random(seed).sample(range(n), n_holdout))
    return [i for i in range(n) if i not in held], sorted(held)


# -- labels -------------------------------------------------------------------------------------


class LabelMap:
    """Label strings <-> class ids 0..K-1, fixed by the training labels and saved with the model."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self._ids = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def from_labels(cls, labels: Sequence[str]) -> LabelMap:
        """Distinct labels in sorted order; numerically if all are integers ("2" before "10")."""
        distinct = set(labels)
        if all(_is_int(label) for label in distinct):
            return cls(sorted(distinct, key=int))
        return cls(sorted(distinct))

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, labels: Sequence[str], split_name: str = "train") -> list[int]:
        """Labels -> ids; UserError naming any label the training set never had."""
        unseen = sorted(set(labels) - set(self._ids))
        if unseen:
            raise UserError(
                f"{split_name} set has labels {unseen} that the training set never has "
                f"(known: {self.names}): fix the labels or add training examples"
            )
        return [self._ids[label] for label in labels]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Class ids -> label strings."""
        return [self.names[int(i)] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        """Write labels.json: {"labels": [name of id 0, name of id 1, ...]}."""
        atomic_write_text(path, json.dumps({"labels": self.names}, indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelMap:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"label file {path} not found: it is written next to a fine-tuned model")
        try:
            names = json.loads(path.read_text(encoding="utf-8"))["labels"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f'{path} is not a labels file: expected {{"labels": [...]}}') from None
        return cls(names)


def _is_int(label: str) -> bool:
    return label.lstrip("-").isdigit()


# -- ids and batches ----------------------------------------------------------------------------


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], int]:
    """Texts -> [bos] ids [eos], cut to `max_length` ids; returns (sequences, number truncated).

    A long text keeps its first max_length - 2 ids and still ends in eos, so the classifier's
    "last" pooling always reads the same kind of token: the one that closed a pretraining document.
    """
    if max_length < 3:
        raise UserError(
            f"max length {max_length} leaves no room for text between bos and eos: use at least 3"
        )
    seqs, n_truncated = [], 0
    for ids in tokenizer.encode_batch(list(texts)):
        if len(ids) > max_length - 2:
            ids = ids[: max_length - 2]
            n_truncated += 1
        seqs.append([tokenizer.bos_id, *ids, tokenizer.eos_id])
    return seqs, n_truncated


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence -> input_ids (B, T) and attention_mask (B, T), int64.

    attention_mask is 1 on real tokens and 0 on padding.
    """
    longest = max(len(seq) for seq in seqs)
    input_ids = torch.full((len(seqs), longest), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((len(seqs), longest), dtype=torch.int64)
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.int64)
        attention_mask[row, : len(seq)] = 1
    return input_ids, attention_mask


def classification_batches(
    seqs: Sequence[Sequence[int]],
    label_ids: Sequence[int],
    batch_size: int,
    pad_id: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (input_ids (B, T), attention_mask (B, T), labels (B,)) batches, the last may be smaller.

    shuffle=True orders examples by a permutation drawn from (seed, epoch): a new order every
    epoch, the same order on every rerun. With world_size > 1 each rank takes every
    world_size-th example of that order (after dropping the few that do not divide evenly, so
    all ranks run the same number of steps); evaluate with world_size=1 to see every example.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(seqs)) if shuffle else np.arange(len(seqs))
    order = order[: len(order) - len(order) % world_size][rank::world_size]
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        input_ids, attention_mask = pad_batch([seqs[i] for i in chosen], pad_id)
        labels = torch.tensor([label_ids[i] for i in chosen], dtype=torch.int64)
        yield input_ids, attention_mask, labels
