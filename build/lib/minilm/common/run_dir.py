"""The out dir of a run: what it may hold and when a new run may use it.

A finished run is hours of work; a typo in --out must never destroy it. A run claims its out dir
before it writes anything, and the rules below decide whether that is allowed.
"""

from __future__ import annotations

from pathlib import Path

from minilm.common.errors import UserError

# Everything a run writes into its out dir (the token cache in tokens/ is kept: it is checked
# against the corpus and tokenizer each time).
RUN_FILES = ("config.json", "model.pt", "tokenizer.model", "trainer_state.pt", "metrics.csv", "report.json",
             "samples.txt", "loss.png", "labels.json", "predictions.tsv")


def claim_out_dir(out: Path, resume: bool, overwrite: bool, job: str) -> None:
    """Make sure starting a run in `out` cannot destroy a previous run by accident.

    A dir that already holds a checkpoint is only reused with --resume (continue it) or
    --overwrite (replace it: the old run's files are deleted first, so a crash early in the new
    run cannot leave old weights next to a new tokenizer); --resume on a dir with nothing to
    resume is an error too.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory; choose another --out")
    has_state = (out / "trainer_state.pt").is_file()
    has_run = has_state or (out / "model.pt").is_file()
    if resume and not has_state:
        raise UserError(f"nothing to resume in {out} (no trainer_state.pt); drop --resume to start a new run")
    if has_run and not resume and not overwrite:
        raise UserError(f"{out} already holds a {job} run; pass --resume to continue it, --overwrite to "
                        f"replace it, or --out to choose another dir")
    if overwrite and not resume:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
