"""Generate the embedded default data: a small world of reviews (no internet, a few seconds).

    python data/generate_reviews.py                         # -> data/reviews/, seed 0
    python data/generate_reviews.py --out data/reviews --seed 0 --check

Writes unlabeled.txt (pretraining) and train/valid/test/transfer.tsv (fine-tuning); see
data/README.md for the design. The training scripts call `ensure_default_data()` themselves, so
running this by hand is only needed to regenerate, change the seed, or look at the checks.
With --check it also verifies the lesson (transfer words never labeled, labels balanced, ...) and
prints the accuracy of a bag-of-words baseline; it exits with status 1 if a rule is broken.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from minilm.common.flags import OneLineErrors
from minilm.reviews.check import (
    bag_of_words_baseline,
    careful_reader_accuracy,
    corpus_stats,
    lesson_problems,
)
from minilm.reviews.world import N_UNLABELED, generate


def main() -> None:
    parser = OneLineErrors(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/reviews",
                        help="folder for the five files (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default: %(default)s)")
    parser.add_argument("--n-unlabeled", type=int, default=N_UNLABELED,
                        help="reviews in unlabeled.txt; labeled splits stay the same (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="verify the lesson and run the bag-of-words baseline")
    args = parser.parse_args()
    if args.n_unlabeled < 1:
        sys.exit(f"error: --n-unlabeled must be at least 1, got {args.n_unlabeled}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        sys.exit(f"error: --out {args.out} is a file; choose a folder")

    start = time.perf_counter()
    paths = generate(args.out, args.seed, n_unlabeled=args.n_unlabeled)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f}s (seed {args.seed})")
    for name, stats in corpus_stats(paths).items():
        print(f"  {paths[name].name:14s} {stats['reviews']:7,d} reviews {stats['words']:10,d} words "
              f"{stats['bytes'] / 1e6:6.2f} MB   longest {stats['max_words']} words")
    if not args.check:
        return

    problems = lesson_problems(paths)
    for problem in problems:
        print(f"  problem: {problem}")
    print(f"lesson checks: {'ok' if not problems else f'{len(problems)} problem(s)'}")
    print("accuracy of the rule itself (careful_reader) and of bag-of-words logistic regressions "
          "trained on train.tsv:")
    rows = {"careful reader": careful_reader_accuracy(paths),
            "words": bag_of_words_baseline(paths),
            "words + word pairs": bag_of_words_baseline(paths, bigrams=True)}
    for name, accuracy in rows.items():
        print(f"  {name:19s}" + "  ".join(f"{split} {acc:.3f}" for split, acc in accuracy.items()))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
