"""The one piece of network code in minilm: fetch a URL to a file, used by data/prepare_*.py.

Nothing in the minilm package or the tests imports this; it runs only when a person runs a
prepare script by hand.
"""

from __future__ import annotations

import io
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from minilm.common.progress import progress

BANNER = "=" * 78


def announce(what: str, url: str) -> None:
    """Say loudly, before anything happens, that this script needs the internet."""
    print(f"{BANNER}\nTHIS SCRIPT DOWNLOADS {what} FROM THE INTERNET:\n  {url}\n{BANNER}", file=sys.stderr)


def download(url: str, dest: Path) -> Path:
    """Fetch `url` to `dest` once (kept for reruns); a partial download never looks finished."""
    if dest.is_file():
        print(f"using the earlier download {dest}", file=sys.stderr)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part{os.getpid()}")
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url) as response, open(tmp, "wb") as f:
            size = int(response.headers.get("Content-Length") or 0)  # 0: the server did not say
            bar = progress(total=size / 1e6 or None, desc=f"downloading {dest.name}", unit="MB")
            while chunk := response.read(1 << 20):
                f.write(chunk)
                bar.update(len(chunk) / 1e6)
            bar.close()
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def stream_lines(url: str) -> Iterator[str]:
    """The lines of a UTF-8 text file on the web, read as they arrive (stop early to save time)."""
    print(f"streaming {url}", file=sys.stderr)
    with urllib.request.urlopen(url) as response:
        yield from io.TextIOWrapper(response, encoding="utf-8")
