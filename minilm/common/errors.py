"""User-facing errors: one clear line, a non-zero exit, never a traceback.

Anything a user can fix (a missing file, a bad flag, a label the model never saw) is raised as
`UserError` with a message that says what is wrong and how to fix it. Entry points wrap their
`main` in `exit_on_user_error`, which prints that one line to stderr and exits with status 2.
Bugs in minilm itself still raise normal exceptions with full tracebacks.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from minilm.model.config import ConfigError

T = TypeVar("T")


class UserError(ValueError):
    """A problem with the user's input, data or flags; the message is shown as is.

    A ValueError subclass, so library callers can catch the usual exception type.
    """


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
    """Wrap an entry point so a UserError (or the model layer's ConfigError) becomes
    `error: <message>` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (UserError, ConfigError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except MemoryError as err:  # e.g. a --batch-size far beyond this machine's memory
            detail = (str(err).strip().splitlines() or ["not enough memory"])[0]
            print(f"error: out of memory ({detail}); try a smaller --batch-size, model or --eval-batches",
                  file=sys.stderr)
            sys.exit(2)

    return wrapper
