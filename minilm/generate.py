"""Sampling text from a language model, one token at a time.

Each step turns the logits of the last position into a distribution and draws from it:

    p = softmax(logits / temperature)       temperature < 1 sharpens, > 1 flattens, 0 = argmax
    top-k: keep the k most likely tokens, renormalise
    top-p (nucleus): keep the smallest set of tokens whose probability adds up to >= p

The model only ever sees its last `context_length` tokens (a sliding window). With the KV
cache, each step feeds one new token and reuses the keys/values of the earlier ones. When the
sequence outgrows the window, every token's position changes (the window's first token is
always position 0), so the cache is rebuilt from the cropped window: the output is then exactly
what a model with no cache computes, for every position encoding.

From the command line, sample from a trained checkpoint, each sample printed as it is made:

    python -m minilm.generate --ckpt out/pretrain --prompt "The waiter" --num-samples 3 --seed 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import torch

from minilm.attention import KVCache
from minilm.checkpoint import load_lm
from minilm.errors import UserError, exit_on_user_error
from minilm.runtime import resolve_device
from minilm.tokenizer import Tokenizer


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) of the next token -> chosen token ids (B, 1)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # greedy: no randomness at all
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)  # (B, V) each
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # Probability mass of the tokens strictly before each one; a token stays while the mass
        # before it is < p, so the most likely token always stays.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (B, V)
        sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


@torch.no_grad()
def stream_tokens(model, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                  generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1) as soon as it is chosen: the basis of generate() and of streaming.

    model: a MiniLM (anything with .cfg.context_length and forward(ids, cache=...) -> (logits, _)).
    """
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise ValueError(f"input_ids must be (B, T) with T >= 1, got shape {tuple(input_ids.shape)}")
    window = model.cfg.context_length
    was_training = model.training
    model.eval()
    ids = input_ids
    cache, fresh = None, None  # fresh: the tokens to feed this step (all of the window, or one)
    try:
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = model(ids[:, -window:])  # the reference: re-read the whole window
            else:
                if cache is None or cache.length + fresh.size(1) > window:
                    # First step, or the window slid: start over from the last `window` tokens.
                    cache = new_cache(model, ids.size(0), ids.device)
                    fresh = ids[:, -window:]
                logits, _ = model(fresh, cache=cache)
            next_token = sample_next_token(logits[:, -1], temperature, top_k, top_p, generator)  # (B, 1)
            ids = torch.cat([ids, next_token], dim=1)
            fresh = next_token
            yield next_token
    finally:
        model.train(was_training)


def new_cache(model, batch_size: int, device: torch.device) -> KVCache:
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    return KVCache(cfg.n_layer, batch_size, cfg.n_head, cfg.context_length, cfg.head_size, device, dtype)


# -- the command line ---------------------------------------------------------------------------


def encode_prompt(tokenizer: Tokenizer, prompt: str, context_length: int) -> list[int]:
    """[bos] + ids of the prompt (how every pretraining document starts), cropped to fit the window.

    A longer prompt keeps its last context_length - 1 tokens, so the prompt and the first new
    token fit in one window; a one-line note on stderr says so.
    """
    ids = tokenizer.encode(prompt, bos=True)
    keep = context_length - 1
    if len(ids) > keep:
        print(f"note: the prompt is {len(ids)} tokens, longer than the model's context of {context_length}; "
              f"keeping its last {keep} tokens", file=sys.stderr)
        ids = ids[-keep:]
    return ids


def stream_sample(model, tokenizer: Tokenizer, prompt_ids: list[int], out: TextIO, max_new_tokens: int,
                  temperature: float, top_k: int | None, top_p: float | None,
                  generator: torch.Generator | None) -> list[int]:
    """Write the prompt, then each new piece of text as soon as its token is drawn; return the new ids.

    Stops at the end-of-text token (not written, not returned) or after max_new_tokens.
    """
    device = next(model.parameters()).device
    input_ids = torch.tensor([prompt_ids], device=device)  # (1, T0)
    shown = tokenizer.decode(prompt_ids)
    out.write(shown)
    out.flush()
    new_ids: list[int] = []
    for token in stream_tokens(model, input_ids, max_new_tokens, temperature, top_k, top_p,
                               use_cache=True, generator=generator):
        token_id = token.item()
        if token_id == tokenizer.eos_id:
            break
        new_ids.append(token_id)
        # Decode the whole text, not the token alone: SentencePiece drops the "▁" (space) of a
        # text's first piece, and a character spelled in UTF-8 bytes takes several tokens. Until
        # its last byte arrives it decodes as U+FFFD, so trailing U+FFFDs wait for the next step.
        text = tokenizer.decode(prompt_ids + new_ids).rstrip("\ufffd")
        out.write(text[len(shown):])
        out.flush()
        shown = text
    out.write(tokenizer.decode(prompt_ids + new_ids)[len(shown):])  # a U+FFFD that was really there
    return new_ids


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m minilm.generate",
        description="Sample text from a trained MiniLM checkpoint, printing each sample as it is generated.")
    parser.add_argument("--ckpt", required=True, help="checkpoint dir written by train_pretrain.py or "
                                                      "train_finetune.py (config.json, model.pt, tokenizer.model)")
    prompts = parser.add_mutually_exclusive_group()
    prompts.add_argument("--prompt", default="", help="text to continue (default: none, start a new text)")
    prompts.add_argument("--prompt-file", help="a UTF-8 file of prompts, one per line (blank lines skipped)")
    parser.add_argument("--max-new-tokens", type=int, default=100, help="most tokens per sample; a sample "
                        "also ends at the end-of-text token (default: 100)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="< 1 is safer and duller, > 1 more surprising, 0 always picks the likeliest "
                             "token (default: 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="draw only from the k likeliest tokens "
                        "(default: all)")
    parser.add_argument("--top-p", type=float, default=None, help="draw only from the likeliest tokens "
                        "whose probabilities add up to p, in (0, 1] (default: all)")
    parser.add_argument("--num-samples", type=int, default=1, help="samples per prompt (default: 1)")
    parser.add_argument("--seed", type=int, default=None, help="same seed, same samples (default: a fresh "
                        "random seed each run)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N "
                                                         "or mps (default: auto)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse settings sample_next_token cannot honour, before any loading."""
    if args.temperature < 0:
        raise UserError(f"--temperature must be >= 0 (0 = greedy), got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    for flag in ("max_new_tokens", "num_samples"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")


def read_prompts(args: argparse.Namespace) -> list[str]:
    if args.prompt_file is None:
        return [args.prompt]
    path = Path(args.prompt_file)
    if not path.is_file():
        raise UserError(f"prompt file {path} not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"prompt file {path} is not UTF-8 text") from None
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise UserError(f"prompt file {path} has no prompts: write one per line")
    return prompts


def main(args: argparse.Namespace) -> list[str]:
    """Stream --num-samples samples for each prompt to stdout; return the texts (prompt included)."""
    check_args(args)
    prompts = read_prompts(args)
    device = resolve_device(args.device)
    model, tokenizer = load_lm(args.ckpt, device)
    generator = torch.Generator(device=device)
    if args.seed is None:
        generator.seed()  # a fresh seed: torch's default generator starts from the same seed every run
    else:
        generator.manual_seed(args.seed)
    out, texts = sys.stdout, []
    many = len(prompts) * args.num_samples > 1
    for p, prompt in enumerate(prompts, start=1):
        prompt_ids = encode_prompt(tokenizer, prompt, model.cfg.context_length)
        for s in range(1, args.num_samples + 1):
            if many:
                out.write(f"--- prompt {p}, sample {s} ---\n")
            new_ids = stream_sample(model, tokenizer, prompt_ids, out, args.max_new_tokens, args.temperature,
                                    args.top_k, args.top_p, generator)
            out.write("\n")
            texts.append(tokenizer.decode(prompt_ids + new_ids))
    return texts


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The entry point; returns None because console scripts exit with what it returns."""
    main(parse_args(argv))


if __name__ == "__main__":
    cli()
