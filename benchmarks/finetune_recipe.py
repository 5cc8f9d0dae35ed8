"""Fine-tuning recipes, measured: every arm fine-tunes the same pretrained model for the same minutes.

    python -m benchmarks.finetune_recipe --ckpt out/imdb-pretrain --data data/imdb --labels 2000 --minutes 5
    python -m benchmarks.finetune_recipe --ckpt out/imdb-pretrain --data data/imdb --labels 0 --arms plain,truncate

--data is a folder with train.tsv, valid.tsv and test.tsv (data/prepare_imdb.py writes one). With
--labels N the arms train on N labeled examples drawn from train.tsv per label (seeded), as a
user with few labels would have; 0 means all of them. The test set is cut to --test-size
examples the same way, so that scoring each arm takes a minute, not ten (the README's numbers
use the whole test set). Each arm is train_finetune.py with its flags and `--max-time M`: the
same minutes of training for every arm, however much a step of it costs. The arm "scratch"
is "plain" from random weights: what pretraining buys at this budget. (--epochs 1000: the
minutes, not the epochs, end every arm.) A short budget rewards arms that start fast: check a
winner with the real command and budget before making it a default (docs/finetuning.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from functools import partial
from pathlib import Path

from benchmarks.arms import REPO, mean_and_spread, run_jobs, run_logged
from benchmarks.common import format_table, record, run_benchmark, setup
from minilm.text.labeled import read_labeled, stratified_holdout, write_labeled_tsv

ARMS = {  # name -> train_finetune.py flags on top of the defaults (windows, one window per text per epoch,
    # mean pooling, lr 1e-3)
    "plain": [],
    "scratch": ["--ckpt", "scratch"],
    "truncate": ["--long-texts", "truncate"],
    "windows-all": ["--train-windows", "all"],
    "last-token": ["--pooling", "last"],  # GPT-1's pooling, the default before mean pooling won at 8 epochs
    "lp-ft": ["--probe-steps", "100", "--head-lr", "3e-3"],
    "llrd": ["--layer-lr-decay", "0.7"],
    "lora": ["--lora-rank", "8", "--lr", "2e-3"],
    "aux-lm": ["--lm-loss-weight", "0.5"],
    "smoothing": ["--label-smoothing", "0.1"],
    "lr-half": ["--lr", "5e-4"],  # the default before 1e-3 won with all labels at the full 15 minutes
    "head-lr": ["--head-lr", "3e-3"],
    "freeze-embeddings": ["--freeze", "embeddings"],
    "no-dropout": ["--dropout", "0"],
}


def subset(path: Path, size: int, seed: int, out: Path) -> Path:
    """`size` examples of a labeled file, drawn label by label (0 or more than it has: all of them)."""
    texts, labels = read_labeled(path, None, "label")
    if not size or size >= len(texts):
        return path
    _, chosen = stratified_holdout(labels, size / len(texts), seed)
    random.Random(seed).shuffle(chosen)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_labeled_tsv(out, [texts[i] for i in chosen], [labels[i] for i in chosen])
    return out


def finetune_and_score(name: str, flags: list[str], files: dict[str, Path], args: argparse.Namespace) -> dict:
    out = args.out / name
    print(f"{name}: {' '.join(flags)}", flush=True)
    shape = ["--shape-from", str(args.ckpt)] if "scratch" in flags else []
    run_logged([[sys.executable, str(REPO / "train_finetune.py"), "--ckpt", str(args.ckpt), *shape,
                 "--train", str(files["train"]), "--valid", str(files["valid"]), "--test", str(files["test"]),
                 "--out", str(out), "--overwrite", "--max-time", str(args.minutes), "--epochs", "1000",
                 "--device", args.device, *flags]],
               args.out / f"{name}.log", args.threads)
    test = json.loads((out / "report.json").read_text())["test"]
    return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"]}


def run(args: argparse.Namespace) -> None:
    device = setup(args)
    if args.smoke:
        args.minutes, args.arms, args.test_size = 0.01, "lora", 0
    files = {"train": subset(args.data / "train.tsv", args.labels, 0, args.out / f"train_{args.labels}.tsv"),
             "valid": args.data / "valid.tsv",
             "test": subset(args.data / "test.tsv", args.test_size, 1, args.out / f"test_{args.test_size}.tsv")}
    seeds = args.seeds.split(",")
    jobs = []
    for arm in args.arms.split(","):
        if arm not in ARMS:
            raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
        for seed in seeds:
            flags = [*ARMS[arm], "--seed", seed, *args.extra.split()]
            jobs.append((arm, partial(finetune_and_score, f"{arm}-s{seed}", flags, files, args)))
    results = run_jobs(jobs, args.parallel)
    reference = None
    rows = []
    for arm, runs in results.items():
        accuracy, shown = mean_and_spread([r["accuracy"] for r in runs])
        _, f1 = mean_and_spread([r["macro_f1"] for r in runs])
        reference = accuracy if reference is None else reference
        rows.append([arm, " ".join(ARMS[arm]) or "(defaults)", shown, f1, f"{100 * (accuracy - reference):+.1f}"])
    table = format_table(["arm", "flags", "test accuracy", "test macro-F1", "points vs first row"], rows)
    labels = f"{args.labels:,} labels" if args.labels else "all labels"
    record(args, device, "Fine-tuning recipe: same minutes per arm",
           [(f"{labels}, {args.minutes:g} minutes of fine-tuning per arm, seeds {args.seeds}", table)],
           [f"pretrained model: {args.ckpt}; data: {args.data}; test: {args.test_size or 'all'} examples"])


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", type=Path, required=True, help="pretrained checkpoint dir every arm starts from")
    parser.add_argument("--data", type=Path, required=True, help="folder with train.tsv, valid.tsv, test.tsv")
    parser.add_argument("--out", type=Path, default=Path("out/finetune_recipe"), help="where the arms' runs go")
    parser.add_argument("--labels", type=int, default=2000, help="labeled training examples (0 = all)")
    parser.add_argument("--test-size", type=int, default=5000, help="test examples scored per arm (0 = all)")
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tuning minutes per arm")
    parser.add_argument("--arms", default="plain,scratch", help=f"comma-separated, of: {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="1337", help="comma-separated seeds; each arm runs once per seed")
    parser.add_argument("--extra", default="", help="flags added to every arm")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at a time; with 2 on a 2-core machine give --threads 1, so each run has a core")


def main(argv: list[str] | None = None) -> None:
    run_benchmark(__doc__, add_args, run, argv)


if __name__ == "__main__":
    main()
