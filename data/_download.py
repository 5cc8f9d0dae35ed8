"""The one piece of network code in minilm: fetch a URL to a file, used by data/prepare_*.py.

Nothing in the minilm package or the tests imports this; it runs only when a person runs a
prepare script by hand. Without a network it ends in one line that names the script's offline
way (--local), never in a traceback; a silent server times out instead of hanging forever.
"""

from __future__ import annotations

import io
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from minilm.common.files import atomic_write
from minilm.common.progress import progress

BANNER = "=" * 78
TIMEOUT_S = 30  # seconds without a byte from the server before giving up


def announce(what: str, url: str) -> None:
    """Say loudly, before anything happens, that this script needs the internet."""
    print(f"{BANNER}\nTHIS SCRIPT DOWNLOADS {what} FROM THE INTERNET:\n  {url}\n{BANNER}", file=sys.stderr)


def no_network(url: str, err: Exception, offline_hint: str) -> SystemExit:
    """One line for a download that cannot happen: what failed, and the way that needs no network."""
    reason = getattr(err, "reason", None) or err
    return SystemExit(f"error: no network or {url} unreachable ({reason}): {offline_hint}")


def download(url: str, dest: Path, offline_hint: str) -> Path:
    """Fetch `url` to `dest` once (kept for reruns), with a progress bar; written atomically, so a
    partial download never looks finished and leaves no temporary file behind."""
    if dest.is_file():
        print(f"using the earlier download {dest}", file=sys.stderr)
        return dest
    print(f"downloading {url} -> {dest}", file=sys.stderr)

    def fetch(tmp: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as f:
                size = int(response.headers.get("Content-Length") or 0)  # 0: the server did not say
                bar = progress(total=size / 1e6 or None, desc=f"downloading {dest.name}", unit="MB")
                while block := response.read(1 << 20):
                    f.write(block)
                    bar.update(len(block) / 1e6)
                bar.close()
        except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
            raise no_network(url, err, offline_hint) from None  # SystemExit: atomic_write drops the temporary

    atomic_write(dest, fetch)
    return dest


def stream_lines(url: str, offline_hint: str) -> Iterator[str]:
    """The lines of a UTF-8 text file on the web, read as they arrive (stop early to save time)."""
    print(f"streaming {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            yield from io.TextIOWrapper(response, encoding="utf-8")
    except (TimeoutError, urllib.error.URLError, ConnectionError) as err:
        raise no_network(url, err, offline_hint) from None
