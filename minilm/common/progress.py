"""Progress for every long step, honest in a terminal and quiet in a log.

    for batch in progress(batches, desc="evaluating test", unit="batch"):
        ...

In a terminal this is a tqdm bar. When stderr is not a terminal (output piped to a file,
`nohup`, torchrun, CI), a bar would write one carriage-return update after another into the
log; there a `LogLines` takes its place and prints one plain line every `every` seconds (and a
last one when the step ends, if it printed any), so a long step is never silent and a short
one adds nothing to the log. Both have the tqdm methods the jobs use: update, set_postfix,
write, close, and `total` / `n`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

LOG_EVERY_S = 30.0  # seconds between two plain progress lines in a log


class LogLines:
    """A tqdm stand-in for logs: a plain line now and then instead of a redrawn bar."""

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, every: float = LOG_EVERY_S):
        self.iterable, self.total, self.desc, self.unit, self.n = iterable, total, desc, unit, initial
        self.every, self.started = every, time.perf_counter()
        self.last_line = self.started
        self.lines = 0
        self.postfix = ""

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.perf_counter() - self.last_line >= self.every:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, message: str) -> None:
        print(message, flush=True)

    def refresh(self) -> None:
        """Nothing to redraw in a log (tqdm's bar needs this after its total changes)."""

    def close(self) -> None:
        if self.lines:  # a step long enough to have logged progress also logs its end
            self._line()
        self.lines = -1  # closed: no more lines

    def _line(self) -> None:
        if self.lines < 0:
            return
        self.last_line = time.perf_counter()
        elapsed = self.last_line - self.started
        done = f"{self.n:,.0f}/{self.total:,.0f}" if self.total else f"{self.n:,.0f}"
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc or 'progress'}: {done} {self.unit}{share} after {elapsed:.0f}s{extra}",
              file=sys.stderr, flush=True)
        self.lines += 1


class Silent(LogLines):
    """Progress that prints nothing (a torchrun process other than rank 0); write still prints."""

    def _line(self) -> None:
        pass

    def write(self, message: str) -> None:
        pass


def is_terminal() -> bool:
    return sys.stderr.isatty()


def progress(iterable: Iterable | None = None, total: float | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True, leave: bool = True) -> tqdm | LogLines:
    """A progress bar in a terminal, periodic plain lines otherwise, nothing when not `enabled`.

    total: the number of items when it is known (len(iterable) is used when it has one).
    leave=False: the bar disappears when done (a step inside a longer one, like an evaluation).
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled:
        return Silent(iterable, total, desc, unit, initial)
    if not is_terminal():
        return LogLines(iterable, total, desc, unit, initial)
    return tqdm(iterable, total=total, desc=desc or None, unit=unit, initial=initial, dynamic_ncols=True,
                leave=leave)
