"""Download TinyStories (Eldan & Li, 2023) as a pretraining corpus: one story per line.

NEEDS THE INTERNET. Never run by the tests; minilm's default path uses the embedded corpus.

TinyStories are short stories in the words a 3-4 year old knows, written by GPT-4 (the "V2"
files used here). The source is one ~2 GB text file where a line "<|endoftext|>" ends each
story; we read it as it arrives and stop after --stories stories, so the default 60,000
(a few tens of MB) costs a short partial download instead of the whole file.

    python data/prepare_tinystories.py                   # -> data/tinystories.txt, 60,000 stories
    python data/prepare_tinystories.py --split valid     # stories from the validation file
    python data/prepare_tinystories.py --local TinyStoriesV2-GPT4-train.txt   # no download

Expected output: "wrote 60000 stories (...) to data/tinystories.txt".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from _download import announce, stream_lines

from minilm.common.files import atomic_write
from minilm.common.flags import OneLineErrors

URL = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-{split}.txt"
END_OF_STORY = "<|endoftext|>"


def parse_stories(lines: Iterable[str]) -> Iterator[str]:
    """Lines of a TinyStories file -> stories, each on one line (paragraph breaks become spaces)."""
    story: list[str] = []
    for line in lines:
        if line.strip() == END_OF_STORY:
            if story:
                yield " ".join(story)
            story = []
        else:
            story.extend(line.split())
    if story:
        yield " ".join(story)


def write_stories(stories: Iterable[str], out: Path, limit: int) -> tuple[int, int]:
    """Write up to `limit` stories, one a line, atomically; return (stories, characters)."""
    counts = {"stories": 0, "chars": 0}

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for story in stories:
                if counts["stories"] == limit:
                    break
                f.write(story + "\n")
                counts["stories"] += 1
                counts["chars"] += len(story)

    atomic_write(out, write)
    return counts["stories"], counts["chars"]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineErrors(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=["train", "valid"], default="train", help="which TinyStories file")
    parser.add_argument("--stories", type=int, default=60_000, help="stop after this many stories")
    parser.add_argument("--out", type=Path, default=Path("data/tinystories.txt"), help="output .txt file")
    parser.add_argument("--local", type=Path, help="a downloaded TinyStories .txt file to read instead")
    args = parser.parse_args(argv)
    if args.local:
        if not args.local.is_file():
            raise SystemExit(f"error: --local {args.local} is not a file: pass a TinyStories .txt file")
        lines: Iterable[str] = open(args.local, encoding="utf-8")
    else:
        url = URL.format(split=args.split)
        announce("TinyStories", url)
        lines = stream_lines(url, "use --local FILE with a downloaded TinyStoriesV2-GPT4 .txt file")
    n_stories, n_chars = write_stories(parse_stories(lines), args.out, args.stories)
    print(f"wrote {n_stories} stories ({n_chars / 1e6:.1f}M characters) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
