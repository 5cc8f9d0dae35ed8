"""Download SST-2 (Stanford Sentiment Treebank, binary; the GLUE release) for fine-tuning.

NEEDS THE INTERNET. Never run by the tests; minilm's default path uses the embedded data.

GLUE's SST-2.zip holds train.tsv (67,349 rows) and dev.tsv (872 rows) with the header
"sentence<TAB>label" and labels 0/1; its test.tsv has no labels, so it is of no use here.
We therefore hold out --valid-size rows of train (seeded, the same every run) as valid.tsv and
use GLUE's dev as test.tsv. Mind: GLUE's train rows are phrases cut from the treebank's parse
trees, so pieces of a held-out sentence can also sit in train: valid is an optimistic guide,
test (whole sentences from other reviews) is the honest number.

    python data/prepare_sst2.py           # -> data/sst2/{train,valid,test}.tsv  (text<TAB>label)
    python data/prepare_sst2.py --local SST-2.zip   # no download

Labels are written as "negative" / "positive". Expected output:
"wrote data/sst2: train 66477, valid 872, test 872".
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from _download import announce, download

from minilm.common.flags import OneLineErrors
from minilm.text.labeled import holdout_split, read_labeled, write_labeled_tsv

URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
LABEL_NAMES = {"0": "negative", "1": "positive"}


def read_glue_sst2(path: Path) -> tuple[list[str], list[str]]:
    """One GLUE SST-2 .tsv ("sentence<TAB>label", labels 0/1) -> (texts, label names)."""
    texts, labels = read_labeled(path, text_column="sentence", label_column="label")
    return texts, [LABEL_NAMES[label] for label in labels]


def convert(glue_dir: Path, out_dir: Path, valid_size: int, seed: int) -> dict[str, int]:
    """GLUE's SST-2 folder (train.tsv, dev.tsv) -> out_dir/{train,valid,test}.tsv; rows per file."""
    texts, labels = read_glue_sst2(glue_dir / "train.tsv")
    keep, held = holdout_split(len(texts), valid_size, seed)
    test_texts, test_labels = read_glue_sst2(glue_dir / "dev.tsv")
    splits = {
        "train": ([texts[i] for i in keep], [labels[i] for i in keep]),
        "valid": ([texts[i] for i in held], [labels[i] for i in held]),
        "test": (test_texts, test_labels),
    }
    for name, (split_texts, split_labels) in splits.items():
        write_labeled_tsv(out_dir / f"{name}.tsv", split_texts, split_labels)
    return {name: len(split_texts) for name, (split_texts, _) in splits.items()}


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrors(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("data/sst2"), help="output folder")
    parser.add_argument("--raw", type=Path, default=Path("data/raw"), help="where the zip is kept")
    parser.add_argument("--valid-size", type=int, default=872, help="train rows held out as valid.tsv")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    parser.add_argument("--local", type=Path, help="a copy of SST-2.zip to read instead of downloading it")
    args = parser.parse_args(argv)
    if args.local:
        if not args.local.is_file():
            raise SystemExit(f"error: --local {args.local} is not a file: pass the path of a copy of SST-2.zip")
        archive = args.local
    else:
        announce("SST-2 (GLUE)", URL)
        archive = download(URL, args.raw / "SST-2.zip", "use --local PATH with a copy of SST-2.zip")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(args.raw, members=["SST-2/train.tsv", "SST-2/dev.tsv"])
    counts = convert(args.raw / "SST-2", args.out, args.valid_size, args.seed)
    print(f"wrote {args.out}: " + ", ".join(f"{name} {n}" for name, n in counts.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
