"""How well does a language model predict a text? Loss, perplexity and bits per byte on any corpus.

    python -m minilm.evaluate --ckpt out/pretrain --data data/reviews/val.txt [--stride 64]

Every document is framed as in pretraining, [bos] ids [eos], and the documents are joined into
one stream of N tokens. The model predicts each token after the first from the ones before it:
N - 1 predictions, each scored once, and

    loss          = -1/(N-1) Σ_t ln P(x_t | x_<t)       nats per token
    perplexity    = exp(loss)                           "as unsure as a fair die with this many faces"
    bits per byte = -Σ_t log2 P(x_t | x_<t) / bytes     bytes = UTF-8 bytes of the documents + 1 each
                                                        (the newline that ended it, which eos stands for)

Why bits per byte. Loss and perplexity are *per token*, and a token is whatever the tokenizer
made it: with a bigger vocabulary each token covers more text, so there are fewer of them and
each is harder to guess. Two models with different tokenizers cannot be compared per token.
The summed -log2 P over the whole text, though, is the length in bits of the text compressed
with the model (arithmetic coding gets within a few bits of it), and that does not depend on
how the text was cut up. Divided by the text's bytes, it compares any two models on the same
text: 8 bits/byte is plain UTF-8, gzip gets about 2.5-3 on English, large models well below 1.

The stream is longer than the model's window (context_length = T), so it is scored in windows.
By default they do not overlap; each token then sees between 0 and T - 1 tokens of context.
With --stride S the windows move S tokens at a time, and each scores only its last S tokens
(those that got at least T - S tokens of context); the first window scores all of its tokens.
Every token is still predicted exactly once, and the loss is lower and fairer, for T/S times the
compute. Token indices, N = 10, T = 4:

    token          0  1  2  3  4  5  6  7  8  9
    non-overlapping
      window 1    [0  1  2  3]                      predicts 1 2 3 4
      window 2                [4  5  6  7]          predicts 5 6 7 8
      window 3                            [8]       predicts 9
    sliding, S = 2
      window 1    [0  1  2  3]                      predicts 1 2 3 4, scores all of them
      window 2          [2  3  4  5]                predicts 3 4 5 6, scores 5 6
      window 3                [4  5  6  7]          predicts 5 6 7 8, scores 7 8
      window 4                      [6  7  8]       predicts 7 8 9,   scores 9
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from minilm.checkpoint import CKPT_HELP, load_lm
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.files import save_json
from minilm.common.flags import parse_config
from minilm.common.progress import progress
from minilm.common.run_dir import check_output_file
from minilm.common.runtime import DEVICE_HELP, resolve_device
from minilm.model.config import option, required
from minilm.model.gpt import MiniLM
from minilm.text.corpus import iter_documents
from minilm.text.tokenizer import Tokenizer
from minilm.tools.metrics import bits_per_byte, perplexity

IGNORE = -100  # target of a position that is not scored (cross_entropy's ignore_index)


def encode_stream(tokenizer: Tokenizer, documents: Iterable[str]) -> tuple[torch.Tensor, int, int]:
    """Documents -> (the stream of [bos] ids [eos] of each, back to back (N,), UTF-8 bytes, documents)."""
    pieces, n_bytes = [], 0
    for doc in progress(documents, desc="encoding", unit="doc"):
        pieces.append(torch.tensor(tokenizer.encode(doc, bos=True, eos=True)))
        n_bytes += len(doc.encode("utf-8")) + 1  # + 1: the newline that ended the document
    if not pieces:
        raise UserError("no documents to evaluate")
    return torch.cat(pieces), n_bytes, len(pieces)


def plan_windows(n_tokens: int, context_length: int, stride: int | None) -> list[tuple[int, int, int]]:
    """(start, end, n_seen) per window: inputs stream[start:end], targets stream[start+1:end+1],
    of which the first n_seen were scored by an earlier window (see the diagram above)."""
    windows = []
    scored_until = 0  # targets stream[1 .. scored_until] are scored
    for start in range(0, n_tokens - 1, stride or context_length):
        end = min(start + context_length, n_tokens - 1)
        windows.append((start, end, scored_until - start))
        scored_until = end
        if end == n_tokens - 1:
            break
    return windows


def window_batch(stream: torch.Tensor, windows: list[tuple[int, int, int]],
                 context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows -> inputs x and targets y, (B, T) each; unscored targets and right padding are IGNORE.

    Padding on the right is safe: attention is causal, so it cannot change earlier positions.
    """
    x = torch.full((len(windows), context_length), Tokenizer.pad_id, dtype=torch.long)
    y = torch.full((len(windows), context_length), IGNORE, dtype=torch.long)
    for row, (start, end, n_seen) in enumerate(windows):
        x[row, : end - start] = stream[start:end]
        y[row, n_seen : end - start] = stream[start + 1 + n_seen : end + 1]
    return x, y


@torch.no_grad()
def evaluate_text(model: MiniLM, tokenizer: Tokenizer, documents: Iterable[str], stride: int | None = None,
                  batch_size: int = 8, device: torch.device | str | None = None) -> dict:
    """Loss (nats/token), perplexity and bits per byte of `model` on `documents`.

    stride None: non-overlapping windows of context_length tokens; else a sliding window that
    moves `stride` tokens at a time (1 <= stride <= context_length). device: where the model is,
    by default its parameters' device. Returns a dict of plain numbers (JSON-ready).
    """
    T = model.cfg.context_length
    if stride is not None and not 1 <= stride <= T:
        raise UserError(f"--stride must be between 1 and the context length {T}, got {stride}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    device = device or next(model.parameters()).device
    stream, n_bytes, n_docs = encode_stream(tokenizer, documents)
    windows = plan_windows(len(stream), T, stride)
    was_training = model.training
    model.eval()
    total_nll, n_scored = 0.0, 0
    for i in progress(range(0, len(windows), batch_size), desc="evaluating", unit="batch"):
        x, y = window_batch(stream, windows[i : i + batch_size], T)
        logits, _ = model(x.to(device))  # (B, T, V)
        # Summed, not averaged: windows score different numbers of tokens.
        total_nll += F.cross_entropy(logits.flatten(0, 1).float(), y.to(device).flatten(),
                                     ignore_index=IGNORE, reduction="sum").item()
        n_scored += int((y != IGNORE).sum())
    model.train(was_training)
    loss = total_nll / n_scored
    return {"documents": n_docs, "tokens": n_scored, "bytes": n_bytes, "nll_nats": total_nll, "loss": loss,
            "perplexity": perplexity(loss), "bits_per_byte": bits_per_byte(total_nll, n_bytes),
            "context_length": T, "stride": stride or T}


def format_results(results: dict) -> str:
    """The results as a small plain-text table."""
    rows = [("tokens scored", f"{results['tokens']:,}", ""), ("bytes", f"{results['bytes']:,}", ""),
            ("loss/token", f"{results['loss']:.4f}", "nats"), ("perplexity", f"{results['perplexity']:.2f}", ""),
            ("bits/byte", f"{results['bits_per_byte']:.4f}", "")]
    windows = ("non-overlapping" if results["stride"] == results["context_length"]
               else f"sliding by {results['stride']}")
    header = f"{results['documents']:,} documents, windows of {results['context_length']} tokens, {windows}"
    return "\n".join([header, *(f"  {name:<14} {value:>10} {unit}".rstrip() for name, value, unit in rows)])


@dataclass
class EvaluateConfig:
    """Everything the evaluate command can be told (each field is a flag: minilm/common/flags.py)."""

    data: str = required("text to score: a .txt file (one document per line), a folder of .txt files, or a "
                         ".jsonl file with a \"text\" field")
    ckpt: str = option("out/pretrain", CKPT_HELP)
    stride: int | None = option(None, "slide the window by this many tokens, scoring only its last STRIDE tokens: "
                                      "more context per token, context_length/STRIDE times the compute "
                                      "(default: non-overlapping windows)")
    batch_size: int = option(8, "windows per forward pass")
    device: str = option("auto", DEVICE_HELP)
    json: str = option("", "also write the results to this JSON file")


def parse_args(argv: list[str] | None = None) -> EvaluateConfig:
    return parse_config(EvaluateConfig, "evaluate",
                        "Measure a trained MiniLM on any text: loss per token, perplexity and bits per "
                        "byte.", argv)


def main(args: EvaluateConfig) -> dict:
    """Load, score, print the table, write --json; return the results."""
    if args.json:
        check_output_file(Path(args.json), "--json", "eval.json")  # before the scoring, which may take a while
    device = resolve_device(args.device)
    model, tokenizer = load_lm(args.ckpt, device)
    results = evaluate_text(model, tokenizer, iter_documents(args.data), args.stride, args.batch_size, device)
    print(f"{args.ckpt} on {args.data}: " + format_results(results))
    if args.json:
        save_json({"checkpoint": str(Path(args.ckpt)), "data": str(Path(args.data)), **results}, args.json)
    return results


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The entry point; returns None because console scripts exit with what it returns."""
    main(parse_args(argv))

