"""Download TinyStories (Eldan & Li, 2023) as a pretraining corpus: one story per line.

NEEDS THE INTERNET. Never run by the tests; minilm's default path uses the embedded corpus.

TinyStories are short stories in the words a 3-4 year old knows, written by GPT-4 (the "V2"
files used here). The source is one ~2 GB text file where a line "<|endoftext|>" ends each
story; we read it as it arrives and stop after --stories stories, so the default 60,000
(a few tens of MB) costs a short partial download instead of the whole file.

    python data/prepare_tinystories.py                   # -> data/tinystories.txt, 60,000 stories
    python data/prepare_tinystories.py --split valid     # stories from the validation file

Expected output: "wrote 60000 stories (...) to data/tinystories.txt".
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from _download import announce, stream_lines

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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    n_stories = n_chars = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for story in stories:
            if n_stories == limit:
                break
            f.write(story + "\n")
            n_stories += 1
            n_chars += len(story)
    os.replace(tmp, out)
    return n_stories, n_chars


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=["train", "valid"], default="train", help="which TinyStories file")
    parser.add_argument("--stories", type=int, default=60_000, help="stop after this many stories")
    parser.add_argument("--out", type=Path, default=Path("data/tinystories.txt"), help="output .txt file")
    args = parser.parse_args(argv)
    url = URL.format(split=args.split)
    announce("TinyStories", url)
    n_stories, n_chars = write_stories(parse_stories(stream_lines(url)), args.out, args.stories)
    print(f"wrote {n_stories} stories ({n_chars / 1e6:.1f}M characters) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
