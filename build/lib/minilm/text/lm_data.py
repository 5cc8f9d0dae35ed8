"""Language-model data: text corpus -> token ids on disk -> random (x, y) windows.

    corpus (.txt / folder / .jsonl)
      -> documents                   iter_documents: streamed, one document at a time
      -> [bos] ids [eos] per doc     build_token_cache: train.bin / val.bin (np.memmap) + meta.json
      -> windows of T+1 tokens       LMBatcher: x = window[:-1], y = window[1:]

The token cache is a flat stream of every document's ids, back to back. A model window may
straddle two documents; the bos/eos ids between them tell it where one ends.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from minilm.common.errors import UserError
from minilm.common.files import atomic_write_text
from minilm.text.corpus import iter_documents, source_stamp
from minilm.text.tokenizer import Tokenizer

CACHE_FORMAT = 1  # bump when the layout of the cache files changes
SPLITS = ("train", "val")
ENCODE_CHUNK = 1024  # documents per encode_batch call: big enough for threads, small in memory


# -- token cache --------------------------------------------------------------------------------


@dataclass
class TokenCache:
    """The tokenized corpus: `train` and `val` are 1-D read-only memmaps of token ids."""

    train: np.memmap
    val: np.memmap
    meta: dict  # the contents of meta.json
    reused: bool  # True when an up-to-date cache was found and nothing was encoded


def is_val_document(index: int, val_fraction: float) -> bool:
    """Document `index` goes to validation each time index * val_fraction crosses an integer.

    With val_fraction=0.05 that is documents 0, 20, 40, ...: spread evenly through the corpus,
    decided by position alone (deterministic), and a document is never split between the two.
    """
    return math.ceil((index + 1) * val_fraction) > math.ceil(index * val_fraction)


def build_token_cache(
    data_path: str | os.PathLike,
    tokenizer: Tokenizer,
    cache_dir: str | os.PathLike,
    val_fraction: float = 0.05,
) -> TokenCache:
    """Encode a corpus into `cache_dir`, or reuse what is there if it is still up to date.

    Layout of cache_dir:
        train.bin   train token ids, raw little-endian uint16 (uint32 if vocab_size > 65536)
        val.bin     validation token ids, same dtype
        meta.json   format, tokenizer fingerprint, dtype, val_fraction, source stamp,
                    token and document counts
    Reused when meta.json matches the corpus stamp, the tokenizer fingerprint and val_fraction.
    meta.json is deleted first and written last, so an interrupted build is never mistaken for a
    finished one. With several processes (DDP), build on rank 0, then barrier, then call again.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val fraction must be between 0 and 1, got {val_fraction}")
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "meta.json"
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    wanted = {
        "format": CACHE_FORMAT,
        "tokenizer": tokenizer.fingerprint,
        "vocab_size": tokenizer.vocab_size,
        "dtype": np.dtype(dtype).name,
        "val_fraction": val_fraction,
        "source": source_stamp(data_path),
    }
    meta = _cache_is_current(cache_dir, wanted)
    if meta is not None:
        return _open_cache(cache_dir, meta, reused=True)

    cache_dir.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    tmp = {split: cache_dir / f"{split}.bin.tmp{os.getpid()}" for split in SPLITS}
    counts = {"train_tokens": 0, "val_tokens": 0, "train_documents": 0, "val_documents": 0}
    try:
        with open(tmp["train"], "wb") as train_f, open(tmp["val"], "wb") as val_f:
            out = {"train": train_f, "val": val_f}
            docs = tqdm(iter_documents(data_path), desc="tokenizing", unit=" docs", disable=None)
            for start, chunk in _chunks(docs, ENCODE_CHUNK):
                for offset, ids in enumerate(tokenizer.encode_batch(chunk, bos=True, eos=True)):
                    split = "val" if is_val_document(start + offset, val_fraction) else "train"
                    out[split].write(np.asarray(ids, dtype=dtype).tobytes())
                    counts[f"{split}_tokens"] += len(ids)
                    counts[f"{split}_documents"] += 1
        if counts["train_documents"] == 0:
            raise UserError(
                f"corpus {data_path} has only {counts['val_documents']} document(s), all needed for "
                "validation: add documents (one per line) or lower the val fraction"
            )
        for split, tmp_path in tmp.items():
            os.replace(tmp_path, cache_dir / f"{split}.bin")
    finally:
        for tmp_path in tmp.values():
            tmp_path.unlink(missing_ok=True)
    meta = {**wanted, **counts}
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return _open_cache(cache_dir, meta, reused=False)


def _chunks(items, size: int) -> Iterator[tuple[int, list]]:
    """(index of first item, list of up to `size` items) for consecutive slices of an iterator."""
    chunk: list = []
    start = 0
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield start, chunk
            start, chunk = start + size, []
    if chunk:
        yield start, chunk


def _open_cache(cache_dir: Path, meta: dict, reused: bool) -> TokenCache:
    # Both splits are non-empty: document 0 always goes to val, and an all-val corpus is refused.
    train, val = (np.memmap(cache_dir / f"{split}.bin", dtype=meta["dtype"], mode="r") for split in SPLITS)
    return TokenCache(train=train, val=val, meta=meta, reused=reused)


def _cache_is_current(cache_dir: Path, wanted: dict) -> dict | None:
    """The cache's meta if it was built from the same corpus, tokenizer and split, else None."""
    meta_path = cache_dir / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None
    if {key: meta.get(key) for key in wanted} != wanted:
        return None
    itemsize = np.dtype(meta["dtype"]).itemsize
    for split in SPLITS:
        bin_path = cache_dir / f"{split}.bin"
        if not bin_path.is_file() or bin_path.stat().st_size != meta[f"{split}_tokens"] * itemsize:
            return None
    return meta


# -- batches ------------------------------------------------------------------------------------


class LMBatcher:
    """Random windows of a token stream -> (x, y) int64 tensors of shape (batch_size, T).

    y is x shifted by one: y[:, t] is the token that follows x[:, t] (the contract of MiniLM).
    Batch number `step` is a pure function of (seed, step): its window starts come from
    np.random.default_rng([seed, step]). So resuming needs only the step (see state_dict), and
    any two runs with the same seed see the same data.

    DDP: every rank draws the same world_size * batch_size starts and keeps its own slice
    [rank * batch_size, (rank + 1) * batch_size). The global batch is therefore exactly the batch
    a single process with batch_size * world_size would draw, and ranks never repeat each other.
    `name` ("train split", "val split") only makes the too-short error say which stream it is.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        context_length: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        name: str = "token stream",
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        if len(tokens) < context_length + 1:
            raise UserError(
                f"the {name} has {len(tokens)} tokens but one window needs context_length + 1 = "
                f"{context_length + 1}: use a smaller --context-length or more text"
            )
        self.tokens = tokens
        self.context_length = context_length
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.step = 0  # batches drawn so far

    def batch_at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch number `step` for this rank, without changing the batcher's position."""
        rng = np.random.default_rng([self.seed, step])
        # A window [s, s + T] must fit: s ranges over 0 .. len - T - 1.
        n_starts = len(self.tokens) - self.context_length
        starts = rng.integers(0, n_starts, size=self.world_size * self.batch_size)
        starts = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        offsets = np.arange(self.context_length + 1)
        windows = self.tokens[starts[:, None] + offsets].astype(np.int64)  # (B, T+1)
        windows = torch.from_numpy(windows)
        return windows[:, :-1], windows[:, 1:]  # x, y: (B, T) each

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch; advances the position by one."""
        batch = self.batch_at(self.step)
        self.step += 1
        return batch

    def state_dict(self) -> dict:
        """Seed and position: loading them makes the next batch identical to the uninterrupted run."""
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self.step = state["step"]


def fixed_batches(
    tokens: np.ndarray,
    context_length: int,
    batch_size: int,
    n_batches: int,
    seed: int = 0,
    name: str = "val split",
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same `n_batches` (x, y) batches every call: evaluate on these so val losses compare."""
    batcher = LMBatcher(tokens, context_length, batch_size, seed, name=name)
    return [batcher.batch_at(step) for step in range(n_batches)]


def unigram_cross_entropy(train_tokens: np.ndarray, val_tokens: np.ndarray, vocab_size: int) -> float:
    """Val loss (nats/token) of a model that ignores context: p(token) = its train frequency.

    Add-one smoothing keeps unseen tokens finite. A language model whose val loss is not well
    below this number has learned no more than word frequencies.
    """
    counts = token_counts(train_tokens, vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())  # (vocab_size,)
    val_counts = token_counts(val_tokens, vocab_size)
    return float(-(val_counts * log_p).sum() / val_counts.sum())


def token_counts(tokens: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> np.ndarray:
    """How often each id occurs, (vocab_size,) int64, reading a memmap 16M tokens at a time
    (np.bincount on the whole stream would first copy all of it into memory as int64)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), chunk):
        counts += np.bincount(tokens[start:start + chunk], minlength=vocab_size)
    return counts
