"""The pretraining recipe, measured: every arm trains for the same minutes on the same text.

    python -m benchmarks.recipe --data data/imdb/unsup.txt --minutes 5 --arms today,muon,wsd
    python -m benchmarks.recipe --data data/imdb/unsup.txt --minutes 5 --seeds 1337,1338
    python -m benchmarks.recipe --data data/imdb/unsup.txt --sweep --sizes auto,small,medium --budgets 5,20

An arm is a list of train_pretrain.py flags. Each one runs as its own process, as a user would
run it, for `--max-time M` (M minutes of training; tokenizing and evaluating are off the
clock), then `python -m minilm.evaluate` scores it on the same held-out text: documents
of the validation split (every 20th, never trained on by any arm), written once to
`<out>/heldout.txt`. Bits per byte divide by the text's bytes, not by tokens, so arms with
different tokenizers or context lengths compare fairly.

The ablation arms form a ladder at the small preset's size: "today" is the recipe before this
benchmark existed, spelled out flag by flag (so it keeps meaning that after the defaults
change); each later arm adds one technique to the arm before it; "defaults" is whatever
train_pretrain.py does with no flags. --start gives rungs every arm has (a second ladder that
continues from a first one). --sweep instead crosses model sizes with time budgets, every size
with the same rungs (--recipe); the size "auto" leaves the choice to the job
(train_pretrain.py --max-time N without a size flag).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from functools import partial
from pathlib import Path

from benchmarks.arms import REPO, mean_and_spread, run_jobs, run_logged
from benchmarks.common import format_table, record, run_benchmark, setup
from minilm.text.corpus import iter_documents
from minilm.text.lm_data import is_val_document

VAL_FRACTION = 0.05  # train_pretrain.py's default: the held-out documents are outside every arm's training split

# The recipe before this benchmark: AdamW everywhere, cosine decay, GELU MLP, no QK-norm, no cap,
# the embedding tied to the head.
TODAY = ["--optimizer", "adamw", "--schedule", "cosine", "--activation", "gelu", "--no-qk-norm",
         "--logit-softcap", "0", "--no-zero-init-residual", "--tie-weights", "--embedding-lr-scale", "1",
         "--lr", "3e-3", "--min-lr", "3e-4", "--weight-decay", "0.1"]

# name -> flags added to the arm before it (the ladder, in order).
LADDER = {
    "today": TODAY,
    "muon": ["--optimizer", "muon"],
    "wsd": ["--schedule", "wsd", "--decay-fraction", "0.2"],
    "zero-init": ["--zero-init-residual"],
    "relu2": ["--activation", "relu2"],
    "qk-norm": ["--qk-norm"],
    "softcap": ["--logit-softcap", "15"],
    "lr-2x": ["--lr", "6e-3", "--min-lr", "6e-4"],
    "lr-4x": ["--lr", "1.2e-2", "--min-lr", "1.2e-3"],
    "context-256": ["--context-length", "256", "--batch-size", "16"],  # the same 4,096 tokens a step
    "decay-half": ["--decay-fraction", "0.5", "--min-lr", "0"],
    "decay-all": ["--decay-fraction", "1", "--min-lr", "0"],  # a straight line from warmup to 0
    "untied-embedding": ["--no-tie-weights", "--embedding-lr-scale", "10"],
    "embedding-30x": ["--embedding-lr-scale", "30"],
    "lr-1.5x": ["--lr", "9e-3"],
    "vocab-2048": ["--vocab-size", "2048"],  # fewer, shorter pieces: a cheaper head, fewer bytes a token
    "vocab-8192": ["--vocab-size", "8192"],
    "vocab-16384": ["--vocab-size", "16384"],
    "batch-16": ["--batch-size", "16"],  # half the tokens a step: twice the updates in the same minutes
    "batch-64": ["--batch-size", "64"],
    "no-clip": ["--grad-clip", "0"],  # Muon's update has a fixed size whatever the gradient's: is clipping needed?
    "value-embeddings": ["--value-embeddings"],
    "no-weight-decay": ["--weight-decay", "0"],
}

SIZES = {  # --sweep: model shapes, beside the presets (which are passed as --preset NAME)
    "2x96": ["--n-layer", "2", "--n-head", "2", "--d-model", "96"],
    "4x96": ["--n-layer", "4", "--n-head", "2", "--d-model", "96"],
    "4x192": ["--n-layer", "4", "--n-head", "3", "--d-model", "192"],
    "6x192": ["--n-layer", "6", "--n-head", "3", "--d-model", "192"],
    "6x256": ["--n-layer", "6", "--n-head", "4", "--d-model", "256"],
}


def rung_flags(rungs: list[str]) -> list[str]:
    """The flags of these rungs of the ladder, in order ("defaults" alone: none at all)."""
    if rungs == ["defaults"]:
        return []
    unknown = [r for r in rungs if r not in LADDER]
    if unknown:
        raise SystemExit(f"unknown rung(s) {unknown}; choose from defaults, {', '.join(LADDER)}")
    return [flag for rung in rungs for flag in LADDER[rung]]


def ladder_arms(start: list[str], arms: list[str]) -> list[tuple[str, list[str]]]:
    """(arm, flags) for each arm: the --start rungs, then every arm up to and including this one."""
    return [(arm, rung_flags(start + arms[: i + 1])) for i, arm in enumerate(arms)]


def size_flags(size: str) -> list[str]:
    """Flags for a --sweep size: a preset name, a SIZES shape, or "auto" (no size flag at all)."""
    if size == "auto":
        return []
    if size in SIZES:
        return SIZES[size]
    return ["--preset", size]


def write_heldout(data: Path, out: Path, max_docs: int) -> Path:
    """The first max_docs validation documents of `data`, one per line, in out/heldout.txt."""
    path = out / "heldout.txt"
    docs = [doc for i, doc in enumerate(iter_documents(data)) if is_val_document(i, VAL_FRACTION)][:max_docs]
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(doc.replace("\n", " ") + "\n" for doc in docs), encoding="utf-8")
    return path


def train_and_score(name: str, flags: list[str], args: argparse.Namespace, heldout: Path) -> dict:
    """Run one arm (train_pretrain.py, then minilm.evaluate on the held-out text); its numbers.
    Its output goes to <out>/<name>.log. With --reuse, a run already done with the same flags
    (<out>/<name>.flags) is read back instead of trained again."""
    run_dir = args.out / name
    scores, flag_file = args.out / f"{name}.json", args.out / f"{name}.flags"
    done = args.reuse and scores.is_file() and flag_file.is_file() and flag_file.read_text() == " ".join(flags)
    print(f"{name}{' (reused)' if done else ''}: {' '.join(flags)}", flush=True)
    if not done:
        train_run(name, flags, args, heldout, scores)
        flag_file.write_text(" ".join(flags))
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    model = json.loads((run_dir / "config.json").read_text())["model"]
    return {"heldout_bpb": json.loads(scores.read_text())["bits_per_byte"], "val_bpb": float(rows[-1]["val_bpb"]),
            "steps": int(rows[-1]["step"]), "tokens": int(rows[-1]["tokens"]),
            "shape": f"{model['n_layer']}x{model['d_model']}, T={model['context_length']}"}


def train_run(name: str, flags: list[str], args: argparse.Namespace, heldout: Path, scores: Path) -> None:
    run_dir = args.out / name
    run_logged([[sys.executable, str(REPO / "train_pretrain.py"), "--data", str(args.data), "--out", str(run_dir),
                 "--overwrite", "--num-samples", "0", "--device", args.device, *flags],
                [sys.executable, "-m", "minilm.evaluate", "--ckpt", str(run_dir), "--data", str(heldout),
                 "--device", args.device, "--json", str(scores)]], args.out / f"{name}.log", args.threads)


def run_arms(jobs: list[tuple[str, str, list[str]]], args: argparse.Namespace, heldout: Path) -> dict[str, list[dict]]:
    """(row label, run name, flags) -> each label's results, --parallel runs at a time."""
    return run_jobs([(label, partial(train_and_score, name, flags, args, heldout)) for label, name, flags in jobs],
                    args.parallel)


def table_rows(results: dict[str, list[dict]]) -> list[list[object]]:
    """One row per label, in order; the first label is the reference of the last column."""
    reference = statistics.fmean(r["heldout_bpb"] for r in next(iter(results.values())))
    return [summarise(label, runs, reference) for label, runs in results.items()]


def summarise(label: str, runs: list[dict], reference: float) -> list[object]:
    """One table row: mean ± half the spread over seeds, and the change against the reference."""
    mean, shown = mean_and_spread([r["heldout_bpb"] for r in runs])
    return [label, runs[0]["shape"], f"{statistics.fmean(r['steps'] for r in runs):,.0f}",
            f"{statistics.fmean(r['tokens'] for r in runs) / 1e6:.1f}M", shown, f"{100 * (mean / reference - 1):+.1f}%"]


COLUMNS = ["arm", "shape", "steps", "tokens", "held-out bits/byte", "vs first row"]


SMOKE_FLAGS = "--preset tiny --vocab-size 300 --batch-size 4 --eval-every 5 --eval-batches 2"


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    if args.smoke:  # seconds, not minutes: two rungs of a tiny model (tests/test_benchmarks.py)
        args.minutes, args.budgets, args.eval_docs = 0.01, "0.01", 20
        args.arms, args.sizes, args.extra = "today,muon", "tiny", f"{args.extra} {SMOKE_FLAGS}"
    heldout = write_heldout(args.data, args.out, args.eval_docs)
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = args.extra.split()
    tables = []
    if args.sweep:
        for budget in args.budgets.split(","):
            recipe = rung_flags(args.recipe.split(","))
            jobs = [(size, f"{size}-{budget}min-s{seed}",
                     [*recipe, *size_flags(size), "--max-time", budget, "--seed", str(seed), *extra])
                    for size in args.sizes.split(",") for seed in seeds]
            table = format_table(COLUMNS, table_rows(run_arms(jobs, args, heldout)))
            tables.append((f"{budget} minutes of training, recipe: {args.recipe}", table))
    else:
        base = ["--preset", "small", "--max-time", str(args.minutes), *extra]  # --extra may give another size
        start = args.start.split(",") if args.start else []
        jobs = [(arm, f"{arm}-s{seed}", [*flags, *base, "--seed", str(seed)])
                for arm, flags in ladder_arms(start, args.arms.split(",")) for seed in seeds]
        table = format_table(COLUMNS, table_rows(run_arms(jobs, args, heldout)))
        tables.append((f"{args.minutes:g} minutes of training per arm, seeds {args.seeds}", table))
    notes = [f"data: {args.data}; held-out text: the first {args.eval_docs} validation documents",
             "each size trains with the same recipe; 'auto' is the size train_pretrain.py chose (its log says why)"
             if args.sweep else "each arm adds its technique to the rows above it; 'today' is the recipe before "
                                "the change"]
    record(args, device, "Pretraining recipe: same minutes per arm", tables, notes)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="pretraining text (e.g. data/imdb/unsup.txt)")
    parser.add_argument("--out", type=Path, default=Path("out/recipe"), help="where the arms' runs go")
    parser.add_argument("--minutes", type=float, default=5.0, help="training minutes per arm")
    parser.add_argument("--arms", default=",".join(LADDER),
                        help=f"the ladder: each arm adds its rung to the arms before it; of {', '.join(LADDER)}")
    parser.add_argument("--start", default="", help="rungs every arm has before the ladder's (not run as rows)")
    parser.add_argument("--reuse", action="store_true",
                        help="read back an arm already run in --out with the same flags instead of training it again")
    parser.add_argument("--seeds", default="1337", help="comma-separated seeds; each arm runs once per seed")
    parser.add_argument("--extra", default="", help="flags added to every arm, e.g. \"--batch-size 16\"")
    parser.add_argument("--eval-docs", type=int, default=1000, help="held-out documents scored per arm")
    parser.add_argument("--sweep", action="store_true", help="cross --sizes with --budgets instead of the ladder")
    parser.add_argument("--sizes", default="auto,small", help=f"--sweep sizes: auto, presets, or {', '.join(SIZES)}")
    parser.add_argument("--budgets", default="5,20", help="--sweep: comma-separated minutes")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at a time; with 2 on a 2-core machine give --threads 1, so each run has a core")
    parser.add_argument("--recipe", default="defaults",
                        help="--sweep: the rungs every size trains with (defaults: train_pretrain.py's own)")


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
