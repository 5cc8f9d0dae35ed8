"""IMDB movie reviews (Maas et al., ACL 2011) for pretraining and fine-tuning.

NEEDS THE INTERNET unless --local is given. Never run by the tests.

Source: the aclImdb_v1 tarball from Stanford (~80 MB): train/ and test/ with 12,500 pos/ and
12,500 neg/ reviews each, plus 50,000 unlabeled reviews in train/unsup/, one review per .txt
file. --local DIR reads a copy instead: either an extracted aclImdb/ folder, or a converted
folder holding train.tsv.gz, test.tsv.gz ("text<TAB>label", labels pos/neg) and unsup.txt.gz
(one review a line).

Writes, in --out:
    unsup.txt                       the 50,000 unlabeled reviews, one a line: the pretraining corpus
    train.tsv, valid.tsv, test.tsv  text<TAB>label with labels "negative" / "positive";
                                    valid = --valid-size reviews held out of train (seeded)
    train_2000.tsv                  --few-labels reviews of train.tsv, half of each label (seeded):
                                    what fine-tuning with few labels can do (0 = not written)
Reviews are cleaned the same way from both sources: "<br />" becomes a space, whitespace runs
(tabs and newlines included) become one space.

    python data/prepare_imdb.py                                # download, -> data/imdb/
    python data/prepare_imdb.py --local /work/shared/data/imdb # no download

Expected output: "wrote data/imdb: unsup 50000, train 22500, valid 2500, test 25000, train_2000 2000".
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from _download import announce, download

from minilm.common.files import atomic_write_text
from minilm.common.flags import OneLineErrors
from minilm.text.labeled import holdout_split, stratified_holdout, write_labeled_tsv

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
LABEL_NAMES = {"pos": "positive", "neg": "negative"}
Labeled = list[tuple[str, str]]  # (text, label name)


def clean_review(text: str) -> str:
    """HTML line breaks and all whitespace runs -> single spaces."""
    return " ".join(text.replace("<br />", " ").split())


def sort_acl_reviews(files: Iterable[tuple[str, str]]) -> tuple[dict[str, Labeled], list[str]]:
    """(path inside aclImdb, file text) pairs -> ({"train": [...], "test": [...]}, unlabeled texts).

    A review's place is read from its path: .../{train,test}/{pos,neg,unsup}/<id>_<stars>.txt.
    Other files (README, imdb.vocab, urls_*.txt) are skipped. Reviews are sorted by path, so the
    result does not depend on the order of the tarball or of the file system.
    """
    labeled: dict[str, Labeled] = {"train": [], "test": []}
    unlabeled: list[str] = []
    for path, text in sorted(files):
        parts = path.split("/")
        if len(parts) < 3:
            continue
        split, kind, name = parts[-3:]
        if split not in labeled or not name.endswith(".txt"):
            continue
        if kind in LABEL_NAMES:
            labeled[split].append((clean_review(text), LABEL_NAMES[kind]))
        elif kind == "unsup":
            unlabeled.append(clean_review(text))
    return labeled, unlabeled


def tar_files(archive: Path) -> Iterator[tuple[str, str]]:
    """(member path, text) for each .txt file of the aclImdb tarball, read without extracting."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".txt"):
                yield member.name, tar.extractfile(member).read().decode("utf-8")


def folder_files(root: Path) -> Iterator[tuple[str, str]]:
    """(relative path, text) for each .txt file below an extracted aclImdb folder."""
    for path in root.rglob("*.txt"):
        yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")


def read_converted(folder: Path) -> tuple[dict[str, Labeled], list[str]]:
    """train.tsv.gz / test.tsv.gz / unsup.txt.gz (one review a line) -> same shape as sort_acl_reviews.

    The TSV fields may contain '"' that is not CSV quoting, so lines are split on the tab only.
    """
    labeled: dict[str, Labeled] = {}
    for split in ("train", "test"):
        with gzip.open(folder / f"{split}.tsv.gz", "rt", encoding="utf-8") as f:
            next(f)  # header: text<TAB>label
            rows = (line.rstrip("\n").rsplit("\t", 1) for line in f if line.strip())
            labeled[split] = [(clean_review(text), LABEL_NAMES[label]) for text, label in rows]
    with gzip.open(folder / "unsup.txt.gz", "rt", encoding="utf-8") as f:
        unlabeled = [clean_review(line) for line in f if line.strip()]
    return labeled, unlabeled


def write_outputs(
    labeled: dict[str, Labeled], unlabeled: list[str], out: Path, valid_size: int, seed: int, few_labels: int = 0
) -> dict:
    """Hold out valid from train and write unsup.txt + {train,valid,test}.tsv (+ train_N.tsv, N =
    few_labels, drawn from train label by label); rows per file."""
    train = labeled["train"]
    keep, held = holdout_split(len(train), valid_size, seed)
    splits = {"train": [train[i] for i in keep], "valid": [train[i] for i in held], "test": labeled["test"]}
    if 0 < few_labels < len(splits["train"]):
        rows = splits["train"]
        _, chosen = stratified_holdout([label for _, label in rows], few_labels / len(rows), seed)
        splits[f"train_{few_labels}"] = [rows[i] for i in chosen]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "unsup.txt", "".join(text + "\n" for text in unlabeled))
    for name, rows in splits.items():
        write_labeled_tsv(out / f"{name}.tsv", [text for text, _ in rows], [label for _, label in rows])
    return {"unsup": len(unlabeled), **{name: len(rows) for name, rows in splits.items()}}


def read_local(folder: Path) -> tuple[dict[str, Labeled], list[str]]:
    """Either layout of a local copy (see the module docstring)."""
    if (folder / "train.tsv.gz").is_file():
        return read_converted(folder)
    root = folder / "aclImdb" if (folder / "aclImdb").is_dir() else folder
    if not (root / "train" / "pos").is_dir():
        sys.exit(f"error: {folder} holds neither train.tsv.gz nor an aclImdb folder with train/pos/")
    return sort_acl_reviews(folder_files(root))


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrors(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--local", type=Path, help="read this local copy instead of downloading")
    parser.add_argument("--out", type=Path, default=Path("data/imdb"), help="output folder")
    parser.add_argument("--raw", type=Path, default=Path("data/raw"), help="where the tarball is kept")
    parser.add_argument("--valid-size", type=int, default=2500, help="train reviews held out as valid.tsv")
    parser.add_argument("--few-labels", type=int, default=2000,
                        help="also write train_N.tsv: N of the training reviews, as many of each label (0 = not)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draws")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        sys.exit(f"error: --out {args.out} is a file; choose a folder")
    if args.local:
        labeled, unlabeled = read_local(args.local)
    else:
        announce("the IMDB reviews (aclImdb, ~80 MB)", URL)
        labeled, unlabeled = sort_acl_reviews(tar_files(download(URL, args.raw / "aclImdb_v1.tar.gz",
                                                                 "use --local DIR with a copy of aclImdb/")))
    if not 0 < args.valid_size < len(labeled["train"]):
        sys.exit(f"error: {len(labeled['train'])} labeled train reviews found, so --valid-size {args.valid_size} "
                 f"cannot be held out of them; is this a full copy of aclImdb?")
    if args.few_labels < 0:
        sys.exit(f"error: --few-labels cannot be negative, got {args.few_labels}; 0 writes no train_N.tsv")
    counts = write_outputs(labeled, unlabeled, args.out, args.valid_size, args.seed, args.few_labels)
    print(f"wrote {args.out}: " + ", ".join(f"{name} {n}" for name, n in counts.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
