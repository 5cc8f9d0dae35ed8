"""SentencePiece tokenizer: text <-> token ids, with four fixed special ids.

A language model only ever sees integers. The tokenizer turns text into ids from a fixed
vocabulary of sub-word pieces ("▁the", "ing", "<0xE4>") and back. We train it with
SentencePiece (BPE or unigram) on the user's corpus and keep its settings so that:

- the special ids never move: pad=0, unk=1, bos=2, eos=3, whatever the corpus;
- any Unicode text encodes without <unk>: a character missing from the vocabulary falls back
  to its UTF-8 bytes (256 pieces "<0x00>".."<0xFF>"), so "你好" or "😀" cost a few ids each;
- decode(encode(x)) == x exactly, for every string x that does not contain "▁" (U+2581, the
  piece-boundary mark that stands for a space): no normalization ("identity"), no collapsing
  of repeated spaces; tabs, newlines and leading/trailing spaces survive as well.

The model file ("tokenizer.model") is the tokenizer's whole identity: its sha256 is the
`fingerprint` stored next to checkpoints and token caches, so ids made by one tokenizer are
never read with another.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import sentencepiece as spm
import torch

from minilm.common.errors import UserError
from minilm.common.files import atomic_write
from minilm.text.corpus import iter_documents

# Special ids first, then the 256 byte pieces, then at least one learned piece.
N_SPECIAL = 4
MIN_VOCAB_SIZE = N_SPECIAL + 256 + 1

# Training sees at most this many characters, sampled by document with a fixed seed: BPE on
# 5M characters takes ~1 s on 2 CPU cores, unigram ~6 s, and the pieces barely change beyond.
TRAIN_CHAR_BUDGET = 5_000_000
SAMPLE_SEED = 1234
# SentencePiece silently skips sentences longer than max_sentence_length bytes; we cut documents
# to 16k characters (at most 64 KiB of UTF-8) so every sampled document counts.
MAX_DOC_CHARS = 16_384

PathLike = str | os.PathLike


class Tokenizer:
    """A trained SentencePiece model plus the conventions minilm relies on."""

    pad_id = 0
    unk_id = 1
    bos_id = 2
    eos_id = 3

    def __init__(self, model_bytes: bytes):
        """Wrap serialized SentencePiece model bytes (use `train` or `load` to get them)."""
        self._bytes = model_bytes
        self._sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        # Models trained elsewhere may number their specials differently; ours never do.
        ids = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if ids != (self.pad_id, self.unk_id, self.bos_id, self.eos_id):
            raise UserError(
                f"tokenizer has special ids pad/unk/bos/eos = {ids}, minilm needs (0, 1, 2, 3): "
                "train it with Tokenizer.train"
            )

    # -- making one ---------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts_or_files: PathLike | Sequence[PathLike],
        model_path: PathLike,
        vocab_size: int,
        model_type: str = "bpe",
    ) -> Tokenizer:
        """Train on one corpus path or a list of them and write `model_path` atomically.

        Each path is anything `minilm.text.corpus.iter_documents` reads (a .txt file, a folder of
        .txt files, a .jsonl file). Corpora above TRAIN_CHAR_BUDGET characters are sampled by
        document with a fixed seed, so training takes seconds and the same input always gives
        the same model (same fingerprint). The vocabulary has exactly `vocab_size` pieces.
        """
        if model_type not in ("bpe", "unigram"):
            raise UserError(f"unknown tokenizer model type {model_type!r}: use 'bpe' or 'unigram'")
        if vocab_size < MIN_VOCAB_SIZE:
            raise UserError(
                f"vocab size {vocab_size} is too small: byte fallback needs {N_SPECIAL} special ids "
                f"+ 256 byte pieces, so use at least {MIN_VOCAB_SIZE} (a few thousand is typical)"
            )
        paths = [texts_or_files] if isinstance(texts_or_files, str | os.PathLike) else texts_or_files
        model_writer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=_sample_documents(paths, TRAIN_CHAR_BUDGET, SAMPLE_SEED),
                model_writer=model_writer,
                vocab_size=vocab_size,
                model_type=model_type,
                pad_id=cls.pad_id,
                unk_id=cls.unk_id,
                bos_id=cls.bos_id,
                eos_id=cls.eos_id,
                byte_fallback=True,
                # Rare characters (the last 0.05% of occurrences) get no piece of their own:
                # byte fallback spells them, leaving room for useful sub-words.
                character_coverage=0.9995,
                normalization_rule_name="identity",  # no NFKC: decode(encode(x)) == x
                remove_extra_whitespaces=False,  # keep "a  b" and leading spaces as written
                max_sentence_length=4 * MAX_DOC_CHARS,
                num_threads=min(4, os.cpu_count() or 1),
                minloglevel=2,  # errors only: training logs are pages long
            )
        except RuntimeError as err:
            raise _training_error(err, vocab_size) from None
        tokenizer = cls(model_writer.getvalue())
        tokenizer.save(model_path)
        return tokenizer

    @classmethod
    def load(cls, path: PathLike) -> Tokenizer:
        """Read a tokenizer.model file; UserError if it is missing or not a SentencePiece model."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"tokenizer file {path} not found: train one first or pass the right path")
        try:
            return cls(path.read_bytes())
        except RuntimeError:
            raise UserError(f"{path} is not a SentencePiece model file: pass a tokenizer.model") from None

    def save(self, path: PathLike) -> None:
        """Write the model bytes to `path` atomically (a temporary file, then a rename)."""
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(self._bytes))

    # -- identity -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials and byte pieces included: valid ids are 0..vocab_size-1."""
        return self._sp.get_piece_size()

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the sha256 of the model bytes: equal iff same tokenizer."""
        return hashlib.sha256(self._bytes).hexdigest()[:16]

    # -- text <-> ids -------------------------------------------------------------------------

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """One string -> ids, optionally framed as [bos] + ids + [eos]."""
        return self._sp.encode(text, add_bos=bos, add_eos=eos)

    def encode_batch(self, texts: list[str], bos: bool = False, eos: bool = False) -> list[list[int]]:
        """Many strings -> ids; SentencePiece spreads the work over threads."""
        return self._sp.encode(list(texts), add_bos=bos, add_eos=eos)

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Ids (a list or a 1-D tensor) -> text; pad, bos and eos are dropped."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self._sp.decode([int(i) for i in ids])

    def decode_batch(self, batch: Sequence[Sequence[int]] | torch.Tensor) -> list[str]:
        """A list of id lists or a (B, T) tensor -> B strings."""
        return [self.decode(ids) for ids in batch]

    def id_to_piece(self, i: int) -> str:
        """The vocabulary entry for one id, e.g. '▁the' or '<0xE4>'; for showing tokens."""
        return self._sp.id_to_piece(int(i))


def _sample_documents(paths: Sequence[PathLike], char_budget: int, seed: int) -> Iterator[str]:
    """Yield documents of all `paths`, each kept with probability budget / total characters.

    Two passes: the first counts characters so the keep probability is known; the second draws
    one number per document from a seeded generator, so the sample depends only on the input.
    """
    total = sum(len(doc) for path in paths for doc in iter_documents(path))
    keep = min(1.0, char_budget / total)
    rng = random.Random(seed)
    for path in paths:
        for doc in iter_documents(path):
            if rng.random() < keep:
                yield doc[:MAX_DOC_CHARS]


def _training_error(err: RuntimeError, vocab_size: int) -> UserError:
    """Turn SentencePiece's vocabulary-size complaints into one actionable line."""
    message = str(err)
    too_small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_small:
        needed = int(too_small.group(2))
        return UserError(
            f"vocab size {vocab_size} is too small for this corpus: its characters plus "
            f"{N_SPECIAL} special ids and 256 bytes need at least {needed}; use a larger vocab size"
        )
    too_large = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message)
    if too_large:
        limit = int(too_large.group(2))
        return UserError(
            f"vocab size {vocab_size} is too large for this corpus: it supports at most {limit} "
            "pieces; use a smaller vocab size or more text"
        )
    last_line = message.strip().splitlines()[-1] if message.strip() else "unknown error"
    return UserError(f"tokenizer training failed on this corpus: {last_line}")
