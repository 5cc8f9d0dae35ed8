"""Files minilm writes and reads: atomic writes, JSON/CSV/torch savers, and safe torch loads.

Every file is written to a temporary name in the same folder and then renamed over the old one.
os.replace is atomic on POSIX and Windows, so a crash (or kill -9) at any moment leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from minilm.common.errors import UserError


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


def save_torch(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_csv(rows: list[dict], columns: list[str], path: str | Path) -> None:
    """Metric rows as a CSV file with a header; floats with 6 significant digits."""
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)

    atomic_write(path, write)


def save_json(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def load_torch(path: str | Path) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, never code.

    A pickle can run arbitrary code when unpickled; weights_only refuses anything that is not
    tensors, numbers, strings, lists, dicts, so a malicious or wrong file fails instead of running.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path} is not a plain tensor checkpoint (refused to load it: {first_line})") from None
