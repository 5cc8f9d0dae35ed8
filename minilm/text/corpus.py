"""Reading a corpus: a .txt file, a folder of .txt files or a .jsonl file -> documents, streamed.

The tokenizer trains on these documents and the token cache is built from them, so both read the
corpus here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
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
    A UTF-8 byte-order mark at the start of a file is dropped.
    Raises UserError for a missing path, a corpus with no documents, a bad .jsonl line, or a file
    that is not text (see check_text_file).
    """
    files = corpus_files(path)
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


def corpus_files(path: str | os.PathLike) -> list[Path]:
    """The files of a corpus path (the path itself, or every *.txt file below a folder, sorted),
    each checked to be a readable text file. Reads a few KiB of each; writes nothing."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"corpus {path} not found: pass a .txt file, a folder of .txt files or a .jsonl file")
    files = sorted(p for p in path.rglob("*.txt") if not p.is_dir()) if path.is_dir() else [path]
    if not files:
        raise UserError(
            f"folder {path} holds no .txt files: put the corpus in .txt files, one document per line"
        )
    for file in files:
        check_text_file(file)
    return files


# The first bytes of compressed and binary formats people pass as text by mistake.
MAGIC = {b"\x1f\x8b": "gzip-compressed: decompress it first (gunzip)", b"BZh": "bzip2-compressed: decompress it first",
         b"\xfd7zXZ": "xz-compressed: decompress it first", b"(\xb5/\xfd": "zstd-compressed: decompress it first",
         b"PK\x03\x04": "a zip archive: extract the text files first", b"%PDF": "a PDF: extract its text first"}
SNIFF_BYTES = 8192


def check_text_file(file: Path) -> None:
    """Refuse a corpus file that is not a regular, readable file of mostly text, saying what it
    looks like. Training on a gzip file's bytes "works" and learns noise, so it must not start."""
    try:
        st = file.stat()
    except OSError as err:
        raise UserError(f"cannot read corpus file {file}: {err.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"corpus file {file} is not a regular file (a pipe, device or socket is read only "
                        f"once, and the corpus is read several times): save the text to a file first")
    try:
        with open(file, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as err:
        raise UserError(f"cannot read corpus file {file}: {err.strerror}") from None
    for magic, what in MAGIC.items():
        if head.startswith(magic):
            raise UserError(f"corpus file {file} is {what}; minilm reads plain UTF-8 text")
    # Text in another encoding (Latin-1) has some invalid UTF-8 but no control codes; binary data
    # has both, and usually NUL bytes.
    text = head.decode("utf-8", errors="replace")
    n = max(len(text), 1)
    control = sum(ch < " " and ch not in "\t\n\r\f" for ch in text)
    invalid = text.count("\ufffd")
    if b"\x00" in head or control > 0.05 * n or invalid > 0.3 * n:
        raise UserError(f"corpus file {file} looks like binary data, not text ({control + invalid} of its first "
                        f"{len(text)} characters are control codes or invalid UTF-8); pass a UTF-8 text file")


def _decoded_lines(file: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of `file`, decoding UTF-8 leniently (see iter_documents)."""
    n_bad = 0
    with _open_corpus_file(file) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                n_bad += 1
                line = raw.decode("utf-8", errors="replace")
            yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line
    if n_bad:
        warning = f"warning: {file}: {n_bad} lines are not valid UTF-8; bad bytes read as U+FFFD"
        print(warning, file=sys.stderr)


def _open_corpus_file(file: Path):
    try:
        return open(file, "rb")
    except OSError as err:
        raise UserError(f"cannot read corpus file {file}: {err.strerror}") from None


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
    files = sorted(p for p in path.rglob("*.txt") if not p.is_dir()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    n_bytes = 0
    for file in files:
        st = file.stat()
        n_bytes += st.st_size
        digest.update(f"{file.relative_to(path.parent)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return {"path": str(path), "files": len(files), "bytes": n_bytes, "digest": digest.hexdigest()[:16]}
