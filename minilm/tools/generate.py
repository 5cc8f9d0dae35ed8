"""Sample text from a trained checkpoint, each token printed as soon as it is chosen.

    python -m minilm.generate --ckpt out/pretrain --text "The waiter" --num-samples 3 --seed 1

How each token is chosen (temperature, top-k, top-p, the KV cache and the sliding window) is
in minilm/model/sampling.py; this module turns that into a command.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import torch

from minilm.checkpoint import CKPT_HELP, load_lm
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.flags import check_numbers, parse_config
from minilm.common.runtime import DEVICE_HELP, resolve_device
from minilm.model.config import option
from minilm.model.sampling import check_sampling, stream_tokens
from minilm.text.tokenizer import Tokenizer


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


@dataclass
class GenerateConfig:
    """Everything the generate command can be told (each field is a flag: minilm/common/flags.py)."""

    ckpt: str = option("out/pretrain", CKPT_HELP)
    text: str = option("", "text to continue (default: none, start a new text)", aliases=("--prompt",))
    text_file: str = option("", "a UTF-8 file of texts to continue, one per line (blank lines skipped)",
                            aliases=("--prompt-file",))
    max_new_tokens: int = option(100, "most tokens per sample; a sample also ends at the end-of-text token")
    temperature: float = option(0.8, "< 1 is safer and duller, > 1 more surprising, 0 always picks the "
                                     "likeliest token")
    top_k: int | None = option(None, "draw only from the k likeliest tokens (default: all)")
    top_p: float | None = option(None, "draw only from the likeliest tokens whose probabilities add up to p, "
                                       "in (0, 1] (default: all)")
    num_samples: int = option(1, "samples per text")
    seed: int | None = option(None, "same seed, same samples (default: a fresh random seed each run)")
    device: str = option("auto", DEVICE_HELP)


def parse_args(argv: list[str] | None = None) -> GenerateConfig:
    return parse_config(GenerateConfig, "generate",
                        "Sample text from a trained MiniLM checkpoint, printing each sample as it is "
                        "generated.", argv)


def check_args(args: GenerateConfig) -> None:
    """Refuse settings the sampler cannot honour, before any loading."""
    check_sampling(args.temperature, args.top_k, args.top_p)
    check_numbers(args)
    for flag in ("max_new_tokens", "num_samples"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.text and args.text_file:
        raise UserError("--text and --text-file both given: continue one text, or each line of a file")


def read_prompts(args: GenerateConfig) -> list[str]:
    if not args.text_file:
        return [args.text]
    path = Path(args.text_file)
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


def main(args: GenerateConfig) -> list[str]:
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

