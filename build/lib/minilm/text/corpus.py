"""Reading a corpus: a .txt file, a folder of .txt files or a .jsonl file -> documents, streamed.

The tokenizer trains on these documents and the token cache is built from them, so both read the
corpus here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from minilm.common.errors import UserError

JSONL_SHAPE = '{"text": "..."}'


def iter_documents(path: str | os.PathLike) -> Iterator[str]:
    """Stream the documents of a corpus, never holding a whole file in memory.

    - a .jsonl file: one JSON object per line, the document is its "text" field;
    - a folder: every *.txt file below it, recursively, in sorted path order;
    - any other file: plain text, each non-blank line is one document.
    Documents are stripped of surrounding whitespace; blank ones are skipped.
    Bytes that are not UTF-8 are replaced by U+FFFD and counted; one warning per file goes to
    stderr, so a stray Latin-1 byte does not stop a long run.
    Raises UserError for a missing path, a corpus with no documents, or a bad .jsonl line.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"corpus {path} not found: pass a .txt file, a folder of .txt files or a .jsonl file")
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise UserError(
            f"folder {path} holds no .txt files: put the corpus in .txt files, one document per line"
        )
    n_docs = 0
    for file in files:
        read = _read_jsonl_texts if file.suffix == ".jsonl" else _read_text_lines
        for doc in read(file):
            doc = doc.strip()
            if doc:
                n_docs += 1
                yield doc
    if n_docs == 0:
        raise UserError(
            f"corpus {path} has no documents (it is empty or blank): add text, one document per line"
        )


def _decoded_lines(file: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of `file`, decoding UTF-8 leniently (see iter_documents)."""
    n_bad = 0
    with open(file, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                n_bad += 1
                line = raw.decode("utf-8", errors="replace")
            yield lineno, line
    if n_bad:
        warning = f"warning: {file}: {n_bad} lines are not valid UTF-8; bad bytes read as U+FFFD"
        print(warning, file=sys.stderr)


def _read_text_lines(file: Path) -> Iterator[str]:
    for _, line in _decoded_lines(file):
        yield line


def _read_jsonl_texts(file: Path) -> Iterator[str]:
    for lineno, line in _decoded_lines(file):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{file}:{lineno}: not valid JSON; each line must be {JSONL_SHAPE}") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise UserError(f'{file}:{lineno}: no "text" string field; each line must be {JSONL_SHAPE}')
        yield record["text"]


def source_stamp(path: str | os.PathLike) -> dict:
    """What identifies a corpus's contents cheaply: path, file count, bytes, and a digest of
    every file's (name, size, mtime). Any edit, added or renamed file changes the stamp."""
    path = Path(path).resolve()
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    n_bytes = 0
    for file in files:
        st = file.stat()
        n_bytes += st.st_size
        digest.update(f"{file.relative_to(path.parent)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return {"path": str(path), "files": len(files), "bytes": n_bytes, "digest": digest.hexdigest()[:16]}
