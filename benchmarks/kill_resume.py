"""Kill a pretraining run with kill -9 at random moments, again and again: it must always resume.

    python benchmarks/kill_resume.py --kills 20

A tiny run that saves trainer_state.pt every step is started, killed (SIGKILL: no cleanup at
all) after a random delay, and started again with --resume (or, when it died before its first
save, with --overwrite), --kills times; a kill can land in start-up, tokenizing, a save or a
step. Then the run is resumed to its end. It passes when every restart was accepted, the run
reached its last step, and no temporary file or lock is left in the out dir.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "fixtures" / "tiny_corpus.txt"


def command(out: Path, steps: int, restart: str | None) -> list[str]:
    run = [sys.executable, "-m", "minilm.pretrain", "--data", str(CORPUS), "--out", str(out), "--preset", "tiny",
           "--vocab-size", "300", "--batch-size", "4", "--context-length", "32", "--d-model", "32", "--n-head", "2",
           "--max-steps", str(steps), "--warmup-steps", "2", "--max-time", "0", "--eval-every", "5",
           "--eval-batches", "2", "--save-every", "1", "--num-samples", "1", "--device", "cpu"]
    return run + ([restart] if restart else [])


def restart_flag(out: Path) -> str | None:
    """--resume when there is a training state to continue, --overwrite when a kill came first."""
    if (out / "trainer_state.pt").is_file():
        return "--resume"
    return "--overwrite" if (out / "model.pt").is_file() else None


def leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name or p.name == ".lock")


def kill_loop(out: Path, kills: int, steps: int, max_delay: float, seed: int) -> dict:
    rng = random.Random(seed)
    restarts: dict[str, int] = {}
    for i in range(kills):
        flag = restart_flag(out)
        restarts[str(flag)] = restarts.get(str(flag), 0) + 1
        proc = subprocess.Popen(command(out, steps, flag), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=ROOT, text=True)
        time.sleep(rng.uniform(0.2, max_delay))
        if proc.poll() is not None:  # it ended by itself: fine only if it finished the run
            err = proc.stderr.read()
            if proc.returncode != 0:
                raise SystemExit(f"restart {i + 1} ({flag}) failed with exit code {proc.returncode}: {err.strip()}")
            raise SystemExit(f"the run finished before kill {i + 1}: use more --steps")
        proc.send_signal(signal.SIGKILL)
        proc.wait()  # reap it, so its pid really is gone (a zombie still holds the lock)
        proc.stderr.close()
    final = subprocess.run(command(out, steps, restart_flag(out)), capture_output=True, text=True, cwd=ROOT)
    finished_already = "already finished" in final.stderr  # the last kill came after the final save
    if final.returncode != 0 and not finished_already:
        raise SystemExit(f"the final resume failed: {final.stderr.strip().splitlines()[-1]}")
    import torch  # only now: the loop itself must not pay for it

    step = torch.load(out / "trainer_state.pt", weights_only=True)["trainer"]["step"]
    left = leftovers(out)
    return {"kills": kills, "restarts": restarts, "final_step": step, "leftovers": left,
            "ok": step == steps and not left}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=600, help="the run's --max-steps (more than the kills reach)")
    parser.add_argument("--max-delay", type=float, default=6.0, help="most seconds between a start and its kill")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="out dir (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="minilm-kill-") as scratch:
        result = kill_loop(args.out or Path(scratch) / "run", args.kills, args.steps, args.max_delay, args.seed)
    print(result)
    if not result["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
