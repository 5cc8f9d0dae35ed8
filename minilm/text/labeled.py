"""Labeled data for fine-tuning: files of (text, label) -> token ids -> padded batches.

    train.tsv ----read_labeled----> texts, labels ("pos", "neg", "0", "3", ...)
    labels -------LabelMap--------> class ids 0..K-1 (the order is saved as labels.json)
    texts --------encode_texts----> [bos] ids [eos], cut to max_length
    batches ------pad_batch-------> input_ids (B, T) and attention_mask (B, T), padded on the right

Files: .csv (standard quoting), .tsv (tab-separated; a '"' is just a character, unless the file
quotes fields CSV-style as pandas and spreadsheets do, which is detected) and .jsonl (one object
a line). All need a label column
and a text column; the first line of .csv/.tsv is the header.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from minilm.common.errors import UserError
from minilm.common.files import atomic_write_text
from minilm.common.progress import progress

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
    if not path.exists():
        raise UserError(f"labeled file {path} not found: check the path")
    if not path.is_file():
        raise UserError(f"labeled file {path} is not a regular file: pass a .csv, .tsv or .jsonl file")
    readers = {".csv": _read_delimited, ".tsv": _read_delimited, ".jsonl": _read_jsonl}
    if path.suffix not in readers:
        raise UserError(f"{path}: unknown file type {path.suffix!r}: use .csv, .tsv or .jsonl")
    try:
        rows = list(readers[path.suffix](path))  # (line number, {column: value}) per record
    except UnicodeDecodeError:
        raise UserError(f"{path} is not valid UTF-8 text: save it as UTF-8") from None
    except OSError as err:
        raise UserError(f"cannot read labeled file {path}: {err.strerror}") from None
    except csv.Error as err:
        raise UserError(f"{path}: not a readable {path.suffix[1:].upper()} file ({err})") from None
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
        if not isinstance(text, str):
            raise UserError(f"{path}:{lineno}: {text_column!r} must be a string, got a {type(text).__name__}")
        texts.append(text)
        labels.append(str(label).strip())
    return texts, labels


# A field may be as long as a text can be: the csv module's default limit (128 KiB) would refuse
# a long document that the same file as .jsonl reads fine.
csv.field_size_limit(2**31 - 1)

# A TSV field quoted CSV-style, as pandas and spreadsheets write one that holds a tab, a newline
# or a quote: "..." with every inner quote doubled, alone between tabs or line ends.
CSV_QUOTED_FIELD = re.compile(r'(?:^|(?<=\t))"((?:[^"]|"")*)"(?=\t|\r?\n|$)', re.MULTILINE)


def tsv_uses_csv_quoting(text: str) -> bool:
    """Does this TSV quote fields CSV-style? Only if some quoted field needed it (it holds a doubled
    quote, a tab or a newline) and the whole file parses under strict CSV rules; a TSV whose texts
    merely contain quote characters (IMDB's, GLUE's) is read as written, quotes and all."""
    needed = any(('""' in m.group(1)) or ("\t" in m.group(1)) or ("\n" in m.group(1))
                 for m in CSV_QUOTED_FIELD.finditer(text))
    if not needed:
        return False
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True):
            pass
    except csv.Error:
        return False
    return True


def _read_delimited(path: Path) -> Iterator[tuple[int, dict]]:
    """CSV (quoted fields allowed) or TSV (tab-separated; CSV-style quoting if the file uses it):
    header line, then one row a line."""
    # utf-8-sig drops the byte-order mark that spreadsheet programs put before the header.
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    if path.suffix == ".tsv" and not tsv_uses_csv_quoting(text):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix == ".tsv" else ",")
    header = next(reader, None)
    if header is None:
        return
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UserError(f"{path}: the header names column(s) {repeated} more than once: rename them, so it "
                        f"is clear which one to read")
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


def stratified_holdout(labels: Sequence[str], fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Split indices 0..n-1 into (kept, held out) with the same label mix in both.

    From each label's examples, round(fraction x count) are held out (at least one, and never
    all of them), drawn with a fixed seed; both lists keep the original order. Used by
    --valid-fraction / --test-fraction to carve valid and test sets out of one labeled file.
    """
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label]
        n_held = min(len(indices) - 1, max(1, round(fraction * len(indices))))
        held.update(rng.sample(indices, n_held))
    return [i for i in range(len(labels)) if i not in held], sorted(held)


# -- labels -------------------------------------------------------------------------------------


class LabelMap:
    """Label strings <-> class ids 0..K-1, fixed by the training labels and saved with the model."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self._ids = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def from_labels(cls, labels: Sequence[str]) -> LabelMap:
        """Distinct labels in sorted order; numerically if all are integers ("2" before "10"), ties
        like "1" and "01" by their text, so the order never depends on Python's hash seed."""
        distinct = set(labels)
        if all(_is_int(label) for label in distinct):
            return cls(sorted(distinct, key=lambda label: (int(label), label)))
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
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            names = None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names) \
                or len(set(names)) != len(names):
            raise UserError(f'{path} is not a labels file: expected {{"labels": [distinct strings]}}')
        return cls(names)


def _is_int(label: str) -> bool:
    return label.lstrip("-").isdigit()


# -- ids and batches ----------------------------------------------------------------------------


ENCODE_CHUNK = 4096  # texts per call into SentencePiece (which encodes a batch on several threads)


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_length: int, desc: str = "",
                 head_and_tail: bool = False) -> tuple[list[list[int]], int]:
    """Texts -> [bos] ids [eos], cut to `max_length` ids; returns (sequences, number truncated).

    A long text keeps its first max_length - 2 ids and still ends in eos, so the classifier's
    "last" pooling always reads the same kind of token: the one that closed a pretraining document.
    head_and_tail: keep its first quarter and its last three quarters of that instead, losing the
    middle (Sun et al., 2019, found this best for long reviews, whose verdict is often at the end).
    desc: show progress under this name (tens of thousands of long reviews take a while).
    """
    if max_length < 3:
        raise UserError(
            f"max length {max_length} leaves no room for text between bos and eos: use at least 3"
        )
    seqs, n_truncated = [], 0
    bar = progress(total=len(texts), desc=desc, unit="text", enabled=bool(desc), leave=False)
    for start in range(0, len(texts), ENCODE_CHUNK):
        chunk = list(texts[start:start + ENCODE_CHUNK])
        for ids in tokenizer.encode_batch(chunk):
            if len(ids) > max_length - 2:
                head = (max_length - 2) // 4 if head_and_tail else max_length - 2
                ids = ids[:head] + ids[len(ids) - (max_length - 2 - head):]
                n_truncated += 1
            seqs.append([tokenizer.bos_id, *ids, tokenizer.eos_id])
        bar.update(len(chunk))
    bar.close()
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
