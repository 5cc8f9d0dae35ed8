"""Writing a file so that a crash can never leave half of it: a temporary name, then a rename.

os.replace is atomic on POSIX and Windows, so readers see either the old file or the new one.
This module imports nothing from minilm, so every other module (the tokenizer included) can use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write_fn: Callable[[str], object]) -> None:
    """Call write_fn(tmp_path), then atomically move tmp_path to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
