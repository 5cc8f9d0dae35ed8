"""The out dir of a run: what it may hold, who may use it, and when an old run is replaced.

A finished run is hours of work; a typo must never destroy it. The guarantees:

- `check_out_dir` decides, before anything on disk changes, whether a run may use the dir:
  a dir that holds a run is only reused with --resume (continue it) or --overwrite (replace it).
- `claim_out_dir` holds a lock on the dir for the whole run (the file `.lock` with the run's
  pid): a second run on the same dir stops with one line naming the first one's pid. A lock
  left by a process that no longer exists (kill -9, a crash) is taken over, with a note.
- Once the lock is held, temporaries of the run's own files that an interrupted save left
  behind (.model.pt.<random>.tmp, ...) are deleted.
- --overwrite deletes the old run's files only when the new run calls `replace_old_run`, just
  before it writes its first file: every flag and input has been checked by then, so a typo
  (a missing --data, --lr 0) leaves the old run as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from minilm.common.errors import UserError
from minilm.common.files import TMP_SUFFIX

# Everything a run writes into its out dir (the token cache in tokens/ is kept: it is checked
# against the corpus and tokenizer each time).
RUN_FILES = ("config.json", "model.pt", "tokenizer.model", "trainer_state.pt", "metrics.csv", "report.json",
             "samples.txt", "loss.png", "labels.json", "predictions.tsv", "confusion_valid.png",
             "confusion_test.png", "confusion_transfer.png")
TENSORBOARD_DIR = "tensorboard"  # --tensorboard's event files: a new run must not append to the old one's
LR_FIND_FILES = ("lr_find.csv", "lr_find.png")
SCRATCH_DIR = "scratch"  # fine-tuning's --compare-scratch run, a run dir inside the run dir
LOCK_NAME = ".lock"


def check_writable_dir(out: Path, flag: str = "--out") -> None:
    """Refuse an out path that cannot become a writable dir, before anything is written."""
    if out.is_symlink() and not out.exists():
        raise UserError(f"{flag} {out} is a symbolic link to {os.readlink(out)}, which does not exist; "
                        f"create its target or choose another {flag}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file, not a directory; choose another {flag}")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{flag} {out}: {existing} is a file, so no directory can be made below it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {out}: {existing} is not writable (permission denied); choose another {flag}")


def check_output_file(path: Path, flag: str, example: str) -> None:
    """A single output file (evaluate's --json, the attention map's --png) must be a file name, and
    never one of a checkpoint's own files or anything inside its token cache."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; pass a file name such as {path / example}")
    folder = path.parent
    in_checkpoint = (folder / "config.json").is_file() and path.name in (*RUN_FILES, *LR_FIND_FILES, LOCK_NAME)
    in_token_cache = folder.name == "tokens" and (folder.parent / "config.json").is_file()
    if in_checkpoint or in_token_cache:
        where = folder if in_checkpoint else folder.parent
        raise UserError(f"{flag} {path} would overwrite a file of the checkpoint in {where}; choose another "
                        f"name, such as {where / example}")
    check_writable_dir(folder, f"{flag}'s folder")


def check_out_dir(out: Path, resume: bool, overwrite: bool, can_resume: bool = True) -> None:
    """May a run start in `out` (with --resume / --overwrite as given)? Reads only, writes nothing."""
    check_writable_dir(out)
    has_state = (out / "trainer_state.pt").is_file()
    has_model = (out / "model.pt").is_file()
    if resume and not has_state:
        if has_model:
            raise UserError(f"{out} holds model.pt but no trainer_state.pt (the run stopped before it saved "
                            f"its training state), so it cannot be resumed: its model.pt is usable as it "
                            f"is, or pass --overwrite without --resume to train again from the start")
        raise UserError(f"nothing to resume in {out} (no trainer_state.pt); drop --resume to start a new run")
    if (has_state or has_model) and not resume and not overwrite:
        resume_hint = "pass --resume to continue it, " if has_state and can_resume else ""
        raise UserError(f"{out} already holds a saved run; {resume_hint}pass --overwrite to replace it, "
                        f"or choose another --out")


@dataclass
class RunDir:
    """A locked out dir; `replace_old_run` deletes an old run's files when --overwrite asked for it."""

    path: Path
    overwrite: bool

    def replace_old_run(self) -> None:
        """Call just before the first write: with --overwrite, the old run's files go now (so a crash
        later cannot leave old weights next to a new tokenizer); without it, nothing happens."""
        if not self.overwrite:
            return
        for name in (*RUN_FILES, *LR_FIND_FILES):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / SCRATCH_DIR, ignore_errors=True)
        shutil.rmtree(self.path / TENSORBOARD_DIR, ignore_errors=True)
        self.overwrite = False  # once is enough


@contextlib.contextmanager
def claim_out_dir(out: Path, resume: bool, overwrite: bool, can_resume: bool = True) -> Iterator[RunDir]:
    """Check `out` (see check_out_dir), lock it for the duration of the `with` block, clean up
    what interrupted saves left; yields the RunDir. An existing run is replaced only by
    RunDir.replace_old_run, and only with --overwrite (never with --resume)."""
    check_out_dir(out, resume, overwrite, can_resume)
    lock = acquire_lock(out)
    try:
        remove_stale_temporaries(out)
        yield RunDir(out, overwrite and not resume)
    finally:
        release_lock(lock)


def acquire_lock(out: Path) -> Path:
    """Create out/.lock holding this process's pid; refuse if a live process holds it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out {out}: {err.strerror}") from None
    lock = out / LOCK_NAME
    for _ in range(3):  # a stale lock is removed and creating ours is tried again
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = lock_holder(lock)
            if holder is not None and holder != os.getpid() and process_exists(holder):
                raise UserError(f"{out} is in use by another run (pid {holder}); wait until it ends or choose "
                                f"another --out (if no such run exists, delete {lock})") from None
            print(f"note: taking over the lock in {out}: its run (pid {holder}) no longer exists", file=sys.stderr)
            lock.unlink(missing_ok=True)
            continue
        except OSError as err:
            raise UserError(f"cannot write in --out {out}: {err.strerror}") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return lock
    raise UserError(f"could not lock {out}: another process keeps creating {lock}")


def lock_holder(lock: Path) -> int | None:
    """The pid in a lock file; None if it is unreadable (a run killed while writing it)."""
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal, only the check that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it belongs to another user
    return True


def release_lock(lock: Path) -> None:
    if lock_holder(lock) == os.getpid():
        lock.unlink(missing_ok=True)


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete temporaries of the run's own files that a killed save left behind; returns them.

    Only names minilm writes are touched (.model.pt.<random>.tmp next to model.pt, the token
    cache's partial .bin files), and only while the lock is held, so no live run owns them.
    """
    patterns = [f".{name}.*{TMP_SUFFIX}" for name in (*RUN_FILES, *LR_FIND_FILES)]
    stale = [p for pattern in patterns for p in out.glob(pattern)]
    stale += [p for p in (out / "tokens").glob("*.bin.tmp*")]
    stale += [p for p in (out / "tokens").glob(f".meta.json.*{TMP_SUFFIX}")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
